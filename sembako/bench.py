"""`sembako bench purchase|echo`: load on the running network through many terminal connections.

Each connection is a demo terminal that signs on, takes its working keys and then sends
purchases of generated demo cards of its own bank (PIN blocks made once per card). The run is
bounded in time and in requests in flight; only 127.0.0.1-style targets are meant. Prints one
JSON object: tps (approved per second), p50_ms, p99_ms, approved, declined, errors.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import typer

from shared import aio, iso8583, keys, pinblock, protocol
from shared.banks import BANKS, DEMO_TERMINALS_PER_BANK, Bank
from shared.clock import Clock, SystemClock
from shared.keys import demo_terminal_master_key_hex

bench_app = typer.Typer(help="Load the running network (loopback only) and print figures.", no_args_is_help=True)

REPLY_TIMEOUT_S = 10.0
SWEEP_S = 0.25  # how often a connection answers None to requests past their deadline
AMOUNT_IDR = 1_000


@dataclass
class Figures:
    latencies_ms: list[float] = field(default_factory=list)
    approved: int = 0
    declined: int = 0
    errors: int = 0
    by_rc: dict[str, int] = field(default_factory=dict)

    def count(self, rc: str | None, latency_ms: float) -> None:
        self.latencies_ms.append(latency_ms)
        if rc is not None:
            self.by_rc[rc] = self.by_rc.get(rc, 0) + 1
        if rc == "00":
            self.approved += 1
        elif rc is None:
            self.errors += 1
        else:
            self.declined += 1

    def summary(self, elapsed_s: float, **extra) -> dict:  # noqa: ANN003
        ordered = sorted(self.latencies_ms)

        def pct(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))], 2) if ordered else 0.0

        return {
            "seconds": round(elapsed_s, 2),
            "requests": len(ordered),
            "tps": round(self.approved / elapsed_s, 1) if elapsed_s else 0.0,
            "rps": round(len(ordered) / elapsed_s, 1) if elapsed_s else 0.0,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "approved": self.approved,
            "declined": self.declined,
            "errors": self.errors,
            "by_rc": dict(sorted(self.by_rc.items())),
            **extra,
        }


class Connection:
    """One terminal connection with requests in flight matched by STAN."""

    def __init__(self, bank: Bank, serial: int, first_stan: int, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()  # WIB, as the terminals and the switch keep time (fields 7, 12, 13)
        self.tid = bank.terminal_id(serial)
        self.terminal = protocol.Terminal(self.tid, bank.merchant_id(serial))
        self.bank = bank
        self._stans = itertools.count(first_stan)
        self.last_stan = first_stan
        self._waiting: dict[str, asyncio.Future] = {}
        self._deadlines: deque[tuple[float, str, asyncio.Future]] = deque()  # emptied up to the oldest unanswered each sweep
        self.tak = b""
        self.tpk = b""

    async def open(self, host: str, port: int) -> None:
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(host, port), REPLY_TIMEOUT_S)
        self._reading = asyncio.create_task(self._read_loop())
        self._sweeping = asyncio.create_task(self._sweep_loop())

    def next_stan(self) -> str:
        self.last_stan = next(self._stans) % 1_000_000 or next(self._stans)
        return f"{self.last_stan:06d}"

    async def _read_loop(self) -> None:
        try:
            while True:
                body = await iso8583.read_frame(self.reader, int(REPLY_TIMEOUT_S * 1000 * 6))
                doc = iso8583.decode(body[iso8583.TPDU_BYTES :])
                waiter = self._waiting.pop(str(doc.get("11")), None)
                if waiter and not waiter.done():
                    waiter.set_result(doc)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError):
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_result(None)

    async def request(self, doc: dict, mac: bool = True, mac_key: bytes | None = None) -> dict | None:
        """Send `doc` (MACed under the TAK, or under `mac_key`, or not at all) and await its answer
        (None when none came within REPLY_TIMEOUT_S)."""
        key = mac_key or (self.tak if mac else None)
        message = iso8583.encode_with_mac(doc, key) if key else iso8583.encode(doc)
        waiter = asyncio.get_running_loop().create_future()
        stan = str(doc["11"])
        self._waiting[stan] = waiter
        self._deadlines.append((time.monotonic() + REPLY_TIMEOUT_S, stan, waiter))
        self.writer.write(iso8583.frame(iso8583.Tpdu(1, 0), message))
        return await waiter

    async def _sweep_loop(self) -> None:
        """Answer None to each request past its deadline: one timer per connection, not one per
        request (the deadlines come in the order the requests went)."""
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            while self._deadlines and (self._deadlines[0][2].done() or self._deadlines[0][0] <= now):
                _, stan, waiter = self._deadlines.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    if self._waiting.get(stan) is waiter:
                        del self._waiting[stan]

    async def sign_on(self) -> None:
        now = self.clock.now()
        answer = await self.request(protocol.network_request(self.terminal, iso8583.SIGN_ON, self.next_stan(), now), mac=False)
        if not answer or answer.get("39") != "00":
            raise RuntimeError(f"{self.tid}: sign-on refused ({answer and answer.get('39')})")
        tmk = bytes.fromhex(demo_terminal_master_key_hex(self.tid))
        request = protocol.key_exchange_request(self.terminal, self.next_stan(), now, str(protocol.challenge_of(answer)))
        answer = await self.request(request, mac_key=keys.key_exchange_key(tmk))
        if not answer or answer.get("39") != "00":
            raise RuntimeError(f"{self.tid}: key exchange refused ({answer and answer.get('39')})")
        tpk_wrapped, tak_wrapped, _, _ = protocol.parse_keys_field(str(answer["48"]))
        self.tpk, self.tak = keys.unwrap(tmk, tpk_wrapped), keys.unwrap(tmk, tak_wrapped)

    async def close(self) -> None:
        self._reading.cancel()
        self._sweeping.cancel()
        self.writer.close()


def cards_for(bank: Bank, kpm: int) -> list[tuple[str, str]]:
    from bank_penyalur.demo import generator  # the published demo cards and PINs

    people = (generator.generated_kpm(bank, i) for i in range(kpm))
    return [(p.pan, p.pin) for p in people if p.spendable]


class StanBook:
    """Where each demo terminal's STAN counter stands, kept between runs like a real EDC keeps
    it: a STAN used twice on one day is a duplicate to the switch and the bank."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stans: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}

    def first(self, tid: str) -> int:
        return self.stans.get(tid, 0) + 1

    def save(self, connections: list[Connection]) -> None:
        self.stans |= {c.tid: c.last_stan for c in connections}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.stans))
        temporary.replace(self.path)


