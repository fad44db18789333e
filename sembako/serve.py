"""`sembako serve`: the cashier app and the EDC in a browser, through textual-serve.

For a training room where participants have only a browser: `/` runs the cashier app
(`sembako ewarong`), `/edc` the EDC alone (`sembako edc`). Every browser tab is a session: its own
app process, started when the page's websocket connects and stopped when it closes.

textual-serve's `Server` serves one command at `/` and `/ws`. `TrainingServer` subclasses it to
serve several (`ServedApp`), each with its page and websocket under its own path, and adds what a
shared room needs:

- `?terminal=BNI00005` on a page picks the demo terminal of the session (default BNI00001). A
  terminal keeps its STAN counter and pending reversals on disk, so one terminal serves one
  session at a time; a second tab on the same terminal gets a page naming free ones.
- At most `max_sessions` sessions run at once; the next page says the room is full.
- Every wait is bounded: app start, each write to the app or the browser, app stop (quit, then
  kill), server shutdown. Dead browsers are found by websocket heartbeat.
- Pages build their websocket address from the request's Host, so the server works on
  0.0.0.0 for other machines in the room (textual-serve would use `host:port` as given).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import WSCloseCode, WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from shared.banks import BANKS, DEMO_TERMINALS_PER_BANK, demo_terminal

log = logging.getLogger("sembako.serve")

MAX_SESSIONS = 20
DEFAULT_TERMINAL = "BNI00001"
TRAINING_TERMINALS = 8  # demo terminals 1-8 of each bank are left to people (see sembako bench)
START_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 10.0
QUIT_TIMEOUT_S = 3.0  # an app asked to quit before it is fully up may miss it: then SIGKILL
STOP_TIMEOUT_S = 5.0
HEARTBEAT_S = 15.0
MAX_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServedApp:
    """One app behind one path: `path` shows its page, `path/ws/{terminal}` runs a session."""

    name: str
    path: str
    title: str
    argv: tuple[str, ...]
    with_ewarong: bool = False  # the cashier app also takes the terminal's e-Warong
    with_terminal: bool = True  # False: the app brings its own terminal (training: a sandbox each)
    participant: bool = False  # `?participant=NAME` is passed on as --participant NAME

    @property
    def ws_path(self) -> str:
        return f"{self.path.rstrip('/')}/ws/{{terminal}}"

    def command(self, terminal: str, participant: str | None = None) -> list[str]:
        bank_and_ewarong = demo_terminal(terminal)
        assert bank_and_ewarong is not None, terminal
        argv = [*self.argv, "--terminal", terminal] if self.with_terminal else [*self.argv]
        if self.with_ewarong:
            argv += ["--ewarong", bank_and_ewarong[1]]
        if self.participant and participant:
            argv += ["--participant", participant]
        return argv

    def session_key(self, terminal: str) -> str:
        """What one session holds: its terminal, or for an app with terminals of its own, a seat."""
        return terminal if self.with_terminal else f"{self.name}/{terminal}"


def served_apps(switch: str, data_dir: Path, database_url: str | None = None) -> list[ServedApp]:
    """The cashier app at `/` and the EDC alone at `/edc`, both against the switch at `switch`, and
    the training lessons at `/training` (each on a sandbox network of its own, progress kept in
    `data_dir/training`)."""
    base = (sys.executable, "-m", "sembako")
    common = ("--switch", switch, "--data-dir", str(data_dir))
    ewarong = (*base, "ewarong", *common, *(("--database-url", database_url) if database_url else ()))
    return [
        ServedApp("ewarong", "/", "Kasir e-Warong (Program Sembako)", ewarong, with_ewarong=True),
        ServedApp("edc", "/edc", "EDC Program Sembako", (*base, "edc", *common)),
        ServedApp("training", "/training", "Pelatihan pendamping Program Sembako",
                  (*base, "training", "--data-dir", str(data_dir / "training")), with_terminal=False, participant=True),
    ]


class SessionService(AppService):
    """textual-serve's app process, started without a shell (in its own session, so Ctrl-C in the
    server's terminal reaches only the server) and stopped within a bound."""

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv

    async def _open_app_process(self, width: int = 80, height: int = 24) -> asyncio.subprocess.Process:
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height),
            start_new_session=True,
        )
        self._stdin = process.stdin
        return process

    @property
    def finished(self) -> asyncio.Task[None] | None:
        """The task reading the app's output; done when the app has exited."""
        return self._task

    async def shutdown(self, timeout_s: float = STOP_TIMEOUT_S, quit_timeout_s: float = QUIT_TIMEOUT_S) -> None:
        """Ask the app to quit, wait up to `quit_timeout_s`, then kill it; each further step waits
        at most `timeout_s`; the process is reaped. Safe to call more than once."""
        task, process = self._task, self._process
        try:
            await asyncio.wait_for(self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id),
                                   timeout_s)
        except (TimeoutError, asyncio.TimeoutError):
            pass
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(self.send_meta({"type": "quit"}), quit_timeout_s)
                await asyncio.wait_for(asyncio.shield(task), quit_timeout_s)
            except (TimeoutError, asyncio.TimeoutError, OSError):
                log.warning("app %s did not quit within %.0f s; killing it", shlex.join(self.argv[3:4]), quit_timeout_s)
        if process is not None and process.returncode is None:
            try:
                process.kill()
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except (TimeoutError, asyncio.TimeoutError):
                log.error("app process %s did not end after SIGKILL", process.pid)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=timeout_s)


