"""The running switch: journal, HSM, bank client, ISO listener, SAF forwarder and ops API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import uvicorn

from shared.banks import BANKS, DEMO_TERMINALS_PER_BANK
from shared.clock import SystemClock
from shared.db import Database, sqlite_url
from shared.keys import demo_terminal_master_key_hex

from switch.bank_client import BankClient
from switch.batches import Batches
from switch.card_list import card_list_pages
from switch.controls import blocked_terminals
from switch.core import SwitchCore
from switch.hsm import SwitchHsm
from switch.journal import Journal, TerminalRecord
from switch.journal_writer import JournalWriter
from switch.ops import audit
from switch.metrics import SwitchMetrics
from switch.saf import SafForwarder
from switch.server import IsoServer
from switch.settings import SwitchSettings
from switch.workers import Peers, SafLeases, refresh_blocks

log = logging.getLogger("switch")
_CLOCK = SystemClock()
# A switch killed with requests in flight handed out RRNs that reached a bank but never its
# journal; numbering on from the journal's highest RRN would hand them out again. A restarted
# switch numbers on past a gap larger than what can be in flight (journal queue, requests).
RRN_RESTART_GAP = 1_000_000
ANSWER_WAIT_MARGIN_S = 1.0  # beyond the bank timeout, for the winner's journal commit (switch.workers)


def wib_now() -> datetime:
    """Business time of the whole network: naive WIB (see shared.clock)."""
    return _CLOCK.now()


def database_for(settings: SwitchSettings) -> Database:
    url = settings.database_url or sqlite_url(settings.data_dir, "switch")
    return Database(url, schema=settings.db_schema)


class RealKeysRequired(SystemExit):
    """The switch refuses to start: real keys are required and some are the public demo ones.
    (A SystemExit: the process ends with this message and status 1, without a traceback.)"""


def demo_terminals(hsm: SwitchHsm, tmk_hex_for: Callable[[str], str] = demo_terminal_master_key_hex) -> list[TerminalRecord]:
    records = []
    for bank in BANKS.values():
        for serial in range(1, DEMO_TERMINALS_PER_BANK + 1):
            tid = bank.terminal_id(serial)
            tmk = bytes.fromhex(tmk_hex_for(tid))
            name = f"EDC {bank.code.upper()} e-Warong {serial}"
            records.append(TerminalRecord(tid, bank.merchant_id(serial), bank.code, name, hsm.wrap_for_storage(tmk)))
    return records


def terminals_on_demo_tmk(hsm: SwitchHsm, terminals: list[TerminalRecord]) -> list[str]:
    """Registered terminals whose stored master key is their public demo TMK."""
    return [t.tid for t in terminals if hsm.unwrap_stored(t.tmk_lmk).hex().upper() == demo_terminal_master_key_hex(t.tid)]


def refuse_demo_keys(settings: SwitchSettings, demo_keys: list[str]) -> None:
    """Raise RealKeysRequired when real keys are required and `demo_keys` names any."""
    if settings.require_real_keys and demo_keys:
        raise RealKeysRequired(
            "switch refuses to start: SEMBAKO_SWITCH_REQUIRE_REAL_KEYS is set and these keys are the public "
            f"demo ones: {', '.join(demo_keys)}. Set SEMBAKO_SWITCH_LMK_HEX, SEMBAKO_SWITCH_ZPK_HEX, "
            "SEMBAKO_SWITCH_TMK_HEX, SEMBAKO_SWITCH_PAN_HASH_KEY_HEX and SEMBAKO_SWITCH_PAN_KEY_HEX (see README, The switch)."
        )


class SwitchRuntime:
    def __init__(self, settings: SwitchSettings, now: Callable[[], datetime] = wib_now) -> None:
        self.settings = settings
        self.now = now
        self.demo_keys = settings.demo_keys()
        refuse_demo_keys(settings, self.demo_keys)  # before anything is opened
        self.db = database_for(settings)
        self.hsm = SwitchHsm(settings.lmk, {code: settings.zpk_for(code) for code in BANKS}, settings.pan_hash_key, settings.pan_key)
        self.journal = Journal(self.db, self.hsm.pan_hash, self.hsm.pan_cipher)
        audit.keep_anchor(self.db, audit.anchor_in(settings.data_dir))
        self.banks = BankClient(
            settings.bank_urls, settings.bank_timeout_ms, settings.bank_connections_max, settings.bank_credentials_by_code(),
            batch_max=settings.bank_batch_max, calls_max=settings.bank_calls_max,
        )
        self.writer = JournalWriter(self.journal, settings.journal_queue_max, settings.journal_batch_max)
        self.saf = SafForwarder(self.journal, self.banks, now, settings.saf_interval_ms, settings.saf_batch_max, self._saf_leases())
        self.metrics = SwitchMetrics.of_runtime(self)  # GET /metrics on the ops API
        self.core: SwitchCore | None = None
        self.iso: IsoServer | None = None
        self._tasks: list[asyncio.Task] = []
        self._ops: uvicorn.Server | None = None

    @property
    def pooled(self) -> bool:
        """Whether other switch processes share this one's port and database (switch.workers)."""
        return self.settings.workers > 1

    def _saf_leases(self) -> SafLeases | None:
        s = self.settings
        return SafLeases(self.journal, s.worker_index, s.saf_lease_ms, self.now, s.bank_timeout_ms) if self.pooled else None

    async def start(self, with_ops_api: bool = True) -> None:
        self._check_keys(await asyncio.to_thread(self._prepare_storage))
        self.core = await asyncio.to_thread(self._build_core)
        self.writer.start()
        s = self.settings
        self.iso = IsoServer(
            self.core, s.host, s.iso_port, s.frame_bytes_max, s.idle_timeout_ms, s.inflight_per_connection_max, s.connections_max,
            frame_timeout_ms=s.frame_timeout_ms, connections_per_source_max=s.connections_per_source_max,
            reuse_port=self.pooled,
        )
        await self.iso.start()
        self._tasks.append(asyncio.create_task(self.saf.run(), name="saf"))
        if self.pooled:
            refresh = refresh_blocks(self.journal, self.core.blocked_terminals, s.blocks_refresh_ms / 1000)
            self._tasks.append(asyncio.create_task(refresh, name="blocks"))
        if with_ops_api and s.worker_index == 0:  # one ops API per pool: worker 0's
            await self._start_ops_api()
        worker = f" (worker {s.worker_index} of {s.workers})" if self.pooled else ""
        log.info("switch listening: ISO 8583 on %s:%d%s", s.host, self.iso.port, worker)

    def check_storage(self) -> None:
        """Migrate, register the terminals and check the keys, without serving (the parent of
        several workers does this once, before they start)."""
        self._check_keys(self._prepare_storage())

    def _prepare_storage(self) -> list[str]:
        """Migrate and register the terminals; returns those whose stored TMK is a demo one."""
        self.journal.migrate()
        self.journal.ensure_terminals(demo_terminals(self.hsm, self.settings.tmk_for), self.now())
        return terminals_on_demo_tmk(self.hsm, self.journal.terminals())

    def _check_keys(self, stored: list[str]) -> None:
        """Terminals registered earlier keep their stored TMK: those on a demo TMK count too.
        Then one warning line when any demo key is in use (or the refusal, when required)."""
        if stored and not any(name.startswith("TMK") for name in self.demo_keys):
            self.demo_keys.append(f"TMK of {len(stored)} registered terminals")
        refuse_demo_keys(self.settings, self.demo_keys)
        if self.demo_keys:
            log.warning("switch running on PUBLIC DEMO KEYS, fit for a demo only: %s", ", ".join(self.demo_keys))

    def _build_core(self) -> SwitchCore:
        keys = {
            tid: self.hsm.working_keys_from_storage(tpk, tak)
            for tid, (tpk, tak) in self.journal.latest_working_keys().items()
        }
        last = self.journal.max_rrn()
        s = self.settings
        core = SwitchCore(
            hsm=self.hsm,
            banks=self.banks,
            terminals=self.journal.terminals(),
            working_keys=keys,
            last_rrn=int(last) + RRN_RESTART_GAP if last and last.isdigit() else 0,
            now=self.now,
            journal_sink=self.metrics.counting(self.writer.put),
            persist_keys=self._persist_keys,
            enqueue_saf=self.saf.enqueue,
            duplicates_max=self.settings.duplicates_remembered_max,
            batches=Batches(self.journal, self.now),  # 0500 settlement and 0320 batch upload
            card_lists=card_list_pages(self.hsm, self.banks, self.settings),  # 0800/360: offline card list pages
            rrn_step=s.workers,
            rrn_offset=s.worker_index,
            peers=Peers(self.journal, self.hsm, s.worker_index, self.now, self._answer_wait_s()) if self.pooled else None,
        )
        core.blocked_terminals.update(blocked_terminals(self.db))  # as operations staff left them
        return core

    def _answer_wait_s(self) -> float:
        """How long a worker waits for another's answer to a request both got: the other's bank
        call and the commit of its journal row."""
        return self.settings.bank_timeout_ms / 1000 + ANSWER_WAIT_MARGIN_S

    async def _persist_keys(self, tid: str, tpk_lmk: str, tak_lmk: str) -> None:
        await asyncio.to_thread(self.journal.append_working_keys, tid, tpk_lmk, tak_lmk, self.now())

    async def _start_ops_api(self) -> None:
        from switch.ops.app import create_ops_app

        app = create_ops_app(self.journal, self.live_stats, banks=self.banks, now=self.now)
        app.state.demo_keys = bool(self.demo_keys)
        app.state.alert_thresholds = self.settings.alerts  # GET /v1/alerts
        app.state.blocked_terminals = self.core.blocked_terminals if self.core else None  # blocks take effect at once
        app.state.metrics = self.metrics
        # log_config=None: uvicorn's own records go through the process's logging (rotating
        # file, rate limit; see shared.logs); no access log (URLs can carry search terms).
        config = uvicorn.Config(
            app, host=self.settings.host, port=self.settings.ops_port, log_level="warning", access_log=False, log_config=None
        )
        self._ops = uvicorn.Server(config)
        self._ops.install_signal_handlers = lambda: None  # the runtime owns signals
        self._tasks.append(asyncio.create_task(self._ops.serve(), name="ops-api"))

    def live_stats(self) -> dict:
        return {
            "connections": self.iso.connections if self.iso else 0,
            "frames": self.iso.frames if self.iso else 0,
            "frames_dropped": self.core.dropped if self.core else 0,
            "frames_too_slow": self.iso.slow_frames if self.iso else 0,
            "connections_refused": self.iso.refused_connections if self.iso else 0,
            "journal_backlog": self.writer.backlog,
            "journal_failed_batches": self.writer.failed_batches,
            "saf_delivered": self.saf.delivered,
            "banks": self.banks.stats(),
        }

    async def stop(self) -> None:
        if self.iso:
            await self.iso.stop()
        if self._ops:
            self._ops.should_exit = True
        for task in self._tasks:
            if task.get_name() == "ops-api":
                try:
                    await asyncio.wait_for(task, timeout=5)
                except (TimeoutError, asyncio.CancelledError):
                    pass
            else:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.banks.close()
        await asyncio.to_thread(self.writer.stop)
        self.db.dispose()
