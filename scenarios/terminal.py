"""A scenario's EDC terminal: the real EDC core, behind a seeded link proxy, on the injected clock.

Each online transaction opens a fresh connection through the terminal's `linksim.LinkProxy`
(so a restarted switch or a healed link is simply reached again); a link that refuses the
connection leaves the core to time out, as a terminal without signal would. Offline sales run
in the core's offline mode (card, amount, the holder's NIK) without any connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from edc_terminal.batchjob import JobResult
from edc_terminal.client import ClientConfig, SwitchClient, SwitchUnavailable
from edc_terminal.core import CoreConfig, EdcCore, Outcome, Reject
from edc_terminal.headless import InputError, Request, open_core, run_job, session
from edc_terminal.inspector import Exchange, Inspector
from edc_terminal.linking import PROXY_HOST, core_config
from linksim import LinkProfile, LinkProxy

BASE_TIMEOUT_MS = 5_000  # the terminal's own wait, above the switch's wait for a bank
CONNECT_TIMEOUT_MS = 2_000
JOB_WINDOW = 32


class ShiftableClock:
    """The injected clock: the scenario's start, running at wall speed, moved by `advance`."""

    def __init__(self, start: datetime, monotonic: callable = time.monotonic) -> None:  # type: ignore[valid-type]
        self._start = start
        self._monotonic = monotonic
        self._t0 = monotonic()
        self.shift = timedelta(0)

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._monotonic() - self._t0) + self.shift

    def advance(self, delta: timedelta) -> None:
        self.shift += delta


@dataclass(frozen=True, slots=True)
class TxnResult:
    """What one terminal transaction showed: its code, slip and screen, and where to find it."""

    kind: str  # journal kind: inquiry, purchase, advice, reversal, network, upload, settlement
    rc: str | None  # None: the terminal refused the input, nothing was sent
    approved: bool
    slip: str
    screen: str
    stan: str | None = None
    rrn: str | None = None
    amount_idr: int | None = None
    offline: bool = False

    @classmethod
    def of_outcome(cls, kind: str, outcome: Outcome) -> TxnResult:
        return cls(kind, outcome.rc, outcome.approved, outcome.receipt or "", outcome.message, outcome.stan, outcome.rrn, outcome.amount, outcome.offline)

    @classmethod
    def of_job(cls, kind: str, result: JobResult) -> TxnResult:
        return cls(kind, result.rc, result.approved, "", result.message)

    @classmethod
    def refused(cls, kind: str, reason: str) -> TxnResult:
        return cls(kind, None, False, "", reason)


class Terminal:
    """One EDC terminal of a scenario, on its own data directory."""

    def __init__(self, tid: str, data_dir: Path, clock: ShiftableClock, profile: LinkProfile, link_seed: int, switch_port: int) -> None:
        self.tid = tid
        self.data_dir = data_dir
        self.clock = clock
        self.profile = profile
        self.link_seed = link_seed
        self.switch_port = switch_port
        self.inspector = Inspector(clock)
        self.exchanges: list[Exchange] = []  # every exchange of the run (the inspector keeps the last few)
        self.inspector.subscribe(self.exchanges.append)
        self.core: EdcCore | None = None
        self.proxy: LinkProxy | None = None

    @property
    def running(self) -> bool:
        return self.core is not None

    async def open(self) -> None:
        """Start the link proxy (seeded) and open the core on its stored state."""
        self.proxy = LinkProxy(PROXY_HOST, 0, PROXY_HOST, self.switch_port, self.profile, seed=self.link_seed)
        await self.proxy.start()
        config = core_config(self.profile, CoreConfig.uniform(BASE_TIMEOUT_MS, card_list=True))
        self.core = open_core(self.tid, self.data_dir, self.clock, config)
        self.core.set_link_state(self.profile.available)

    async def close(self) -> None:
        """Close the core (its state is on disk after every change) and the link."""
        core, proxy = self.core, self.proxy
        self.core = self.proxy = None
        try:
            if core is not None:
                core.close()
        finally:
            if proxy is not None:
                await proxy.stop()

    def set_profile(self, profile: LinkProfile) -> None:
        assert self.proxy is not None and self.core is not None
        self.profile = profile
        self.proxy.set_profile(profile)
        self.core.set_link_state(profile.available)

    async def _client(self, window: int = 8) -> SwitchClient:
        assert self.proxy is not None
        client = SwitchClient(PROXY_HOST, self.proxy.port, ClientConfig(connect_timeout_ms=CONNECT_TIMEOUT_MS, max_in_flight=window))
        try:
            await client.connect()
        except SwitchUnavailable:
            pass  # no link: the core hears nothing and decides (timeout, reversal stored)
        return client

    async def transact(self, kind: str, request: Request) -> TxnResult:
        """Sign on when needed, send stored reversals, run the command over a fresh connection."""
        assert self.core is not None
        client = await self._client()
        try:
            outcome = await session(self.core, client, request, self.inspector)
        except InputError as exc:
            _cancel(self.core)
            return TxnResult.refused(kind, str(exc))
        finally:
            await client.close()
        return TxnResult.of_outcome(kind, outcome)

    def offline_sale(self, pan: str, amount_idr: int, nik: str) -> TxnResult:
        """Bayar decided by the terminal: card, amount, the holder's NIK."""
        core = self.core
        assert core is not None
        for step in (lambda: core.insert_card(pan), core.choose_purchase, lambda: core.enter_amount(str(amount_idr)), lambda: core.enter_nik(nik)):
            commands = step()
            if rejected := next((c for c in commands if isinstance(c, Reject)), None):
                _cancel(core)
                return TxnResult.refused("advice", rejected.reason)
        outcome = core.outcome
        core.finish()
        return TxnResult.of_outcome("advice", outcome)

    async def job(self, kind: str) -> TxnResult:
        """Upload the stored offline sales, or settle the open batch."""
        core = self.core
        assert core is not None
        job = core.start_upload() if kind == "upload" else core.start_settlement()
        if isinstance(job, Reject):
            return TxnResult.refused(kind, job.reason)
        client = await self._client(JOB_WINDOW)
        try:
            result = await run_job(job, client, window=JOB_WINDOW, inspector=self.inspector)
        finally:
            await client.close()
            core.finish()
        return TxnResult.of_job(kind, result)

    def exchanges_since(self, start: int) -> list[Exchange]:
        return self.exchanges[start:]


def _cancel(core: EdcCore) -> None:
    """Back to IDLE after a refused input (nothing to cancel is fine)."""
    try:
        core.cancel()
    except Exception:  # noqa: BLE001 - the core refuses a cancel when idle; that is the aim anyway
        pass
