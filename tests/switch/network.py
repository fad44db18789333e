"""A real network for end-to-end tests: bank processes, the switch, and a raw ISO terminal.

Banks run as child processes (so a test can stop, freeze and resume them); the switch runs in
a background thread with its own event loop, on ephemeral ports. Everything listens on
127.0.0.1 only and every wait is bounded.
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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from shared import iso8583, keys, pinblock, protocol
from shared.banks import get_bank
from shared.clock import period_of
from shared.credentials import SWITCH
from shared.keys import demo_terminal_master_key_hex

from bank_penyalur import store as bank_store
from bank_penyalur.demo import generator
from bank_penyalur.ledger import check_ledger
from bank_penyalur.disburse import disburse
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.settings import BankSettings
from switch.runtime import SwitchRuntime
from switch.settings import SwitchSettings

PERIOD = period_of(datetime.now())  # the network runs on the system clock: this month is credited
HEALTH_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 10.0


PORT_RETRIES = 5


def _says_port_in_use(offsets: dict[Path, int]) -> bool:
    """Whether any of these logs says, past its offset, that the port was in use."""
    for path, offset in offsets.items():
        if path.exists() and "address already in use" in path.read_bytes()[offset:].decode(errors="replace").lower():
            return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BankProcess:
    code: str
    port: int
    command: list[str]  # without --port: `start` gives it
    env: dict
    log_path: Path
    own_log_path: Path  # what the service writes itself (shared.logs)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it answers. `free_port` frees its port before the bank binds
        it, and an outgoing connection may take it meanwhile: a start that lost its port (its
        logs say so) is tried again on another one, a few times (the switch is not told yet)."""
        for retries_left in range(PORT_RETRIES, -1, -1):
            offsets = {path: path.stat().st_size if path.exists() else 0 for path in (self.log_path, self.own_log_path)}
            if self._started():
                return
            if not retries_left or not _says_port_in_use(offsets):
                raise RuntimeError(f"bank {self.code} exited: see {self.log_path}")
            self.port = free_port()

    def _started(self) -> bool:
        """Whether it became healthy; False when it exited first."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([*self.command, "--port", str(self.port)], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/health", timeout=0.5).status_code == 200:
                    return True
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError(f"bank {self.code} not healthy in {HEALTH_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def freeze(self) -> None:
        """The bank stops answering but keeps accepting: requests hang (unknown outcome)."""
        assert self.process
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process
        self.process.send_signal(signal.SIGCONT)


class Network:
    def __init__(self, tmp: Path, storage: dict, banks: tuple[str, ...] = ("bni",), kpm: int = 40, bank_timeout_ms: int = 800) -> None:
        self.tmp = tmp
        self.storage = storage
        self.kpm = kpm
        self.banks = {code: self._bank_process(code) for code in banks}
        self._bank_timeout_ms = bank_timeout_ms
        self.ops_api = True
        self.switch: SwitchRuntime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- banks ----------------------------------------------------------------------------

    def _bank_settings(self, code: str) -> BankSettings:
        schema = self.storage.get("db_schema")
        return BankSettings(
            bank=code,
            data_dir=self.storage["data_dir"],
            database_url=self.storage.get("database_url"),
            db_schema=f"{schema}_{code}" if schema else None,
        )

    def _bank_process(self, code: str) -> BankProcess:
        settings = self._bank_settings(code)
        command = [sys.executable, "-m", "sembako", "bank", "serve", "--bank", code, "--data-dir", str(settings.data_dir)]
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        if settings.database_url:
            command += ["--database-url", settings.database_url]
            env["SEMBAKO_BANK_DB_SCHEMA"] = str(settings.db_schema)
        own_log = Path(settings.data_dir) / "logs" / f"bank-{code}.log"
        return BankProcess(code, free_port(), command, env, self.tmp / f"bank-{code}.log", own_log)

    def bank_headers(self, code: str, holder: str = SWITCH) -> dict[str, str]:
        """The header carrying `holder`'s credential ("switch", "operator") at bank `code`, as its
        process reads its settings."""
        return self._bank_settings(code).bearer(holder)

    def bank_runtime(self, code: str) -> BankRuntime:
        return BankRuntime.start(self._bank_settings(code))

    def prepare_banks(self) -> None:
        for code in self.banks:
            runtime = self.bank_runtime(code)
            try:
                generator.seed(runtime.db, runtime.bank, runtime.hsm, runtime.clock, kpm=self.kpm)
                disburse(runtime.db, runtime.clock, PERIOD, 150_000)
            finally:
                runtime.close()

    # -- switch -----------------------------------------------------------------------------

    def switch_settings(self) -> SwitchSettings:
        schema = self.storage.get("db_schema")
        return SwitchSettings(
            iso_port=0,
            ops_port=free_port(),
            data_dir=self.storage["data_dir"],
            database_url=self.storage.get("database_url"),
            db_schema=f"{schema}_switch" if schema else "switch",
            bank_urls={code: bank.url for code, bank in self.banks.items()},
            bank_timeout_ms=self._bank_timeout_ms,
            saf_interval_ms=200,
        )

    def start_switch(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="switch-loop", daemon=True)
        self._thread.start()
        self.switch = SwitchRuntime(self.switch_settings())
        self.call(self.switch.start(with_ops_api=self.ops_api))

    def stop_switch(self) -> None:
        if self.switch and self._loop and self._loop.is_running():
            self.call(self.switch.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
        self.switch = None

    def call(self, coroutine, timeout_s: float = 30.0):  # noqa: ANN001, ANN201
        """Run a coroutine on the switch's loop and wait for it."""
        assert self._loop
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout_s)

    @property
    def iso_port(self) -> int:
        assert self.switch and self.switch.iso
        return self.switch.iso.port

    @property
    def ops_url(self) -> str:
        assert self.switch
        return f"http://127.0.0.1:{self.switch.settings.ops_port}"

    def ops_headers(self, role: str = "admin", bank: str | None = None) -> dict[str, str]:
        """The header carrying a new token for the switch's ops API (default: the switch
        operator's admin), issued into the switch's database as `sembako ops token create` does."""
        from tests.switch.ops_tokens import bearer, issue

        assert self.switch
        return bearer(issue(self.switch.db, role, bank))

    def start(self) -> Network:
        self.prepare_banks()
        try:
            for bank in self.banks.values():
                bank.start()
            self.start_switch()
        except BaseException:
            self.stop()  # never leave bank processes behind
            raise
        return self

    def stop(self) -> None:
        self.stop_switch()
        for bank in self.banks.values():
            bank.stop()

    # -- reading a bank's books ------------------------------------------------------------------

    def balance_of(self, pan: str, code: str = "bni") -> int:
        """The e-money balance of card `pan`, read from the bank's own database."""
        runtime = self.bank_runtime(code)
        try:
            with runtime.db.read() as conn:
                state = bank_store.card_state(conn, runtime.hsm.pan_ref(pan))
            assert state is not None, f"no card {pan[:6]}... at {code}"
            return state.balance_idr
        finally:
            runtime.close()

    def assert_ledger_balanced(self, code: str = "bni") -> None:
        runtime = self.bank_runtime(code)
        try:
            with runtime.db.read() as conn:
                result = check_ledger(conn)
            assert result.ok and result.balance_sum_idr == 0, result
        finally:
            runtime.close()


