"""The scenario runner's own network: bank and switch processes, the clock file, seeded cards.

Adapted from the end-to-end test harness (tests/switch/network.py), which product code must not
import. Every service runs as a process of its own running the command `sembako up` runs
(`sembako bank serve`, `sembako switch serve`), forked from a server that has their code loaded
(`scenarios.launcher`), so a step can stop, kill, pause and restart each on the same ports and
data. Everything listens on 127.0.0.1 on ephemeral ports, keeps its data in
the scenario's temporary directory (or its own PostgreSQL schemas, dropped at the end) and its
log beside it; every wait is bounded.

Time: the services read the scenario's simulated time from a clock file (`shared.clock.FileClock`,
settings `clock_file`), written by the runner's `ScenarioClock`: it starts at the scenario's
start and runs at wall speed, and an `advance` moves it for every service at once.

Cards are written straight into each bank's database BEFORE its process starts: the demo cards
(`bank_penyalur.demo.generator.seed` with no generated KPM) and the scenario's new cards in their
situations. Nothing is disbursed: disbursement is a step of the scenario. The switch's database
gets, before its process starts, the runner's own ops API token (viewer, every bank): the
runner reads the journal, the SAF queue and the reconciliation with it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bank_penyalur import registry
from bank_penyalur.demo import fixture, generator
from bank_penyalur.demo.regions import VILLAGES
from bank_penyalur.registry import KpmCreate
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.settings import BankSettings
from bank_penyalur.tables import ACTIVATED, BLOCKED, DAMAGED, DISTRIBUTED, LOST, PIN_FAIL, PinEvent
from shared import pinblock
from shared.banks import get_bank
from shared.cards import mask_pan
from shared.clock import ClockFile, FixedClock
from shared.credentials import SWITCH, demo_credential
from shared.db import normalise_url
from shared.keys import demo_key_hex
from switch import migrate as switch_migrate
from switch.ops import access
from switch.runtime import database_for as switch_database_for
from switch.settings import SwitchSettings
from switch.tables import VIEWER

from . import launcher
from .model import CardSpec, Scenario

HEALTH_TIMEOUT_S = 60.0  # several networks may start at once on a busy machine
STOP_TIMEOUT_S = 10.0
PORT_IN_USE_RETRIES = 5
PORT_IN_USE_PAUSE_S = 0.5
LOG_READ_BYTES_MAX = 65_536
HTTP_TIMEOUT_S = 10.0
BANK_TIMEOUT_MS = 3_000  # the switch's wait for a bank: below the terminals' own timeout (5 s)
SAF_INTERVAL_MS = 200
CARD_LIST_TTL_MS = 0  # every sign-on gets the bank's card list as it is now (a step may just have changed it)
ACTOR = "scenario-runner"
NEW_KPM_SEQ_BASE = 7_000  # NIK sequence numbers of generated new KPM, apart from the demo's
CLOCK_FILE = "clock.json"
_schemas = itertools.count(1)
# What the services must not take from the runner's own environment: its data and settings.
_ENV_DROPPED = ("DATABASE_URL", "SEMBAKO_DATA_DIR")
_ENV_PREFIXES_DROPPED = ("SEMBAKO_BANK_", "SEMBAKO_SWITCH_", "SEMBAKO_EWARONG_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(**settings: str) -> dict[str, str]:
    """The runner's environment less its data and service settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROPPED and not k.startswith(_ENV_PREFIXES_DROPPED)}
    return env | settings


@dataclass(frozen=True, slots=True)
class Card:
    """A card the steps name: its number, PIN and holder, as the runner knows them."""

    name: str
    bank: str
    pan: str
    pin: str
    nik: str


class ScenarioClock:
    """The scenario's time: its start, running at wall speed, moved forward by `advance`.

    Kept in the clock file every service of the network reads (`shared.clock.FileClock`): the
    runner's terminals use this object, the banks and the switch the file."""

    def __init__(self, start: datetime, path: Path, wall: Any = time.time) -> None:
        self.path = path
        self._wall = wall
        self._file = ClockFile(start, wall())
        self._file.write(path)

    def now(self) -> datetime:
        return self._file.now(self._wall())

    def advance(self, delta: timedelta) -> None:
        self._file = replace(self._file, shift_s=self._file.shift_s + delta.total_seconds())
        self._file.write(self.path)


