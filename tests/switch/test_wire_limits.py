"""The listener against slow and greedy clients, and tampering traced, on a real network.

A started frame must complete within the frame timeout (else the connection is closed with one
warning); a connection may stay idle between frames; connections per source address are
bounded; a bad MAC is journalled; malformed frames never cost the connection or the listener.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from shared import iso8583, rc
from switch.settings import SwitchSettings
from switch.tables import MessageLog

from tests.switch.network import Network, raw_terminal

FRAME_TIMEOUT_MS = 300
PER_SOURCE_MAX = 6
CLOSE_WAIT_S = 5.0


class LimitedNetwork(Network):
    def switch_settings(self) -> SwitchSettings:
        return super().switch_settings().model_copy(
            update={"frame_timeout_ms": FRAME_TIMEOUT_MS, "connections_per_source_max": PER_SOURCE_MAX}
        )


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    tmp: Path = tmp_path_factory.mktemp("wire-limits")
    net = LimitedNetwork(tmp, {"data_dir": tmp}, kpm=5)
    net.ops_api = False
    net.start()
    yield net
    net.stop()


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> Warnings:
        logging.getLogger("switch").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("switch").removeHandler(self)


def connect(network: Network) -> socket.socket:
    return socket.create_connection(("127.0.0.1", network.iso_port), timeout=CLOSE_WAIT_S)


def closed_within(sock: socket.socket, timeout_s: float) -> float | None:
    """Seconds until the switch closed `sock`, or None if it stayed open for `timeout_s`."""
    start = time.monotonic()
    sock.settimeout(timeout_s)
    try:
        data = sock.recv(100)
    except TimeoutError:
        return None
    except ConnectionError:
        return time.monotonic() - start
    assert data == b"", data
    return time.monotonic() - start


def echo_ok(network: Network) -> bool:
    terminal = raw_terminal(network, serial=2)
    try:
        return terminal.echo()["39"] == rc.APPROVED
    finally:
        terminal.close()


@pytest.mark.parametrize("started", [b"\x00", (100).to_bytes(2, "big") + b"\x60" * 10], ids=["one-header-byte", "10-of-100"])
def test_a_frame_started_but_not_finished_is_closed_after_the_frame_timeout(network: Network, started: bytes) -> None:
    with Warnings() as warnings, connect(network) as sock:
        sock.sendall(started)
        elapsed = closed_within(sock, CLOSE_WAIT_S)
    assert elapsed is not None and FRAME_TIMEOUT_MS / 1000 * 0.8 <= elapsed < FRAME_TIMEOUT_MS / 1000 + 2
    assert len([line for line in warnings.lines if "closed a connection" in line]) == 1
    assert echo_ok(network)


def test_a_connection_may_stay_idle_between_frames(network: Network) -> None:
    terminal = raw_terminal(network, serial=2)
    try:
        assert terminal.echo()["39"] == rc.APPROVED
        time.sleep(FRAME_TIMEOUT_MS / 1000 * 3)
        assert terminal.echo()["39"] == rc.APPROVED
    finally:
        terminal.close()


def test_connections_from_one_source_are_bounded(network: Network) -> None:
    held = [connect(network) for _ in range(PER_SOURCE_MAX)]
    try:
        time.sleep(0.3)  # the switch has accepted them all
        with Warnings() as warnings, connect(network) as extra:
            assert closed_within(extra, CLOSE_WAIT_S) is not None
        assert any("refused a connection" in line for line in warnings.lines)
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + CLOSE_WAIT_S
    while network.switch.iso.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert echo_ok(network)  # freed again


def test_malformed_frames_leave_the_connection_and_the_listener_serving(network: Network) -> None:
    terminal = raw_terminal(network, serial=3)
    try:
        terminal.send_message(b"9999" + bytes(8))  # dropped: no response MTI
        terminal.send_message(b"0200\xff")  # 30: the MTI is readable
        terminal.send_raw((3).to_bytes(2, "big") + b"abc")  # shorter than a TPDU: dropped
        _, answer = terminal.read_message()
        assert (answer["t"], answer["39"]) == ("0210", rc.FORMAT_ERROR)
        assert terminal.echo()["39"] == rc.APPROVED  # the same connection goes on
    finally:
        terminal.close()


def test_a_bad_mac_is_journalled(network: Network) -> None:
    terminal = raw_terminal(network, serial=4)
    try:
        assert terminal.sign_on()["39"] == rc.APPROVED
        doc = terminal.purchase_doc("9360000900000014", "123456", 1_000)
        message = bytearray(iso8583.encode_with_mac(doc, terminal.tak))
        message[-1] ^= 0x55
        terminal.send_message(bytes(message))
        reply, answer = terminal.read_message()
    finally:
        terminal.close()
    assert answer["39"] == rc.INVALID_TRANSACTION and iso8583.mac_valid(reply, answer, terminal.tak)
    query = select(MessageLog.direction, MessageLog.rc, MessageLog.fields).where(
        MessageLog.tid == terminal.tid, MessageLog.stan == doc["11"]
    )
    rows: list = []
    deadline = time.monotonic() + CLOSE_WAIT_S
    while len(rows) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        with network.switch.db.read() as conn:
            rows = conn.execute(query).all()
    assert [(r.direction, r.rc) for r in rows] == [("terminal_in", None), ("terminal_out", rc.INVALID_TRANSACTION)]
    assert rows[1].fields["reason"] == "bad MAC"