# Demo terminals 1-8 of each bank are left to people (edc-cli, training); the load uses the rest.
FIRST_BENCH_TERMINAL = 9


async def open_connections(host: str, port: int, count: int, book: StanBook) -> list[Connection]:
    serials = range(FIRST_BENCH_TERMINAL, DEMO_TERMINALS_PER_BANK + 1)
    pairs = [(bank, serial) for serial in serials for bank in BANKS.values()]
    if count > len(pairs):
        raise typer.BadParameter(f"at most {len(pairs)} terminal connections (demo terminals)")
    connections = [Connection(bank, serial, book.first(bank.terminal_id(serial))) for bank, serial in pairs[:count]]
    for connection in connections:
        await connection.open(host, port)
    await asyncio.gather(*(c.sign_on() for c in connections))
    return connections


async def run_purchases(
    host: str, port: int, seconds: float, concurrency: int, connections_count: int, kpm: int, rate: float | None, book: StanBook
) -> dict:
    connections = await open_connections(host, port, connections_count, book)
    per_bank = {code: cards_for(bank, kpm) for code, bank in BANKS.items()}
    figures = Figures()
    deadline = time.monotonic() + seconds
    pace = _Pacer(rate)

    async def worker(index: int) -> None:
        connection = connections[index % len(connections)]
        cards = per_bank[connection.bank.code]
        blocks: dict[str, str] = {}
        for sequence in itertools.count():
            if time.monotonic() >= deadline:
                return
            await pace.wait()
            pan, pin = cards[(index + sequence * concurrency) % len(cards)]
            block = blocks.get(pan) or blocks.setdefault(pan, pinblock.encipher(connection.tpk, pin, pan).hex().upper())
            doc = protocol.purchase_request(connection.terminal, connection.next_stan(), connection.clock.now(), pan, AMOUNT_IDR, block, 1)
            started = time.perf_counter()
            answer = await connection.request(doc)
            figures.count(answer.get("39") if answer else None, (time.perf_counter() - started) * 1000)

    elapsed = await _run_workers(worker, concurrency, connections, book)
    return figures.summary(elapsed, concurrency=concurrency, connections=len(connections), offered_rate=rate)