@dataclass(slots=True)
class Session:
    app: ServedApp
    terminal: str
    websocket: web.WebSocketResponse
    participant: str | None = None
    service: SessionService | None = None

    async def close(self) -> None:
        if self.service is not None:
            await self.service.shutdown()
        try:
            await asyncio.wait_for(self.websocket.close(code=WSCloseCode.GOING_AWAY), WRITE_TIMEOUT_S)
        except (TimeoutError, asyncio.TimeoutError, ConnectionError):
            pass


def bounded(write: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """`write` with WRITE_TIMEOUT_S: a browser that stops reading ends its session."""

    async def call(*args: Any) -> Any:
        return await asyncio.wait_for(write(*args), WRITE_TIMEOUT_S)

    return call


class TrainingServer(Server):
    """textual-serve's Server for several apps, each under its own path (see module doc)."""

    def __init__(self, apps: list[ServedApp], host: str = "127.0.0.1", port: int = 8080,
                 max_sessions: int = MAX_SESSIONS) -> None:
        super().__init__(" | ".join(shlex.join(a.argv) for a in apps), host=host, port=port,
                         title="Pelatihan Program Sembako")
        self.apps = apps
        self.max_sessions = max_sessions
        self.sessions: dict[str, Session] = {}  # by terminal id
        self.bound: list[tuple[str, int]] = []

    # -- routes ----------------------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = web.Application()
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        routes = []
        for served in self.apps:
            index = self._index_handler(served)
            routes.append(web.get(served.path, index, name=f"{served.name}-index"))
            if served.path != "/":
                routes.append(web.get(f"{served.path}/", index))
            routes.append(web.get(served.ws_path, self._session_handler(served), name=f"{served.name}-ws"))
        routes += [
            web.get("/download/{key}", self.handle_download, name="download"),
            web.static("/static", self.statics_path, name="static"),
        ]
        app.add_routes(routes)
        app.on_shutdown.append(self.on_shutdown)
        return app

    def _index_handler(self, served: ServedApp) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def index(request: web.Request) -> web.StreamResponse:
            terminal = request.query.get("terminal", DEFAULT_TERMINAL).strip().upper()
            refusal = self.refusal(terminal, served)
            if refusal is None and served.participant:
                refusal = _participant_refusal(request.query.get("participant"))
            if refusal is not None:
                status, message = refusal
                return self.message_page(request, served, status, message)
            scheme = "wss" if request.secure else "ws"
            ws_path = request.app.router[f"{served.name}-ws"].url_for(terminal=terminal)
            participant = (request.query.get("participant") or "").strip()
            if served.participant and participant:
                ws_path = ws_path.with_query(participant=participant)
            context = {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": f"{scheme}://{request.host}{ws_path}",
                "config": {"static": {"url": "/static/"}},
                "application": {"name": f"{served.title} — {terminal}"},
            }
            return aiohttp_jinja2.render_template("app_index.html", request, context)

        return index

    def refusal(self, terminal: str, served: ServedApp | None = None) -> tuple[int, str] | None:
        """Why a session of `served` on `terminal` cannot start now (HTTP status, message), or None."""
        if demo_terminal(terminal) is None:
            return 400, (f"Terminal {terminal!r} tidak dikenal. Pakai terminal demo, mis. BNI00001 "
                         f"(BNI/BRI/MDR/BTN 00001–{DEMO_TERMINALS_PER_BANK:05d}).")
        if len(self.sessions) >= self.max_sessions:
            return 503, (f"Semua {self.max_sessions} sesi sedang dipakai. Tutup sesi yang tidak dipakai "
                         "atau coba lagi nanti.")
        if (served.session_key(terminal) if served else terminal) in self.sessions:
            return 409, f"Terminal {terminal} sedang dipakai di sesi lain. Pilih terminal yang lain:"
        return None

    def free_terminals(self, served: ServedApp | None = None) -> list[str]:
        key = served.session_key if served is not None else (lambda terminal: terminal)
        return [bank.terminal_id(serial) for bank in BANKS.values() for serial in range(1, TRAINING_TERMINALS + 1)
                if key(bank.terminal_id(serial)) not in self.sessions]

    def message_page(self, request: web.Request, served: ServedApp, status: int, message: str) -> web.Response:
        links = ""
        if status == 409:
            base = served.path
            links = "<ul>" + "".join(f'<li><a href="{html.escape(base)}?terminal={t}">{t}</a></li>'
                                     for t in self.free_terminals(served)) + "</ul>"
        body = (f"<!DOCTYPE html><html lang=\"id\"><head><meta charset=\"utf-8\"><title>{html.escape(served.title)}"
                f"</title></head><body style=\"font-family: sans-serif; margin: 2em\"><h1>{html.escape(served.title)}"
                f"</h1><p>{html.escape(message)}</p>{links}</body></html>")
        headers = {"Retry-After": "30"} if status == 503 else None
        return web.Response(status=status, text=body, content_type="text/html", headers=headers)

    # -- sessions --------------------------------------------------------------------------

    def _session_handler(self, served: ServedApp) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self.run_session(request, served)

        return handler

    async def run_session(self, request: web.Request, served: ServedApp) -> web.WebSocketResponse:
        terminal = request.match_info["terminal"].upper()
        websocket = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_MESSAGE_BYTES)
        refusal = self.refusal(terminal, served)
        participant = request.query.get("participant") if served.participant else None
        if refusal is None and participant is not None:
            refusal = _participant_refusal(participant)
        session = None
        if refusal is None:  # claimed before the first await: no race with another tab
            session = self.sessions[served.session_key(terminal)] = Session(served, terminal, websocket, participant)
        try:
            await asyncio.wait_for(websocket.prepare(request), WRITE_TIMEOUT_S)
            if session is None:
                assert refusal is not None
                reason = {400: b"refused", 409: b"terminal in use", 503: b"full"}[refusal[0]]
                await asyncio.wait_for(websocket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=reason),
                                       WRITE_TIMEOUT_S)
                return websocket
            await self._run(session, request)
        except (TimeoutError, asyncio.TimeoutError, ConnectionError) as exc:
            log.info("session %s %s ended: %r", served.name, terminal, exc)
        except Exception:
            log.exception("session %s %s failed", served.name, terminal)
        finally:
            if session is not None:
                await asyncio.shield(self._end(session))
        return websocket

    async def _run(self, session: Session, request: web.Request) -> None:
        websocket = session.websocket
        width = min(max(to_int(request.query.get("width", "80"), 80), 10), 500)
        height = min(max(to_int(request.query.get("height", "24"), 24), 5), 200)
        session.service = service = SessionService(
            session.app.command(session.terminal, session.participant),
            write_bytes=bounded(websocket.send_bytes),
            write_str=bounded(websocket.send_str),
            close=bounded(websocket.close),
            download_manager=self.download_manager,
            debug=self.debug,
        )
        log.info("session %s %s starting (%d/%d)", session.app.name, session.terminal, len(self.sessions),
                 self.max_sessions)
        await asyncio.wait_for(service.start(width, height), START_TIMEOUT_S)
        reader = asyncio.create_task(self._read_browser(websocket, service))
        app_done = service.finished
        assert app_done is not None
        try:
            # Until the browser goes (closed tab, or no heartbeat answer) or the app exits.
            await asyncio.wait({reader, app_done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            await asyncio.wait({reader}, timeout=WRITE_TIMEOUT_S)

    async def _end(self, session: Session) -> None:
        try:
            await session.close()
        finally:
            key = session.app.session_key(session.terminal)
            if self.sessions.get(key) is session:
                del self.sessions[key]
            log.info("session %s %s ended", session.app.name, session.terminal)

    async def _read_browser(self, websocket: web.WebSocketResponse, service: SessionService) -> None:
        """What textual.js sends: ["stdin", text], ["resize", {width, height}], ["ping", x],
        ["blur"], ["focus"]. Each is handed on within WRITE_TIMEOUT_S; a malformed one is skipped."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
                kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
                if kind == "stdin":
                    step = service.send_bytes(str(data).encode("utf-8"))
                elif kind == "resize":
                    step = service.set_terminal_size(int(data["width"]), int(data["height"]))
                elif kind == "ping":
                    step = websocket.send_json(["pong", data])
                elif kind == "blur":
                    step = service.blur()
                elif kind == "focus":
                    step = service.focus()
                else:
                    continue
            except (ValueError, TypeError, KeyError, IndexError):
                log.warning("malformed message from browser skipped: %.80r", message.data)
                continue
            await asyncio.wait_for(step, WRITE_TIMEOUT_S)

    # -- lifecycle -------------------------------------------------------------------------

    async def on_shutdown(self, app: web.Application) -> None:
        sessions = list(self.sessions.values())
        if sessions:
            log.info("stopping %d session(s)", len(sessions))
            await asyncio.wait([asyncio.ensure_future(s.close()) for s in sessions],
                               timeout=QUIT_TIMEOUT_S + STOP_TIMEOUT_S * 2 + WRITE_TIMEOUT_S)

    def serve(self, debug: bool = False) -> int:  # type: ignore[override]
        """Serve until Ctrl-C or SIGTERM; returns the exit code."""
        self.debug = debug
        self.initialize_logging()
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        return asyncio.run(self._serve())

    async def _serve(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        runner = web.AppRunner(await self._make_app(), handle_signals=False,
                               shutdown_timeout=QUIT_TIMEOUT_S + STOP_TIMEOUT_S * 2 + WRITE_TIMEOUT_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            try:
                await site.start()
            except OSError as exc:
                self.console.print(f"[red]cannot listen on {self.host}:{self.port}: {exc.strerror or exc}[/]")
                return 1
            self.bound = [(str(a[0]), int(a[1])) for a in runner.addresses]
            for host, port in self.bound:
                where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
                for served in self.apps:
                    self.console.print(f"serving {served.name} at http://{where}{served.path}", soft_wrap=True)
            self.console.print(f"at most {self.max_sessions} sessions; Ctrl-C stops", soft_wrap=True)
            sys.stdout.flush()
            await stop.wait()
        finally:
            self.console.print(f"stopping ({len(self.sessions)} session(s))", soft_wrap=True)
            await runner.cleanup()
            self.console.print("stopped", soft_wrap=True)
        return 0


def _participant_refusal(participant: str | None) -> tuple[int, str] | None:
    """Why `?participant=` cannot be used (none given is fine: the app asks for the name)."""
    if participant is None or not participant.strip():
        return None
    from training.progress import participant_error

    problem = participant_error(participant)
    return None if problem is None else (400, f"Nama peserta tidak dapat dipakai: {problem}.")


def run_serve(host: str, port: int, switch: str, data_dir: Path, database_url: str | None = None,
              max_sessions: int = MAX_SESSIONS) -> int:
    switch_host, sep, switch_port = switch.rpartition(":")
    if not sep or not switch_host or not switch_port.isdigit():
        print(f"--switch must be HOST:PORT, not {switch!r}", file=sys.stderr)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    apps = served_apps(switch, data_dir.resolve(), database_url)
    return TrainingServer(apps, host=host, port=port, max_sessions=max_sessions).serve()


