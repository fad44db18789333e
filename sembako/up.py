"""`sembako up`: the whole network as supervised child processes, with demo data.

On first start every bank gets its demo data and the current period's disbursement. Children
that die are restarted (a bounded number of times); Ctrl-C or SIGTERM stops them all cleanly.

In a terminal, once the network is healthy, the cashier app (`sembako ewarong`) runs in the
foreground as a child process; quitting it stops the network. Without a terminal (CI, a service
manager) or with `--app none` the network runs headless until Ctrl-C or SIGTERM.

Logs: each service writes its own rotating log, `<data>/logs/<name>.log` (shared.logs; uvicorn's
records go through it, access logs are off). What escapes logging (an interpreter crash before
logging is set up, a stray print) is captured from the child's stdout and stderr in
`<data>/logs/<name>.out`, which is rotated (kept once as `.out.1`) when a child starts and it is
past OUTPUT_BYTES_MAX.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from shared.banks import BANKS, Bank
from shared.clock import period_of
from shared.processes import stop_processes
from bank_penyalur.demo import fixture, generator
from bank_penyalur.disburse import disburse
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.settings import BankSettings
from bank_penyalur.tables import DisbursementRun

HEALTH_TIMEOUT_S = 60.0
RESTARTS_MAX = 5
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.5
APP_STOP_TIMEOUT_S = 5.0
OUTPUT_BYTES_MAX = 5_000_000  # a child's captured stdout/stderr, rotated at start past this
# Without a terminal the output goes to a log: wide enough that no PAN, URL or path is cut.
WIDE_CONSOLE = 10_000

APPS = ("ewarong", "edc", "none")
# Sequences that leave the alternate screen, show the cursor and end mouse reporting: what a
# Textual app does on a clean exit, for when it was killed instead.
TERMINAL_RESET = "\x1b[?1049l\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l\x1b[?2004l"


def make_console(file: IO[str] | None = None) -> Console:
    """A console on `file` (default stdout): the terminal's width on a terminal, else wide."""
    stream = file if file is not None else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Console(file=file, width=None if tty else WIDE_CONSOLE)


console = make_console()

Report = Callable[[str], None]


@dataclass
class Child:
    name: str
    command: list[str]
    health_url: str
    process: subprocess.Popen | None = None
    restarts: int = 0
    log_path: Path | None = None
    started_at: float = field(default=0.0)

    @property
    def output_path(self) -> Path:
        """Where the child's stdout and stderr go: beside its own log, as `.out`."""
        assert self.log_path is not None
        return self.log_path.with_suffix(".out")

    def start(self) -> None:
        rotate_output(self.output_path)
        with self.output_path.open("ab") as log:
            # Own session and no stdin: the terminal belongs to the foreground app, not to us.
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.started_at = time.monotonic()

    def stop(self) -> None:
        stop_children([self])


