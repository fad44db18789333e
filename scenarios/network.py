"""The scenario runner's own network: bank processes, the switch in a thread, seeded cards.

Adapted from the end-to-end test harness (tests/switch/network.py), which product code must not
import. Banks run as child processes (`python -m sembako bank serve`) so a step can stop, kill and
restart them on the same port and data; the switch runs with its own event loop in a background
thread and can be stopped and started again on the same ports and data. Everything listens on
127.0.0.1 on ephemeral ports, in a temporary directory; every wait is bounded.

Cards are written straight into each bank's database BEFORE its process starts: the demo cards
(`bank_penyalur.demo.generator.seed` with no generated KPM) and the scenario's new cards in their
situations. Nothing is disbursed: disbursement is a step of the scenario.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bank_penyalur import registry
from bank_penyalur.demo import fixture, generator
from bank_penyalur.demo.regions import VILLAGES
from bank_penyalur.registry import KpmCreate
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.settings import BankSettings
from bank_penyalur.tables import ACTIVATED, BLOCKED, DAMAGED, DISTRIBUTED, LOST, PIN_FAIL, PinEvent
from shared import pinblock
from shared.banks import get_bank
from shared.clock import FixedClock
from shared.keys import demo_key_hex
from switch.runtime import SwitchRuntime
from switch.settings import SwitchSettings

from .model import CardSpec, Scenario

HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
SWITCH_CALL_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0
BANK_TIMEOUT_MS = 2_000  # the switch's wait for a bank: below the terminals' own timeout
SAF_INTERVAL_MS = 200
ACTOR = "scenario-runner"
NEW_KPM_SEQ_BASE = 7_000  # NIK sequence numbers of generated new KPM, apart from the demo's
_schemas = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True, slots=True)
class Card:
    """A card the steps name: its number, PIN and holder, as the runner knows them."""

    name: str
    bank: str
    pan: str
    pin: str
    nik: str


@dataclass
class BankProcess:
    """One bank as a child process on a fixed port and data directory."""

    code: str
    port: int
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process and wait (bounded) until it answers /health."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bank {self.code} exited at start: see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=0.5).status_code == 200:  # noqa: PLR2004
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"bank {self.code} not healthy within {HEALTH_TIMEOUT_S:g} s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end in time."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)


@dataclass
class Storage:
    """Where a scenario keeps its data: a temp dir, and optionally a PostgreSQL URL and schema."""

    data_dir: Path
    database_url: str | None = None
    db_schema: str | None = None


def storage_for(data_dir: Path, database_url: str | None) -> Storage:
    """SQLite in `data_dir`, or PostgreSQL in a schema of its own for this scenario run."""
    if database_url is None:
        return Storage(data_dir)
    return Storage(data_dir, database_url, f"scn_{os.getpid()}_{next(_schemas)}")


class ScenarioNetwork:
    """The banks and the switch of one scenario run."""

    def __init__(self, scenario: Scenario, storage: Storage) -> None:
        self.scenario = scenario
        self.storage = storage
        self.start_at = scenario.network.start
        self.banks = {code: self._bank_process(code) for code in scenario.network.banks}
        self.cards: dict[str, Card] = {}
        self.switch: SwitchRuntime | None = None
        self._switch_ports: tuple[int, int] | None = None  # (iso, ops), kept across restarts
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- banks ---------------------------------------------------------------------------------

    def bank_settings(self, code: str) -> BankSettings:
        schema = self.storage.db_schema
        return BankSettings(
            bank=code,
            data_dir=self.storage.data_dir,
            database_url=self.storage.database_url,
            db_schema=f"{schema}_{code}" if schema else None,
        )

    def _bank_process(self, code: str) -> BankProcess:
        settings = self.bank_settings(code)
        port = free_port()
        command = [sys.executable, "-m", "sembako", "bank", "serve", "--bank", code, "--port", str(port), "--data-dir", str(settings.data_dir)]
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SEMBAKO_DATA_DIR") and not k.startswith("SEMBAKO_BANK_")}
        if settings.database_url:
            command += ["--database-url", settings.database_url]
            env["SEMBAKO_BANK_DB_SCHEMA"] = str(settings.db_schema)
        return BankProcess(code, port, command, env, self.storage.data_dir / f"bank-{code}.log")

    def seed_banks(self) -> None:
        """Demo cards in every bank, then the scenario's new cards (in the order of `people`)."""
        clock = FixedClock(self.start_at)
        runtimes = {code: BankRuntime.start(self.bank_settings(code), clock) for code in self.banks}
        try:
            for code, runtime in runtimes.items():
                generator.seed(runtime.db, runtime.bank, runtime.hsm, clock, kpm=0)
            for index, spec in enumerate(self.scenario.people):
                self._add_card(runtimes[spec.bank], spec, index)
        finally:
            for runtime in runtimes.values():
                runtime.close()

    def _add_card(self, runtime: BankRuntime, spec: CardSpec, index: int) -> None:
        bank = get_bank(spec.bank)
        if spec.demo is not None:
            demo = next(c for c in fixture.demo_cards(bank) if c.label == spec.demo)
            self.cards[spec.card_name] = Card(spec.card_name, spec.bank, demo.pan, demo.pin, demo.nik)
            return
        with runtime.db.begin() as conn:
            created = create_new_card(conn, runtime, spec, index, self.cards, self.start_at)
        for card in created:
            self.cards[card.name] = card

    # -- the switch ------------------------------------------------------------------------------

    def switch_settings(self) -> SwitchSettings:
        if self._switch_ports is None:
            self._switch_ports = (free_port(), free_port())
        iso_port, ops_port = self._switch_ports
        schema = self.storage.db_schema
        return SwitchSettings(
            iso_port=iso_port,
            ops_port=ops_port,
            data_dir=self.storage.data_dir,
            database_url=self.storage.database_url,
            db_schema=f"{schema}_switch" if schema else "switch",
            bank_urls={code: bank.url for code, bank in self.banks.items()},
            bank_timeout_ms=BANK_TIMEOUT_MS,
            saf_interval_ms=SAF_INTERVAL_MS,
        )

    def start_switch(self) -> None:
        """Start the switch (again) on its ports and data, in a thread of its own."""
        if self.switch is not None:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="scenario-switch", daemon=True)
        self._thread.start()
        runtime = SwitchRuntime(self.switch_settings())
        self.switch = runtime
        self._call(runtime.start(with_ops_api=True))

    def stop_switch(self) -> None:
        """Stop the switch cleanly (its journal drained); its ports and data stay for a restart."""
        loop, thread, runtime = self._loop, self._thread, self.switch
        self.switch = None
        if loop is None or thread is None:
            return
        try:
            if runtime is not None and loop.is_running():
                self._call(runtime.stop(), loop)
        finally:
            if loop.is_running():
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=STOP_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None

    def _call(self, coroutine: Any, loop: asyncio.AbstractEventLoop | None = None) -> Any:
        target = loop or self._loop
        assert target is not None
        return asyncio.run_coroutine_threadsafe(coroutine, target).result(timeout=SWITCH_CALL_TIMEOUT_S)

    @property
    def iso_port(self) -> int:
        return self.switch_settings().iso_port

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.switch_settings().ops_port}"

    # -- all of it -------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.seed_banks()
            for bank in self.banks.values():
                bank.start()
            self.start_switch()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything; never raises for one part that will not stop."""
        try:
            self.stop_switch()
        finally:
            for bank in self.banks.values():
                try:
                    bank.stop()
                except Exception:  # noqa: BLE001 - the next bank must be stopped all the same
                    bank.kill()

    # -- PIN blocks for the bank's counter -----------------------------------------------------

    @staticmethod
    def pin_block(bank: str, pan: str, pin: str) -> str:
        """A PIN block under the bank's (demo) ZPK, as the bank's PIN pad would send it."""
        zpk = pinblock.parse_key(demo_key_hex(bank, "zpk"))
        return pinblock.encipher(zpk, pin, pan).hex().upper()


# -- new cards ---------------------------------------------------------------------------------------


def _new_record(spec: CardSpec, index: int) -> KpmCreate:
    """The KPM of a new card: generated from (bank, index), with the file's name and NIK."""
    bank = get_bank(spec.bank)
    base = generator.generated_kpm(bank, generator.KPM_MAX - 1 - index).record
    village = VILLAGES[index % len(VILLAGES)]
    update: dict[str, Any] = {
        "province": village.province,
        "regency": village.regency,
        "district": village.district,
        "village": village.village,
        "pkh": spec.new == "pkh",
        "first_period": "2020-01",
    }
    if spec.kpm_name is not None:
        update["name"] = spec.kpm_name
    if spec.nik is not None:
        update["nik"] = spec.nik
    if spec.new == "no_emoney":
        update["kk_number"] = ""
    if spec.new == "zero_balance":
        update["first_period"] = generator.ZERO_BALANCE_FIRST_PERIOD
    return base.model_copy(update=update)