async def run_echo(host: str, port: int, seconds: float, concurrency: int, connections_count: int, book: StanBook) -> dict:
    connections = await open_connections(host, port, connections_count, book)
    figures = Figures()
    deadline = time.monotonic() + seconds

    async def worker(index: int) -> None:
        connection = connections[index % len(connections)]
        while time.monotonic() < deadline:
            doc = protocol.network_request(connection.terminal, iso8583.ECHO, connection.next_stan(), connection.clock.now())
            started = time.perf_counter()
            answer = await connection.request(doc, mac=False)
            figures.count(answer.get("39") if answer else None, (time.perf_counter() - started) * 1000)

    elapsed = await _run_workers(worker, concurrency, connections, book)
    result = figures.summary(elapsed, concurrency=concurrency, connections=len(connections))
    result["messages_per_s"] = result.pop("tps")
    return result


async def _run_workers(worker, concurrency: int, connections: list[Connection], book: StanBook) -> float:  # noqa: ANN001
    """Run `concurrency` workers to their deadline, close the connections, keep the STANs;
    returns the elapsed seconds."""
    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    for connection in connections:
        await connection.close()
    book.save(connections)
    return elapsed


class _Pacer:
    """Open-loop pacing at `rate` requests per second (None: as fast as answers come)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1 / rate if rate else 0.0
        self._next = time.monotonic()

    async def wait(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        self._next = max(self._next + self._interval, now - 1.0)
        if self._next > now:
            await asyncio.sleep(self._next - now)


SecondsOpt = Annotated[float, typer.Option(help="How long to run (at most 600)", min=0.1, max=600)]
SwitchOpt = Annotated[str, typer.Option("--switch", help="HOST:PORT of the switch's ISO 8583 listener")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR", help="Where the terminals' STAN counters are kept")]


def _book(data_dir: Path) -> StanBook:
    return StanBook(data_dir / "bench" / "stans.json")


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter("expecting HOST:PORT", param_hint="--switch")
    return host, int(port)


def network_database(ops_url: str, timeout_s: float = 3.0) -> str:
    """What the network under load runs on, as its switch reports it on /health ("sqlite",
    "postgresql"), or "unknown" when the ops API does not say."""
    try:
        answer = httpx.get(f"{ops_url.rstrip('/')}/health", timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError):
        return "unknown"
    database = answer.get("database") if isinstance(answer, dict) else None
    return database if isinstance(database, str) and database else "unknown"


@bench_app.command("purchase")
def purchase(
    seconds: SecondsOpt = 20.0,
    concurrency: Annotated[int, typer.Option(min=1, max=2_000)] = 64,
    connections: Annotated[int, typer.Option(min=1, max=160)] = 32,
    kpm: Annotated[int, typer.Option(help="Generated demo cards per bank to spread over")] = 1_000,
    rate: Annotated[float | None, typer.Option(help="Offered purchases per second (default: closed loop)")] = None,
    switch: SwitchOpt = "127.0.0.1:8583",
    ops: Annotated[str, typer.Option("--ops", help="The network's switch ops API, asked what database it runs on")] = "http://127.0.0.1:8000",
    data_dir: DataDirOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Purchases through the switch to the banks: throughput and latency."""
    host, port = _host_port(switch)
    try:
        result = aio.run(run_purchases(host, port, seconds, concurrency, connections, kpm, rate, _book(data_dir)))
    except (OSError, RuntimeError) as exc:
        raise typer.BadParameter(f"cannot drive the switch at {switch}: {exc}") from None
    result |= {"bench": "purchase", "database": network_database(ops)}
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@bench_app.command("echo")
def echo(
    seconds: SecondsOpt = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, max=2_000)] = 64,
    connections: Annotated[int, typer.Option(min=1, max=160)] = 16,
    switch: SwitchOpt = "127.0.0.1:8583",
    data_dir: DataDirOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """0800 echo messages per second through the switch."""
    host, port = _host_port(switch)
    try:
        result = aio.run(run_echo(host, port, seconds, concurrency, connections, _book(data_dir)))
    except (OSError, RuntimeError) as exc:
        raise typer.BadParameter(f"cannot drive the switch at {switch}: {exc}") from None
    result["bench"] = "echo"
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))