def rotate_output(path: Path, bytes_max: int = OUTPUT_BYTES_MAX) -> None:
    """Move `path` to `path.1` (replacing it) when it is past `bytes_max`."""
    try:
        if path.stat().st_size > bytes_max:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def stop_children(children: list[Child], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every running child at once, wait up to `timeout_s` for all, SIGKILL the rest."""
    stop_processes([c.process for c in children if c.process is not None], timeout_s)


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


def bank_children(data_dir: Path, database_url: str | None, host: str, workers: int = 1) -> list[Child]:
    children = []
    for bank in BANKS.values():
        command = [sys.executable, "-m", "sembako", "bank", "serve", "--bank", bank.code, "--host", host,
                   "--port", str(bank.port), "--data-dir", str(data_dir)]
        if database_url:
            command += ["--database-url", database_url]
        if workers > 1:
            command += ["--workers", str(workers)]
        children.append(Child(f"bank-{bank.code}", command, f"http://{host}:{bank.port}/health"))
    return children


SWITCH_ISO_PORT = 8583
SWITCH_OPS_PORT = 8000


def switch_child(data_dir: Path, database_url: str | None, host: str, workers: int = 1) -> Child:
    command = [sys.executable, "-m", "sembako", "switch", "serve", "--host", host, "--port", str(SWITCH_ISO_PORT),
               "--ops-port", str(SWITCH_OPS_PORT), "--data-dir", str(data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    if workers > 1:
        command += ["--workers", str(workers)]  # one parent, N processes on the ISO port (switch.supervisor)
    return Child("switch", command, f"http://{host}:{SWITCH_OPS_PORT}/health")


def wait_healthy(children: list[Child], stop: threading.Event | None = None) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    pending = list(children)
    while pending:
        if stop is not None and stop.is_set():
            raise RuntimeError("stopped before the network was healthy")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not healthy after {HEALTH_TIMEOUT_S:.0f} s: {', '.join(c.name for c in pending)}")
        for child in list(pending):
            if child.process is not None and child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}; see {child.log_path} and {child.output_path}")
            try:
                if httpx.get(child.health_url, timeout=1.0).status_code == 200:
                    pending.remove(child)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)


def print_summary(children: list[Child], data_dir: Path, app: str = "none", out: Console | None = None) -> None:
    console = out or make_console()
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
    bank_url = children[0].health_url.removesuffix("/health")
    console.print("A bank's API takes its operators' credential: "
                  f"[bold]curl -H \"Authorization: Bearer $(sembako bank credential --bank bni)\" {bank_url}/v1/ops/ledger-check[/]")
    if app == "none":
        console.print(f"All demo cards: [bold]sembako demo-cards[/]. Data in {data_dir}. Ctrl-C stops the network.")
    else:
        console.print(f"All demo cards: [bold]sembako demo-cards[/]. Data in {data_dir}. "
                      f"Opening [bold]sembako {app}[/]; quitting it stops the network.")


def prepare_ops_token(data_dir: Path, database_url: str | None) -> str:
    """Keep an admin token of the switch operator in `<data_dir>/ops-token` (mode 0600; a new one
    on first start, or when the one there no longer opens the ops API), and a viewer token of each
    bank for its e-Warong POS in `<data_dir>/pos-token-<bank>`; returns where the admin's is, as
    a line to print. The switch has migrated its database by now (it answers /health)."""
    from switch.ops.cli import OpsCliError, ensure_pos_token_files, ensure_token_file, switch_database

    try:
        with switch_database(data_dir, database_url) as db:
            path, created = ensure_token_file(db, data_dir)
            ensure_pos_token_files(db, data_dir)  # the POS reports above-HET refusals with its bank's
    except OpsCliError as exc:
        return f"[red]no ops API token: {exc}[/]"
    said = "written to" if created else "in"
    return (f"Ops API token (admin, every bank) {said} [bold]{path}[/]: "
            f"curl -H \"Authorization: Bearer $(cat {path})\" http://127.0.0.1:{SWITCH_OPS_PORT}/v1/stats/banks; "
            f"dashboard: [bold]http://127.0.0.1:{SWITCH_OPS_PORT}/dashboard[/] (sign in with that token)")


def supervise(children: list[Child], stop: threading.Event, report: Report | None = None) -> None:
    """Restart children that exit (at most RESTARTS_MAX times each) until `stop` is set; sets
    `stop` itself when a child keeps failing. Messages go to `report` (default: the console)."""
    say = report or console.print
    while not stop.wait(POLL_INTERVAL_S):
        for child in children:
            if child.process is None or child.process.poll() is None:
                continue
            if child.restarts >= RESTARTS_MAX:
                say(f"[red]{child.name} keeps failing (exit {child.process.returncode}); stopping[/]")
                stop.set()
                return
            child.restarts += 1
            say(f"[yellow]{child.name} exited ({child.process.returncode}); restart {child.restarts}/{RESTARTS_MAX}[/]")
            child.start()


def choose_app(option: str | None, stdin_tty: bool | None = None, stdout_tty: bool | None = None) -> str:
    """The app to open after start: the explicit option, else the cashier app when both stdin
    and stdout are terminals, else none (headless)."""
    if option is not None:
        if option not in APPS:
            raise ValueError(f"--app must be one of {', '.join(APPS)}, not {option!r}")
        return option
    if stdin_tty is None:
        stdin_tty = _isatty(sys.stdin)
    if stdout_tty is None:
        stdout_tty = _isatty(sys.stdout)
    return "ewarong" if stdin_tty and stdout_tty else "none"


def _isatty(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def app_command(app: str, data_dir: Path, database_url: str | None, switch: str) -> list[str]:
    """The command line of the foreground app (`sembako ewarong` or `sembako edc`)."""
    command = [sys.executable, "-m", "sembako", app, "--data-dir", str(data_dir), "--switch", switch]
    if database_url and app == "ewarong":
        command += ["--database-url", database_url]
    return command


class LogReport:
    """Supervisor messages while an app owns the screen: appended to a log file (markup
    stripped, timestamped) and kept to be shown once the app has exited."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        text = Text.from_markup(message).plain
        self.lines.append(message)
        with self.path.open("a", encoding="utf-8") as log:
            log.write(f"{datetime.now().isoformat(timespec='seconds')} {text}\n")


def run_foreground_app(children: list[Child], command: list[str], stop: threading.Event, report: Report) -> int:
    """Run `command` in the foreground on this terminal while the children are supervised in
    the background (messages to `report`), then stop every child. The app reads the keys:
    SIGINT is ignored here meanwhile. When `stop` is set (SIGTERM, SIGHUP, a child that keeps
    failing) the app is terminated. Returns the app's exit code (0 when it was stopped here)."""
    supervisor = threading.Thread(target=supervise, args=(children, stop, report), name="supervise", daemon=True)
    # A do-nothing handler rather than SIG_IGN: an ignored signal would stay ignored in the app.
    previous_int = signal.signal(signal.SIGINT, lambda *_: None)
    saved_tty = _save_tty()
    app: subprocess.Popen | None = None
    killed = False
    try:
        supervisor.start()
        app = subprocess.Popen(command)
        while app.poll() is None:
            if stop.wait(0.2):
                killed = True
                app.terminate()
                try:
                    app.wait(timeout=APP_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    app.kill()
                    app.wait(timeout=APP_STOP_TIMEOUT_S)
        if killed:
            return 0
        return 128 - app.returncode if app.returncode < 0 else app.returncode  # a signal: as a shell says it
    finally:
        if app is not None and app.poll() is None:  # an error in this loop: do not leave it behind
            app.kill()
            app.wait(timeout=APP_STOP_TIMEOUT_S)
        stop.set()
        supervisor.join(timeout=POLL_INTERVAL_S * 4 + STOP_TIMEOUT_S)
        stop_children(children)
        _restore_tty(saved_tty, reset=killed or (app is not None and app.returncode != 0))
        signal.signal(signal.SIGINT, previous_int)


def _save_tty() -> list | None:
    try:
        import termios

        return termios.tcgetattr(sys.stdin.fileno())
    except (ImportError, OSError, ValueError, AttributeError):
        return None


def _restore_tty(saved: list | None, reset: bool) -> None:
    """Give the terminal back as it was before the app (needed when the app did not exit cleanly)."""
    if saved is None:
        return
    import termios

    try:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        if reset:
            os.write(sys.stdout.fileno(), TERMINAL_RESET.encode())
    except (OSError, ValueError):
        pass


def run_network(data_dir: Path, kpm: int, database_url: str | None, host: str = "127.0.0.1",
                app: str | None = None, command: list[str] | None = None, bank_workers: int = 1,
                switch_workers: int = 1) -> int:
    """Prepare and start the network; then run the app in the foreground (`app`, see
    `choose_app`; `command` overrides its command line) and stop when it exits, or with no app
    supervise until Ctrl-C or SIGTERM."""
    app = choose_app(app)
    console = make_console()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)
    children = [*bank_children(data_dir, database_url, host, bank_workers), switch_child(data_dir, database_url, host, switch_workers)]
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
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    for child in children:
        child.log_path = data_dir / "logs" / f"{child.name}.log"
        child.start()
    try:
        wait_healthy(children, stop)
        print_summary(children, data_dir, app, console)
        console.print(prepare_ops_token(data_dir, database_url))
        if app == "none" or stop.is_set():
            supervise(children, stop, console.print)
            return 0
        command = command or app_command(app, data_dir, database_url, f"{host}:{SWITCH_ISO_PORT}")
        report = LogReport(data_dir / "logs" / "up.log")
        code = run_foreground_app(children, command, stop, report)
        for line in report.lines:
            console.print(line)
        if code != 0:
            console.print(f"[red]{app} exited with {code}[/]; `sembako up --app none` runs the network without it")
        return code
    except (TimeoutError, RuntimeError) as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        stop_children(children)
        console.print("network stopped")