def new_card_pin(spec: CardSpec, index: int) -> str:
    return spec.pin or generator.demo_pin(get_bank(spec.bank), 900_000 + index)


def create_new_card(conn: Any, runtime: BankRuntime, spec: CardSpec, index: int, known: dict[str, Card], now: datetime) -> list[Card]:
    """Open the KPM (or reuse `same_kpm_as`'s), print and activate the card, put it in its
    situation. Returns the card and, for `replaced`, its replacement."""
    bank, hsm = runtime.bank, runtime.hsm
    pin = new_card_pin(spec, index)
    if spec.same_kpm_as is not None:
        other = known[spec.same_kpm_as]
        record = registry.card_record(conn, hsm, other.pan)
        assert record is not None
        kpm_id, nik = record.kpm_id, other.nik
    else:
        item = _new_record(spec, index)
        [opened] = registry.open_accounts(conn, [item], now)
        if opened.kpm_id is None:
            raise ValueError(f"card {spec.card_name}: the bank refused the KPM: {opened.reason}")
        kpm_id, nik = opened.kpm_id, item.nik
    [(card_id, pan)] = registry.print_cards(conn, bank, hsm, [kpm_id], now, ACTOR)
    _activate(conn, hsm, card_id, pan, pin, now)
    created = [Card(spec.card_name, spec.bank, pan, pin, nik)]
    situation = spec.new
    if situation == "pin_blocked":
        for _ in range(runtime.settings.pin_tries_max):
            conn.execute(PinEvent.__table__.insert().values(card_id=card_id, kind=PIN_FAIL, actor=ACTOR, at=now))
    elif situation in ("lost", "blocked"):
        registry.append_card_events(conn, [card_id], LOST if situation == "lost" else BLOCKED, now, ACTOR, "scenario")
    elif situation == "replaced":
        registry.append_card_events(conn, [card_id], DAMAGED, now, ACTOR, "Kartu rusak")
        record = registry.card_record(conn, hsm, pan)
        assert record is not None
        new_id, new_pan = registry.replace_card(conn, bank, hsm, record, now, ACTOR, "Penggantian kartu rusak")
        _activate(conn, hsm, new_id, new_pan, pin, now)
        if spec.replacement_as is not None:
            created.append(Card(spec.replacement_as, spec.bank, new_pan, pin, nik))
    return created


def _activate(conn: Any, hsm: Any, card_id: int, pan: str, pin: str, now: datetime) -> None:
    registry.append_card_events(conn, [card_id], DISTRIBUTED, now, ACTOR)
    registry.append_card_events(conn, [card_id], ACTIVATED, now, ACTOR)
    registry.set_pins(conn, [(card_id, hsm.pvv_for(pan, pin))], now, ACTOR)


@dataclass
class Http:
    """Bounded HTTP to the banks and the switch's ops API."""

    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=HTTP_TIMEOUT_S))

    async def get(self, url: str, **params: Any) -> Any:
        answer = await self.client.get(url, params={k: v for k, v in params.items() if v is not None})
        answer.raise_for_status()
        return answer.json()

    async def post(self, url: str, body: dict) -> Any:
        answer = await self.client.post(url, json=body)
        if answer.status_code >= 400:  # noqa: PLR2004
            raise RuntimeError(f"POST {url.split('/v1/', 1)[-1]} answered {answer.status_code}: {answer.text[:300]}")
        return answer.json()

    async def close(self) -> None:
        await self.client.aclose()