# -- a raw ISO 8583 terminal ------------------------------------------------------------------

_STAN_BLOCKS = itertools.count(0, 1_000)


@dataclass
class RawTerminal:
    """A bare terminal speaking the protocol with blocking sockets: for tests that need to send
    exactly the bytes they choose (duplicates, malformed frames)."""

    tid: str
    mid: str
    port: int
    # STANs never repeat within a test run, as a real terminal keeps its counter across sessions.
    stan: int = field(default_factory=lambda: next(_STAN_BLOCKS))
    tpk: bytes | None = None
    tak: bytes | None = None
    sock: socket.socket | None = field(default=None, repr=False)

    def connect(self) -> RawTerminal:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=REPLY_TIMEOUT_S)
        return self

    def close(self) -> None:
        if self.sock:
            self.sock.close()

    @property
    def terminal(self) -> protocol.Terminal:
        return protocol.Terminal(self.tid, self.mid)

    def next_stan(self) -> str:
        self.stan += 1
        return f"{self.stan:06d}"

    def send_raw(self, data: bytes) -> None:
        assert self.sock
        self.sock.sendall(data)

    def send_message(self, message: bytes) -> None:
        self.send_raw(iso8583.frame(iso8583.Tpdu(1, 0), message))

    def read_message(self) -> tuple[bytes, dict]:
        assert self.sock
        header = self._read_exactly(2)
        body = self._read_exactly(int.from_bytes(header, "big"))
        message = body[iso8583.TPDU_BYTES :]
        return message, iso8583.decode(message)

    def _read_exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("switch closed the connection")
            data += chunk
        return data

    def exchange(self, doc: dict, mac: bool = True) -> dict:
        message = iso8583.encode_with_mac(doc, self.tak) if mac else iso8583.encode(doc)
        self.send_message(message)
        reply_bytes, reply = self.read_message()
        if mac and reply.get("39") not in ("58",) and ("64" in reply or "128" in reply):
            assert iso8583.mac_valid(reply_bytes, reply, self.tak), "switch answer MAC"
        return reply

    def sign_on(self) -> dict:
        now = datetime.now()
        answer = self.exchange(protocol.network_request(self.terminal, iso8583.SIGN_ON, self.next_stan(), now), mac=False)
        if answer["39"] != "00":
            return answer
        tmk = bytes.fromhex(demo_terminal_master_key_hex(self.tid))
        request = protocol.key_exchange_request(self.terminal, self.next_stan(), now, str(protocol.challenge_of(answer)))
        self.send_message(iso8583.encode_with_mac(request, keys.key_exchange_key(tmk)))
        _, answer = self.read_message()
        if answer["39"] != "00":
            return answer
        tpk_wrapped, tak_wrapped, tpk_kcv, tak_kcv = protocol.parse_keys_field(answer["48"])
        self.tpk, self.tak = keys.unwrap(tmk, tpk_wrapped), keys.unwrap(tmk, tak_wrapped)
        assert keys.kcv(self.tpk) == tpk_kcv and keys.kcv(self.tak) == tak_kcv
        return answer

    def echo(self) -> dict:
        return self.exchange(protocol.network_request(self.terminal, iso8583.ECHO, self.next_stan(), datetime.now()), mac=False)

    def pin_block(self, pan: str, pin: str) -> str:
        assert self.tpk
        return pinblock.encipher(self.tpk, pin, pan).hex().upper()

    def purchase_doc(self, pan: str, pin: str, amount_idr: int, stan: str | None = None, now: datetime | None = None) -> dict:
        return protocol.purchase_request(self.terminal, stan or self.next_stan(), now or datetime.now(), pan, amount_idr, self.pin_block(pan, pin), 1)

    def inquiry_doc(self, pan: str, pin: str) -> dict:
        return protocol.inquiry_request(self.terminal, self.next_stan(), datetime.now(), pan, self.pin_block(pan, pin), 1)

    def purchase(self, pan: str, pin: str, amount_idr: int) -> dict:
        return self.exchange(self.purchase_doc(pan, pin, amount_idr))

    def inquiry(self, pan: str, pin: str) -> dict:
        return self.exchange(self.inquiry_doc(pan, pin))

    def reversal(self, original: dict, repeat: bool = False) -> dict:
        return self.exchange(protocol.reversal_request(original, self.next_stan(), datetime.now(), repeat))


