"""Fuzz the switch's ISO 8583 listener with random and mutated frames; prints one JSON line.

By default it starts its own network (one bank process and the switch in this process, SQLite in
a temp dir, as tests.switch.network does) with the switch logging to a rotating file there;
`--switch HOST:PORT` fuzzes a running switch instead (a demo network: MACed requests are made
under the demo terminal keys and may post Rp1.000 purchases; `--log` names its log file to count
tracebacks in).

Frames, on `--connections` connections in turn: random bytes; bad MTIs (0190, 9999, 02a0,
0210, ...); valid frames (echo, MACed purchase, inquiry, advice and reversal) with one byte,
one bitmap bit, the TPDU, the end or the length prefix changed; and valid requests with one field
changed and MACed again (so they pass the MAC check and reach processing). A frame with a
wrong length prefix puts the stream out of step: its connection is closed and opened anew.
For every other frame the answer is known in advance (DESIGN.md: answered when the MTI has a
response MTI, else dropped): each expected answer is awaited and checked.

After every `--echo-every` frames a well-formed echo (0800 code 301) must be answered on a
fresh connection. Bounded: `--frames` frames (default 20,000), every wait has a timeout.

    python bench/fuzz_wire.py --frames 20000
    python bench/fuzz_wire.py --switch 127.0.0.1:8583 --log data/logs/switch.log
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import iso8583, protocol  # noqa: E402
from shared.banks import get_bank  # noqa: E402
from shared.cards import make_pan  # noqa: E402

REPLY_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0
BODY_BYTES_MAX = 300
TPDU = iso8583.Tpdu(1, 0)
BNI = get_bank("bni")
FUZZ_SERIAL = 40  # the demo terminal whose keys MAC the requests
ECHO_SERIAL = 41  # the demo terminal that checks the switch still answers
FUZZ_PAN = make_pan("93600009", 8_888_888)  # a BNI card number no KPM holds
MUTABLE_FIELDS = ("2", "3", "4", "7", "11", "12", "13", "22", "24", "41", "42", "49", "52", "60", "90")
PRINTABLE = "".join(chr(c) for c in range(32, 127))


@dataclass
class Frame:
    data: bytes  # what goes on the wire, length prefix included
    kind: str
    expect: str | None  # the response MTI expected, None when the frame must be dropped
    resync: bool = False  # the stream is out of step after it: reconnect


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    expected: int = 0
    missing: int = 0
    unexpected: int = 0
    connections_lost: int = 0
    echoes_ok: int = 0
    echoes_missed: int = 0
    kinds: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)


# -- frames -------------------------------------------------------------------------------------


def wire(body: bytes) -> bytes:
    return len(body).to_bytes(iso8583.LENGTH_BYTES, "big") + body


def framed(message: bytes, kind: str) -> Frame:
    body = TPDU.to_bytes() + message
    return Frame(wire(body), kind, iso8583.response_mti_or_none(iso8583.peek_mti(message)))


class Generator:
    """Makes frames from seeds: valid requests of the fuzz terminal, MACed under its keys."""

    def __init__(self, rng: random.Random, tak: bytes, tpk: bytes) -> None:
        self.rng = rng
        self.tak = tak
        self.tpk = tpk
        self.terminal = protocol.Terminal(BNI.terminal_id(FUZZ_SERIAL), BNI.merchant_id(FUZZ_SERIAL))
        self.stan = rng.randrange(100_000, 900_000)
        self.makers: list[tuple[float, Callable[[], Frame]]] = [
            (0.15, self.random_bytes),
            (0.15, self.bad_mti),
            (0.35, self.mutated_bytes),
            (0.25, self.mutated_field),
            (0.05, self.bad_length),
            (0.05, self.valid),
        ]

    def next(self) -> Frame:
        pick = self.rng.random()
        for weight, maker in self.makers:
            pick -= weight
            if pick < 0:
                return maker()
        return self.makers[-1][1]()

    # seeds

    def _stan(self) -> str:
        self.stan = self.stan % 999_999 + 1
        return f"{self.stan:06d}"

    def seed_doc(self) -> dict:
        from shared import pinblock

        now = datetime.now()
        kind = self.rng.choice(("echo", "purchase", "inquiry", "advice", "reversal"))
        if kind == "echo":
            return protocol.network_request(self.terminal, iso8583.ECHO, self._stan(), now)
        block = pinblock.encipher(self.tpk, "123456", FUZZ_PAN).hex().upper()
        purchase = protocol.purchase_request(self.terminal, self._stan(), now, FUZZ_PAN, 1_000, block, 1)
        if kind == "purchase":
            return purchase
        if kind == "inquiry":
            return protocol.inquiry_request(self.terminal, self._stan(), now, FUZZ_PAN, block, 1)
        if kind == "advice":
            return {**{k: v for k, v in purchase.items() if k != "52"}, "t": iso8583.ADVICE, "38": "123456"}
        return protocol.reversal_request(purchase, self._stan(), now)

    def seed_message(self) -> bytes:
        doc = self.seed_doc()
        return iso8583.encode(doc) if doc["t"] == iso8583.NETWORK else iso8583.encode_with_mac(doc, self.tak)

    # makers

    def valid(self) -> Frame:
        return framed(self.seed_message(), "valid")

    def random_bytes(self) -> Frame:
        body = self.rng.randbytes(self.rng.randrange(0, BODY_BYTES_MAX))
        expect = iso8583.response_mti_or_none(iso8583.peek_mti(body[iso8583.TPDU_BYTES :]))
        return Frame(wire(body), "random", expect)

    def bad_mti(self) -> Frame:
        mti = self.rng.choice([b"0190", b"9999", b"02a0", b"0210", b"0110", b"02 0", b"\x00\x00\x00\x00",
                               self.rng.randbytes(4), str(self.rng.randrange(10_000)).zfill(4).encode()])
        rest = self.rng.choice([bytes(8), self.seed_message()[4:], self.rng.randbytes(self.rng.randrange(0, 60))])
        return framed(mti + rest, "bad_mti")

    def mutated_bytes(self) -> Frame:
        message = bytearray(self.seed_message())
        how = self.rng.choice(("byte", "bitmap_bit", "cut", "grow", "tpdu"))
        if how == "byte":
            message[self.rng.randrange(len(message))] = self.rng.randrange(256)
        elif how == "bitmap_bit":
            bit = self.rng.randrange(64 if message[4] & 0x80 == 0 else 128)
            message[4 + bit // 8] ^= 0x80 >> (bit % 8)
        elif how == "cut":
            del message[self.rng.randrange(len(message)) :]
        elif how == "grow":
            message += self.rng.randbytes(self.rng.randrange(1, 40))
        else:
            tpdu = bytearray(TPDU.to_bytes())
            tpdu[self.rng.randrange(len(tpdu))] = self.rng.randrange(256)
            body = bytes(tpdu) + bytes(message)
            return Frame(wire(body), "mutated_tpdu", iso8583.response_mti_or_none(iso8583.peek_mti(bytes(message))))
        return framed(bytes(message), f"mutated_{how}")

    def mutated_field(self) -> Frame:
        doc = self.seed_doc()
        name = self.rng.choice(MUTABLE_FIELDS)
        doc[name] = self.rng.choice([
            "".join(self.rng.choice(PRINTABLE) for _ in range(self.rng.randrange(0, 20))),
            "".join(self.rng.choice("0123456789") for _ in range(len(str(doc.get(name, "000000"))))),
            self.rng.randbytes(8).hex().upper(),
        ])
        try:
            message = iso8583.encode_with_mac(doc, self.tak) if doc["t"] != iso8583.NETWORK else iso8583.encode(doc)
        except iso8583.MessageError:
            return self.mutated_bytes()  # a value the codec cannot carry
        return framed(message, "mutated_field")

    def bad_length(self) -> Frame:
        body = TPDU.to_bytes() + self.seed_message()
        claimed = self.rng.choice([0, 1, 4, len(body) - 1, len(body) + 1, len(body) + 50, 65_535])
        return Frame(claimed.to_bytes(2, "big") + body, "bad_length", None, resync=True)


# -- connections ---------------------------------------------------------------------------------------


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock: socket.socket | None = None

    def open(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT_S)
            self.sock.settimeout(REPLY_TIMEOUT_S)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def read_answer(self) -> bytes:
        header = self._exactly(iso8583.LENGTH_BYTES)
        return self._exactly(int.from_bytes(header, "big"))

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.open().recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed by the switch")
            data += chunk
        return data


def send_one(connection: Connection, frame: Frame, tally: Tally) -> None:
    tally.sent += 1
    tally.kinds[frame.kind] += 1
    try:
        connection.open().sendall(frame.data)
        if frame.resync:
            connection.close()
            return
        if frame.expect is None:
            return
        tally.expected += 1
        body = connection.read_answer()
    except (TimeoutError, socket.timeout):
        tally.missing += 1
        connection.close()
        return
    except OSError:
        tally.connections_lost += 1
        if frame.expect is not None and not frame.resync:
            tally.missing += 1
        connection.close()
        return
    tally.answered += 1
    check_answer(body, frame, tally)


def check_answer(body: bytes, frame: Frame, tally: Tally) -> None:
    try:
        doc = iso8583.decode(iso8583.split_frame(body)[1])
    except ValueError:
        tally.unexpected += 1
        return
    tally.codes[str(doc.get("39"))] += 1
    if doc.get("t") != frame.expect:
        tally.unexpected += 1


def echo_ok(host: str, port: int) -> bool:
    terminal = protocol.Terminal(BNI.terminal_id(ECHO_SERIAL), BNI.merchant_id(ECHO_SERIAL))
    request = protocol.network_request(terminal, iso8583.ECHO, "000001", datetime.now())
    connection = Connection(host, port)
    try:
        connection.open().sendall(wire(TPDU.to_bytes() + iso8583.encode(request)))
        answer = iso8583.decode(iso8583.split_frame(connection.read_answer())[1])
        return answer.get("t") == "0810" and answer.get("39") == "00"
    except (OSError, ValueError):
        return False
    finally:
        connection.close()


def fuzz(host: str, port: int, frames: int, connections: int, echo_every: int, seed: int, tak: bytes, tpk: bytes) -> Tally:
    rng = random.Random(seed)
    generator = Generator(rng, tak, tpk)
    pool = [Connection(host, port) for _ in range(connections)]
    tally = Tally()
    try:
        for index in range(frames):
            send_one(pool[index % connections], generator.next(), tally)
            if (index + 1) % echo_every == 0:
                if echo_ok(host, port):
                    tally.echoes_ok += 1
                else:
                    tally.echoes_missed += 1
    finally:
        for connection in pool:
            connection.close()
    return tally


# -- the switch's side -----------------------------------------------------------------------------------


class FaultCounter(logging.Handler):
    """Counts records with a traceback (and asyncio's unretrieved task exceptions), unfiltered."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.tracebacks = 0
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "never retrieved" in record.getMessage():
            self.tracebacks += 1
            if len(self.samples) < 3:
                self.samples.append(record.getMessage()[:200])


def log_stats(path: Path | None) -> tuple[int, int]:
    """(bytes, tracebacks) of a log file and its rotated files."""
    if path is None:
        return 0, 0
    total, tracebacks = 0, 0
    for file in sorted(path.parent.glob(path.name + "*")):
        data = file.read_bytes()
        total += len(data)
        tracebacks += data.count(b"Traceback (most recent call last)")
    return total, tracebacks


def terminal_keys(host: str, port: int) -> tuple[bytes, bytes]:
    from tests.switch.network import RawTerminal

    terminal = RawTerminal(BNI.terminal_id(FUZZ_SERIAL), BNI.merchant_id(FUZZ_SERIAL), port)
    terminal.sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
    try:
        answer = terminal.sign_on()
    finally:
        terminal.close()
    if answer.get("39") != "00" or terminal.tak is None or terminal.tpk is None:
        raise SystemExit(f"the fuzz terminal could not sign on: RC {answer.get('39')}")
    return terminal.tak, terminal.tpk


def run(args: argparse.Namespace) -> dict:
    counter = FaultCounter()
    if args.switch:
        host, port = args.switch.rsplit(":", 1)
        return measure(args, host, int(port), Path(args.log) if args.log else None, None)
    from shared.logs import close_logging, configure_logging
    from tests.switch.network import Network

    with tempfile.TemporaryDirectory(prefix="fuzz-wire-") as tmp:
        setup = configure_logging("switch", Path(tmp), stderr=False)
        logging.getLogger().addHandler(counter)
        network = Network(Path(tmp), {"data_dir": Path(tmp)}, kpm=5)
        network.ops_api = False
        network.start()
        try:
            result = measure(args, "127.0.0.1", network.iso_port, setup.path, counter)
        finally:
            network.stop()
            close_logging()
            logging.getLogger().removeHandler(counter)
        log_bytes, log_tracebacks = log_stats(setup.path)
        result["log_bytes_per_frame"] = round(log_bytes / max(1, result["frames_sent"]), 3)
        result["tracebacks_in_log"] = log_tracebacks
        return result


def measure(args: argparse.Namespace, host: str, port: int, log_path: Path | None, counter: FaultCounter | None) -> dict:
    bytes_before, tracebacks_before = log_stats(log_path)
    tak, tpk = terminal_keys(host, port)
    started = time.monotonic()
    tally = fuzz(host, port, args.frames, args.connections, args.echo_every, args.seed, tak, tpk)
    seconds = time.monotonic() - started
    time.sleep(0.5)  # the journal and the log catch up
    log_bytes, log_tracebacks = log_stats(log_path)
    return {
        "frames_sent": tally.sent,
        "answered": tally.answered,
        "dropped": tally.sent - tally.answered,
        "answers_expected": tally.expected,
        "answers_missing": tally.missing,
        "answers_unexpected": tally.unexpected,
        "connections_lost": tally.connections_lost,
        "echoes_ok": tally.echoes_ok,
        "echoes_missed": tally.echoes_missed,
        "tracebacks": counter.tracebacks if counter else log_tracebacks - tracebacks_before,
        "traceback_samples": counter.samples if counter else [],
        "tracebacks_in_log": log_tracebacks - tracebacks_before,
        "log_bytes_per_frame": round((log_bytes - bytes_before) / max(1, tally.sent), 3),
        "codes": dict(sorted(tally.codes.items())),
        "kinds": dict(sorted(tally.kinds.items())),
        "seconds": round(seconds, 1),
        "seed": args.seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--echo-every", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=8583)
    parser.add_argument("--switch", help="HOST:PORT of a running switch (default: start a network)")
    parser.add_argument("--log", help="the running switch's log file, to count tracebacks in")
    args = parser.parse_args()
    if not 1 <= args.frames <= 10_000_000 or not 1 <= args.connections <= 64 or args.echo_every < 1:
        parser.error("--frames 1..10,000,000, --connections 1..64, --echo-every >= 1")
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
