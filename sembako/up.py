"""`sembako up`: the whole network as supervised child processes, with demo data.

On first start every bank gets its demo data and the current period's disbursement. Children
that die are restarted (a bounded number of times); Ctrl-C or SIGTERM stops them all cleanly.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from shared.banks import BANKS, Bank
from shared.clock import period_of
from bank_penyalur.demo import fixture, generator
from bank_penyalur.disburse import disburse
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.settings import BankSettings
from bank_penyalur.tables import DisbursementRun

HEALTH_TIMEOUT_S = 60.0
RESTARTS_MAX = 5
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.5

console = Console()


@dataclass
class Child:
    name: str
    command: list[str]
    health_url: str
    process: subprocess.Popen | None = None
    restarts: int = 0
    log_path: Path | None = None
    started_at: float = field(default=0.0)

    def start(self) -> None:
        assert self.log_path is not None
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at = time.monotonic()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def prepare_bank(bank: Bank, data_dir: Path, database_url: str | None, kpm: int) -> dict:
    """Migrate, seed demo data, and on first start disburse the current period."""
    runtime = BankRuntime.start(BankSettings(bank=bank.code, data_dir=data_dir, database_url=database_url))
    try:
        seeded = generator.seed(runtime.db, runtime.bank, runtime.hsm, runtime.clock, kpm=kpm)
        with runtime.db.read() as conn:
            runs = conn.execute(select(func.count()).select_from(DisbursementRun)).scalar_one()
        credited = None
        if runs == 0:
            period = period_of(runtime.clock.now())
            credited = disburse(runtime.db, runtime.clock, period, runtime.settings.benefit_idr).credited
        return {"bank": bank.code, "new_kpm": seeded.generated_kpm, "disbursed": credited}
    finally:
        runtime.close()


def bank_children(data_dir: Path, database_url: str | None, host: str) -> list[Child]:
    children = []
    for bank in BANKS.values():
        command = [sys.executable, "-m", "sembako", "bank", "serve", "--bank", bank.code, "--host", host,
                   "--port", str(bank.port), "--data-dir", str(data_dir)]
        if database_url:
            command += ["--database-url", database_url]
        children.append(Child(f"bank-{bank.code}", command, f"http://{host}:{bank.port}/health"))
    return children


SWITCH_ISO_PORT = 8583
SWITCH_OPS_PORT = 8000


def switch_child(data_dir: Path, database_url: str | None, host: str) -> Child:
    command = [sys.executable, "-m", "sembako", "switch", "serve", "--host", host, "--port", str(SWITCH_ISO_PORT),
               "--ops-port", str(SWITCH_OPS_PORT), "--data-dir", str(data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    return Child("switch", command, f"http://{host}:{SWITCH_OPS_PORT}/health")


def wait_healthy(children: list[Child]) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    pending = list(children)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not healthy after {HEALTH_TIMEOUT_S:.0f} s: {', '.join(c.name for c in pending)}")
        for child in list(pending):
            if child.process is not None and child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}; see {child.log_path}")
            try:
                if httpx.get(child.health_url, timeout=1.0).status_code == 200:
                    pending.remove(child)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)


def print_summary(children: list[Child], data_dir: Path) -> None:
    table = Table(title="Jaringan Sembako berjalan / network running")
    for column in ("service", "listens on", "docs", "log"):
        table.add_column(column)
    for child in children:
        base = child.health_url.removesuffix("/health")
        table.add_row(child.name, base, f"{base}/docs", str(child.log_path))
    host = children[0].health_url.split("//")[1].split(":")[0]
    table.add_row("switch ISO 8583", f"{host}:{SWITCH_ISO_PORT}", "", "")
    console.print(table)
    cards = Table(title="Kartu demo (PIN demo) / demo cards")
    for column in ("bank", "label", "PAN", "PIN", "expect"):
        cards.add_column(column)
    for card in fixture.all_demo_cards():
        if card.label in ("normal", "zero_balance", "pin_blocked", "lost", "replaced_new"):
            cards.add_row(card.bank.upper(), card.label, card.pan, card.pin, card.expect_rc)
    console.print(cards)
    console.print("Try a terminal: [bold]sembako edc-cli bayar --card 9360000900000014 --pin 123456 --amount 35000[/]")
    console.print(f"All demo cards: [bold]sembako demo-cards[/]. Data in {data_dir}. Ctrl-C stops the network.")


def supervise(children: list[Child], stop: threading.Event) -> None:
    while not stop.wait(POLL_INTERVAL_S):
        for child in children:
            if child.process is None or child.process.poll() is None:
                continue
            if child.restarts >= RESTARTS_MAX:
                console.print(f"[red]{child.name} keeps failing (exit {child.process.returncode}); stopping[/]")
                stop.set()
                return
            child.restarts += 1
            console.print(f"[yellow]{child.name} exited ({child.process.returncode}); restart {child.restarts}/{RESTARTS_MAX}[/]")
            child.start()


def run_network(data_dir: Path, kpm: int, database_url: str | None, host: str = "127.0.0.1") -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)
    children = [*bank_children(data_dir, database_url, host), switch_child(data_dir, database_url, host)]
    ports = [*(b.port for b in BANKS.values()), SWITCH_OPS_PORT, SWITCH_ISO_PORT]
    busy = [str(port) for port in ports if not port_free(host, port)]
    if busy:
        console.print(f"[red]ports in use, is the network already running? {', '.join(busy)}[/]")
        return 1
    for bank in BANKS.values():
        with console.status(f"preparing {bank.name} ({kpm:,} KPM)"):
            result = prepare_bank(bank, data_dir, database_url, kpm)
        console.print(f"{bank.code}: {result['new_kpm']:,} new KPM; disbursed now: {result['disbursed']}")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    for child in children:
        child.log_path = data_dir / "logs" / f"{child.name}.log"
        child.start()
    try:
        wait_healthy(children)
        print_summary(children, data_dir)
        supervise(children, stop)
    except (TimeoutError, RuntimeError) as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        for child in children:
            child.stop()
        console.print("network stopped")
    return 0
