"""A service whose port another socket holds at start is started again once the port is free."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from scenarios import launcher
from scenarios.network import BankProcess, service_env

WAIT_S = 60.0


def release_when_refused(holder: socket.socket, service_log: Path) -> None:
    """Close `holder` once the service's log says the port was in use (bounded wait)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if service_log.exists() and "address already in use" in service_log.read_text(errors="replace").lower():
            break
        time.sleep(0.05)
    holder.close()


def test_a_bank_that_lost_its_port_at_start_is_started_again_on_it(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    log_path = tmp_path / "bank-bni.out"
    options = {"bank": "bni", "port": port, "host": "127.0.0.1", "data_dir": tmp_path, "database_url": None, "seed_kpm": None}
    bank = BankProcess("bank bni", launcher.BANK, options, service_env(), f"http://127.0.0.1:{port}/health", log_path, code="bni", port=port)
    service_log = tmp_path / "logs" / "bank-bni.log"
    releaser = threading.Thread(target=release_when_refused, args=(holder, service_log), daemon=True)
    releaser.start()
    try:
        bank.start()
        assert bank.running
        assert "address already in use" in service_log.read_text(errors="replace").lower()
    finally:
        bank.stop()
        releaser.join(timeout=WAIT_S)
        holder.close()
