"""The test network's bank that lost its port at start is started again on another one."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.switch import network as network_module
from tests.switch.network import Network


def test_a_bank_whose_port_was_taken_starts_on_another_port(tmp_path: Path) -> None:
    network = Network(tmp_path, {"data_dir": tmp_path}, kpm=2)
    bank = network.banks["bni"]
    with socket.socket() as holder:  # another socket took the port `free_port` gave the bank
        holder.bind(("127.0.0.1", bank.port))
        holder.listen()
        taken = bank.port
        try:
            bank.start()
            assert bank.port != taken
            assert httpx.get(f"{bank.url}/health", timeout=5).status_code == 200
        finally:
            bank.stop()
    logs = bank.log_path.read_text(errors="replace") + bank.own_log_path.read_text(errors="replace")
    assert "address already in use" in logs.lower()


def test_a_bank_that_exits_for_another_reason_is_not_started_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    network = Network(tmp_path, {"data_dir": tmp_path}, kpm=2)
    bank = network.banks["bni"]
    bank.command = [*bank.command, "--no-such-option"]
    ports = []
    monkeypatch.setattr(network_module, "free_port", lambda: ports.append(1) or 1)
    with pytest.raises(RuntimeError, match="bank bni exited"):
        bank.start()
    assert ports == []