@dataclass
class ServiceProcess:
    """One service as a process of its own on fixed ports and data, answering `health_url`."""

    name: str  # "bank bni", "switch"
    kind: str  # launcher.BANK or launcher.SWITCH
    options: dict[str, Any]  # of its serve command
    env: dict[str, str]
    health_url: str
    log_path: Path
    process: launcher.Forked | None = None
    paused: bool = False
    log_offsets: dict[Path, int] = field(default_factory=dict)  # each log's size at the last start

    @property
    def running(self) -> bool:
        """Started and not ended (a paused service is running: it holds its sockets)."""
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        """Start the process; `wait_healthy` waits until it answers."""
        self.log_offsets = {path: path.stat().st_size if path.exists() else 0 for path in self._logs()}
        self.process = launcher.start(self.kind, self.options, self.env, self.log_path)
        self.paused = False

    def wait_healthy(self, deadline: float) -> None:
        """Wait until it answers. A start that lost its port to another socket on this machine
        meanwhile (an outgoing connection may take a just-freed ephemeral port) is tried
        again on the same port, a few times, while the deadline lasts."""
        assert self.process is not None
        port_retries = PORT_IN_USE_RETRIES
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if port_retries and self._port_was_taken():
                    port_retries -= 1
                    time.sleep(PORT_IN_USE_PAUSE_S)
                    self.spawn()
                    continue
                raise RuntimeError(f"{self.name} exited at start: see {self.log_path}")
            try:
                if httpx.get(self.health_url, timeout=0.5).status_code == 200:  # noqa: PLR2004
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"{self.name} not healthy within {HEALTH_TIMEOUT_S:g} s: see {self.log_path}")

    def _logs(self) -> tuple[Path, Path]:
        """Its output, and the log it writes itself (`shared.logs`: logs/<service>.log)."""
        return self.log_path, self.log_path.parent / "logs" / f"{self.log_path.stem}.log"

    def _port_was_taken(self) -> bool:
        """Whether what the last start wrote says its port was in use."""
        for path, offset in self.log_offsets.items():
            try:
                with path.open("rb") as log_file:
                    log_file.seek(offset if offset <= path.stat().st_size else 0)  # (rotated meanwhile)
                    output = log_file.read(LOG_READ_BYTES_MAX).decode(errors="replace").lower()
            except OSError:
                continue
            if "address already in use" in output:
                return True
        return False

    def start(self) -> None:
        """Start it and wait (bounded) until it answers."""
        self.spawn()
        self.wait_healthy(time.monotonic() + HEALTH_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it does not end in time."""
        if self.running:
            assert self.process is not None
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, whatever it held in memory is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the service hangs; connections are accepted by the kernel, nothing answers."""
        if self.running and not self.paused:
            assert self.process is not None
            self.process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT: a paused service carries on with what waited meanwhile."""
        if self.running and self.paused:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
        self.paused = False


@dataclass
class BankProcess(ServiceProcess):
    code: str = ""
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class SwitchProcess(ServiceProcess):
    iso_port: int = 0
    ops_port: int = 0

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"


@dataclass
class Storage:
    """Where a scenario keeps its data: a temp dir, and optionally a PostgreSQL URL and schema."""

    data_dir: Path
    database_url: str | None = None
    db_schema: str | None = None

    def schema_of(self, part: str) -> str | None:
        """The PostgreSQL schema of one part (a bank, the switch, the shop); None on SQLite."""
        return f"{self.db_schema}_{part}" if self.db_schema else None


def storage_for(data_dir: Path, database_url: str | None) -> Storage:
    """SQLite in `data_dir`, or PostgreSQL in schemas of its own for this scenario run."""
    if database_url is None:
        return Storage(data_dir)
    return Storage(data_dir, database_url, f"scn_{os.getpid()}_{time.time_ns() % 10**9}_{next(_schemas)}")


class ScenarioNetwork:
    """The banks and the switch of one scenario run, and the clock they share."""

    def __init__(self, scenario: Scenario, storage: Storage) -> None:
        self.scenario = scenario
        self.storage = storage
        self.start_at = scenario.network.start
        self.clock = ScenarioClock(self.start_at, storage.data_dir / CLOCK_FILE)
        self.banks = {code: self._bank_process(code) for code in scenario.network.banks}
        self.switch = self._switch_process()
        self.cards: dict[str, Card] = {}
        self.ops_token: str | None = None  # the runner's token for the switch's ops API, once seeded

    @property
    def services(self) -> list[ServiceProcess]:
        return [*self.banks.values(), self.switch]

    def service(self, kind: str, ident: str | None = None) -> ServiceProcess:
        return self.switch if kind == "switch" else self.banks[str(ident)]

    # -- banks ---------------------------------------------------------------------------------

    def bank_settings(self, code: str) -> BankSettings:
        return BankSettings(
            bank=code,
            data_dir=self.storage.data_dir,
            database_url=self.storage.database_url,
            db_schema=self.storage.schema_of(code),
        )

    def bank_credential(self, code: str, holder: str) -> str:
        """The credential of `holder` ("switch", "operator") bank `code` accepts: its demo one,
        as its process starts without SEMBAKO_BANK_* settings."""
        return demo_credential(code, holder)

    def _bank_process(self, code: str) -> BankProcess:
        settings = self.bank_settings(code)
        port = free_port()
        options = {"bank": code, "port": port, "host": "127.0.0.1", "data_dir": settings.data_dir,
                   "database_url": settings.database_url, "seed_kpm": None}  # fmt: skip
        env = service_env(SEMBAKO_BANK_CLOCK_FILE=str(self.clock.path))
        if settings.database_url:
            env["SEMBAKO_BANK_DB_SCHEMA"] = str(settings.db_schema)
        log = self.storage.data_dir / f"bank-{code}.out"
        health = f"http://127.0.0.1:{port}/health"
        return BankProcess(f"bank {code}", launcher.BANK, options, env, health, log, code=code, port=port)

    def seed_banks(self) -> None:
        """Demo cards in every bank, then the scenario's new cards (in the order of `people`).
        A scenario network runs on the demo keys on purpose: their warning is not repeated here
        (each bank's own log has it)."""
        clock = FixedClock(self.start_at)
        with _quiet("bank_penyalur"):
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

    def seed_switch(self) -> None:
        """Bring the switch's database to head and issue the runner's ops API token in it."""
        settings = SwitchSettings(
            data_dir=self.storage.data_dir,
            database_url=self.storage.database_url,
            db_schema=self.storage.schema_of("switch") or "switch",
        )
        db = switch_database_for(settings)
        try:
            switch_migrate.upgrade(db)
            with db.begin() as conn:
                issued = access.create_token(conn, VIEWER, None, "scenario runner", ACTOR, self.start_at)
        finally:
            db.dispose()
        self.ops_token = issued.token

    def ops_headers(self) -> dict[str, str]:
        assert self.ops_token is not None, "the switch is seeded before it is read"
        return {"Authorization": f"Bearer {self.ops_token}"}

    def _switch_process(self) -> SwitchProcess:
        iso_port, ops_port = free_port(), free_port()
        data_dir = self.storage.data_dir
        options = {"port": iso_port, "ops_port": ops_port, "host": "127.0.0.1", "data_dir": data_dir,
                   "database_url": self.storage.database_url}  # fmt: skip
        env = service_env(
            SEMBAKO_SWITCH_BANK_URLS=json.dumps({code: bank.url for code, bank in self.banks.items()}),
            SEMBAKO_SWITCH_BANK_CREDENTIALS=json.dumps({code: self.bank_credential(code, SWITCH) for code in self.banks}),
            SEMBAKO_SWITCH_BANK_TIMEOUT_MS=str(BANK_TIMEOUT_MS),
            SEMBAKO_SWITCH_SAF_INTERVAL_MS=str(SAF_INTERVAL_MS),
            SEMBAKO_SWITCH_CARD_LIST_TTL_MS=str(CARD_LIST_TTL_MS),
            SEMBAKO_SWITCH_CLOCK_FILE=str(self.clock.path),
        )
        if self.storage.database_url:
            env["SEMBAKO_SWITCH_DB_SCHEMA"] = str(self.storage.schema_of("switch"))
        health = f"http://127.0.0.1:{ops_port}/health"
        return SwitchProcess("switch", launcher.SWITCH, options, env, health, data_dir / "switch.out", iso_port=iso_port, ops_port=ops_port)

    @property
    def iso_port(self) -> int:
        return self.switch.iso_port

    @property
    def ops_url(self) -> str:
        return self.switch.ops_url

    # -- all of it -------------------------------------------------------------------------------

    def start(self) -> None:
        """Seed the banks, then start every service at once and wait until all answer."""
        try:
            self.seed_banks()
            self.seed_switch()
            for service in self.services:
                service.spawn()
            deadline = time.monotonic() + HEALTH_TIMEOUT_S
            for service in self.services:
                service.wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything (SIGTERM to all at once, bounded waits), then drop the PostgreSQL
        schemas of this run; never raises for one part that will not stop."""
        for service in self.services:
            try:
                service.resume()
                if service.running:
                    assert service.process is not None
                    service.process.terminate()
            except Exception:  # noqa: BLE001, S110 - every service must be stopped all the same
                pass
        for service in self.services:
            try:
                service.stop()
            except Exception:  # noqa: BLE001 - the next one must be stopped all the same
                service.kill()
        self.drop_schemas()

    def drop_schemas(self) -> None:
        """The PostgreSQL schemas of this run, dropped (SQLite files go with the temp dir)."""
        if not self.storage.database_url:
            return
        parts = [*self.banks, "switch", "shop"]
        engine = create_engine(normalise_url(self.storage.database_url))
        try:
            with engine.begin() as conn:
                for part in parts:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.storage.schema_of(part)}" CASCADE'))
        finally:
            engine.dispose()

    # -- PIN blocks for the bank's counter -----------------------------------------------------

    @staticmethod
    def pin_block(bank: str, pan: str, pin: str) -> str:
        """A PIN block under the bank's (demo) ZPK, as the bank's PIN pad would send it."""
        zpk = pinblock.parse_key(demo_key_hex(bank, "zpk"))
        return pinblock.encipher(zpk, pin, pan).hex().upper()


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Warnings of `logger_name` held back for the block."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# -- new cards ---------------------------------------------------------------------------------------


def _new_record(spec: CardSpec, index: int) -> KpmCreate:
    """The KPM of a new card: generated from (bank, index), with the file's name and NIK."""
    bank = get_bank(spec.bank)
    generated = generator.generated_kpm(bank, generator.KPM_MAX - 1 - index)
    base = generated.record
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
    elif not generated.emoney:  # one generated KPM in a hundred has a broken KK number: not a new card's
        update["kk_number"] = base.kk_number + base.nik[-6:]
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

    async def get(self, url: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        answer = await self.client.get(url, headers=headers, params={k: v for k, v in params.items() if v is not None})
        return _json_of("GET", url, answer)

    async def post(self, url: str, body: dict, headers: dict[str, str] | None = None) -> Any:
        return _json_of("POST", url, await self.client.post(url, json=body, headers=headers))

    async def close(self) -> None:
        await self.client.aclose()


_PAN_RUN = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")
ANSWER_CHARS_SHOWN = 300


def masked(text: str) -> str:
    """`text` with every run of 13 to 19 digits (a card number) masked, for reports and errors."""
    return _PAN_RUN.sub(lambda found: mask_pan(found.group()), text)


def _json_of(method: str, url: str, answer: httpx.Response) -> Any:
    """The answer's JSON; an error answer raises naming the call (card numbers masked)."""
    if answer.status_code >= 400:  # noqa: PLR2004
        path = url.split("/v1/", 1)[-1]
        raise RuntimeError(masked(f"{method} {path} answered {answer.status_code}: {answer.text[:ANSWER_CHARS_SHOWN]}"))
    return answer.json()
