"""`sembako up` around the network: which app opens, the summary in a log, and the app in the
foreground whose exit stops the network (real child processes, no banks: they take too long)."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bank_penyalur.demo import fixture
from sembako import up
from sembako.cli import app
from sembako.up import Child, choose_app, make_console, print_summary, run_foreground_app

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.mark.parametrize(
    ("option", "stdin_tty", "stdout_tty", "chosen"),
    [
        (None, True, True, "ewarong"),
        (None, True, False, "none"),  # output to a log or a pipe
        (None, False, True, "none"),  # no keyboard: a service manager
        (None, False, False, "none"),  # CI
        ("none", True, True, "none"),
        ("edc", False, False, "edc"),
        ("ewarong", False, False, "ewarong"),
    ],
)
def test_app_choice_follows_the_terminal_unless_given(option, stdin_tty, stdout_tty, chosen) -> None:  # noqa: ANN001
    assert choose_app(option, stdin_tty, stdout_tty) == chosen


def test_app_choice_without_a_terminal_is_headless() -> None:
    assert choose_app(None) == "none"  # pytest: stdin and stdout are not terminals


def test_unknown_app_is_refused() -> None:
    result = CliRunner().invoke(app, ["up", "--app", "kasir"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "kasir" in result.output
    with pytest.raises(ValueError):
        choose_app("kasir")


def test_app_command_runs_the_chosen_app_against_the_network(tmp_path: Path) -> None:
    command = up.app_command("ewarong", tmp_path, "postgresql+psycopg://x@h/db", "127.0.0.1:8583")
    assert command == [sys.executable, "-m", "sembako", "ewarong", "--data-dir", str(tmp_path), "--switch",
                       "127.0.0.1:8583", "--database-url", "postgresql+psycopg://x@h/db"]
    assert "--database-url" not in up.app_command("edc", tmp_path, "postgresql://x", "127.0.0.1:8583")


def summary_children(data_dir: Path) -> list[Child]:
    children = [*up.bank_children(data_dir, None, "127.0.0.1"), up.switch_child(data_dir, None, "127.0.0.1")]
    for child in children:
        child.log_path = data_dir / "logs" / f"{child.name}.log"
    return children


def test_summary_is_not_cut_when_output_is_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data_dir = tmp_path / ("a-rather-long-directory-name-for-the-network-data" * 2)
    children = summary_children(data_dir)
    print_summary(children, data_dir)  # to captured stdout: not a terminal
    lines = capsys.readouterr().out.splitlines()
    for child in children:
        assert any(str(child.log_path) in line and child.health_url.removesuffix("/health") in line
                   for line in lines), child.name
    shown = [c for c in fixture.all_demo_cards() if c.label == "normal"]
    assert len(shown) == 4
    for card in shown:
        assert any(card.pan in line and card.pin in line for line in lines), card.pan
    assert any(f"Data in {data_dir}." in line for line in lines)
    assert "Ctrl-C stops the network" in "\n".join(lines)


def test_summary_on_a_terminal_keeps_its_width(tmp_path: Path) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert make_console(Tty()).width < up.WIDE_CONSOLE
    out = io.StringIO()
    print_summary(summary_children(tmp_path), tmp_path, app="ewarong", out=make_console(out))
    assert "quitting it stops the network" in out.getvalue()


def start_children(tmp_path: Path, commands: list[list[str]]) -> list[Child]:
    children = []
    for i, command in enumerate(commands):
        child = Child(f"dummy-{i}", command, "http://127.0.0.1:1/health", log_path=tmp_path / f"dummy-{i}.log")
        child.start()
        children.append(child)
    return children


@pytest.fixture
def reaper():  # noqa: ANN201
    """Children of a test, killed whatever happens."""
    started: list[Child] = []
    yield started
    for child in started:
        if child.process is not None and child.process.poll() is None:
            child.process.kill()
            child.process.wait(timeout=5)


def assert_all_stopped(children: list[Child]) -> None:
    assert all(c.process is not None and c.process.poll() is not None for c in children)


def test_app_that_exits_stops_the_network(tmp_path: Path, reaper: list[Child], capsys: pytest.CaptureFixture) -> None:
    reaper += start_children(tmp_path, [SLEEPER, SLEEPER, SLEEPER])
    report = up.LogReport(tmp_path / "up.log")
    started = time.monotonic()
    code = run_foreground_app(reaper, [sys.executable, "-c", "raise SystemExit(3)"], threading.Event(), report)
    assert code == 3  # the app's own exit code
    assert_all_stopped(reaper)
    assert time.monotonic() - started < 10
    assert report.lines == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


def test_sigint_goes_to_the_app_not_to_the_network(tmp_path: Path, reaper: list[Child]) -> None:
    """Ctrl-C while the app runs is the app's business: the parent ignores it, and the app
    (started with SIGINT at its default) still gets its own KeyboardInterrupt."""
    reaper += start_children(tmp_path, [SLEEPER])
    app_cmd = [sys.executable, "-c", "import time\ntry:\n time.sleep(1.5)\nexcept KeyboardInterrupt:\n raise SystemExit(7)"]
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        code = run_foreground_app(reaper, app_cmd, threading.Event(), up.LogReport(tmp_path / "up.log"))
    finally:
        timer.cancel()
    assert code == 0  # the app slept its 1.5 s: the SIGINT reached only this process, which ignored it
    assert_all_stopped(reaper)


def test_stop_request_ends_the_app_and_the_network(tmp_path: Path, reaper: list[Child]) -> None:
    """SIGTERM/SIGHUP to `sembako up` (they set `stop`) while the app runs."""
    reaper += start_children(tmp_path, [SLEEPER, SLEEPER])
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        code = run_foreground_app(reaper, SLEEPER, stop, up.LogReport(tmp_path / "up.log"))
    finally:
        timer.cancel()
    assert code == 0
    assert time.monotonic() - started < 10
    assert_all_stopped(reaper)


def test_restart_messages_go_to_the_log_while_the_app_runs(tmp_path: Path, reaper: list[Child],
                                                           capsys: pytest.CaptureFixture) -> None:
    reaper += start_children(tmp_path, [SLEEPER, [sys.executable, "-c", "raise SystemExit(1)"]])
    report = up.LogReport(tmp_path / "up.log")
    app_cmd = [sys.executable, "-c", "import time; time.sleep(1.6)"]
    assert run_foreground_app(reaper, app_cmd, threading.Event(), report) == 0
    assert_all_stopped(reaper)
    assert any("dummy-1 exited (1); restart 1/" in line for line in report.lines)
    logged = (tmp_path / "up.log").read_text()
    assert "dummy-1 exited (1); restart 1/" in logged and "[yellow]" not in logged
    assert "restart" not in capsys.readouterr().out  # nothing written over the app's screen


def test_the_switch_operator_s_ops_token_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    """On first start `sembako up` writes an admin token of the switch operator to
    <data-dir>/ops-token (0600); later starts keep it while it opens the ops API, and write a
    new one once it does not (revoked here)."""
    import stat

    from fastapi.testclient import TestClient

    from shared.db import Database, sqlite_url
    from switch.journal import Journal
    from switch.ops import access
    from switch.ops.app import create_ops_app

    journal = Journal(Database(sqlite_url(tmp_path, "switch")))
    journal.migrate()  # as the switch does before it answers /health
    try:
        said = up.prepare_ops_token(tmp_path, None)
        path = tmp_path / "ops-token"
        assert f"written to [bold]{path}[/]" in said
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text().strip()
        client = TestClient(create_ops_app(journal))
        assert client.get("/v1/tokens", headers={"Authorization": f"Bearer {token}"}).status_code == 200  # an admin's

        assert f"in [bold]{path}[/]" in up.prepare_ops_token(tmp_path, None) and path.read_text().strip() == token
        with journal.db.begin() as conn:
            access.revoke_token(conn, access.parse_token(token)[0], "cli", "rotated", journal_now())
        assert "written to" in up.prepare_ops_token(tmp_path, None) and path.read_text().strip() != token
        assert "no ops API token: no switch database in" in up.prepare_ops_token(tmp_path / "elsewhere", None)

        pos = (tmp_path / "pos-token-bni").read_text().strip()  # the BNI e-Warong's POS: a BNI viewer
        assert stat.S_IMODE((tmp_path / "pos-token-bni").stat().st_mode) == 0o600
        with journal.db.read() as conn:
            principal = access.authenticate(conn, pos, journal_now())
        assert (principal.role, principal.bank) == ("viewer", "bni")
        assert client.get("/v1/tokens", headers={"Authorization": f"Bearer {pos}"}).status_code == 403
        up.prepare_ops_token(tmp_path, None)
        assert (tmp_path / "pos-token-bni").read_text().strip() == pos  # kept while valid
        assert {p.name for p in tmp_path.glob("pos-token-*")} == {"pos-token-bni", "pos-token-bri", "pos-token-mandiri", "pos-token-btn"}
    finally:
        journal.db.dispose()


def journal_now():  # noqa: ANN201
    from switch.runtime import wib_now

    return wib_now()