def raw_terminal(network: Network, bank: str = "bni", serial: int = 1) -> RawTerminal:
    b = get_bank(bank)
    return RawTerminal(b.terminal_id(serial), b.merchant_id(serial), network.iso_port).connect()


def network_per_storage(request, tmp_path_factory, name: str) -> Iterator[Network]:  # noqa: ANN001
    """A started network on the storage `request.param` names: "sqlite" (files in a temp dir) or
    "postgresql" (schemas of its own, dropped afterwards; skipped when PostgreSQL is absent)."""
    from sqlalchemy import create_engine, text

    from tests.conftest import pg_skip_reason, postgres_url

    tmp = tmp_path_factory.mktemp(f"{name}-{request.param}")
    storage: dict = {"data_dir": tmp}
    if request.param == "postgresql":
        reason = pg_skip_reason()
        if reason:
            pytest.skip(reason)
        storage |= {"database_url": postgres_url(), "db_schema": f"{name}_{uuid.uuid4().hex[:10]}"}
    net = Network(tmp, storage).start()
    try:
        yield net
    finally:
        net.stop()
        if "db_schema" in storage:
            engine = create_engine(postgres_url())
            with engine.begin() as conn:
                for suffix in (*net.banks, "switch"):
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{storage["db_schema"]}_{suffix}" CASCADE'))
            engine.dispose()
