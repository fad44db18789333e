"""`sembako serve` as a training room uses it: pages for the cashier app and the EDC, a browser
session that gets the EDC's screen, one tab per terminal, and Ctrl-C that ends every session.

The server runs as a real subprocess on a free port; every wait is bounded and the server is
killed at the end whatever happens. No switch runs: the EDC draws its screen all the same."""

from __future__ import annotations

import asyncio
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

WAIT_S = 15.0
UNUSED_SWITCH = "127.0.0.1:9"  # nothing listens: the apps start anyway


@dataclass
class Served:
    process: subprocess.Popen
    base: str
    lines: queue.Queue
    data_dir: Path

    def output(self) -> str:
        out = []
        while not self.lines.empty():
            out.append(self.lines.get_nowait())
        return "".join(out)


def start_serve(tmp_path: Path, *args: str) -> Served:
    process = subprocess.Popen(
        [sys.executable, "-m", "sembako", "serve", "--port", "0", "--switch", UNUSED_SWITCH,
         "--data-dir", str(tmp_path), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env={**__import__("os").environ, "COLUMNS": "200", "DATABASE_URL": ""},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + WAIT_S
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if match := re.search(r"serving ewarong at (http://[\d.]+:\d+)/", line):
            return Served(process, match.group(1), lines, tmp_path)
    stop_process(process)
    raise AssertionError(f"sembako serve did not start: {''.join(seen)}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=WAIT_S)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start_serve(tmp_path, "--max-sessions", "2")
    try:
        yield server
    finally:
        stop_process(server.process)
        assert not apps_running(tmp_path)


def apps_running(data_dir: Path) -> list[str]:
    """Command lines of live processes started with this test's data directory."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data_dir) in text and " serve " not in text:
            found.append(text)
    return found


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(asyncio.wait_for(coro, WAIT_S * 2))


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


def websocket_url(page: str) -> str:
    match = re.search(r'data-session-websocket-url="(ws://[^"]+)"', page)
    assert match, page
    return match.group(1)


async def first_screen(ws: aiohttp.ClientWebSocketResponse, enough: int = 1_000) -> bytes:
    """What textual.js does on open (send the size), then the app's output until `enough` bytes."""
    await ws.send_json(["resize", {"width": 100, "height": 30}])
    await ws.send_json(["ping", "1"])
    screen = b""
    deadline = time.monotonic() + WAIT_S
    while len(screen) < enough:
        message = await asyncio.wait_for(ws.receive(), max(0.1, deadline - time.monotonic()))
        if message.type == aiohttp.WSMsgType.BINARY:
            screen += message.data
        elif message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"session closed after {len(screen)} bytes: {message}")
    return screen


def new_client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S))


def test_pages_for_the_cashier_app_and_the_edc(served: Served) -> None:
    async def scenario() -> None:
        async with new_client() as client:
            status, page = await get(client, served.base + "/")
            assert status == 200
            assert "js/textual.js" in page and "Kasir e-Warong" in page
            assert websocket_url(page) == served.base.replace("http:", "ws:") + "/ws/BNI00001"
            status, page = await get(client, served.base + "/edc")
            assert status == 200 and "js/textual.js" in page
            assert websocket_url(page) == served.base.replace("http:", "ws:") + "/edc/ws/BNI00001"
            status, page = await get(client, served.base + "/edc?terminal=bri00003")
            assert websocket_url(page).endswith("/edc/ws/BRI00003")
            status, _ = await get(client, served.base + "/static/js/textual.js")
            assert status == 200
            status, page = await get(client, served.base + "/edc?terminal=XYZ99")
            assert status == 400 and "tidak dikenal" in page

    run(scenario())


def test_browser_session_gets_the_edc_screen_and_holds_its_terminal(served: Served) -> None:
    async def scenario() -> None:
        async with new_client() as client:
            _, page = await get(client, served.base + "/edc")
            async with client.ws_connect(websocket_url(page) + "?width=100&height=30") as ws:
                screen = await first_screen(ws)
                assert b"\x1b[" in screen  # the app's own drawing
                # the terminal is taken: a second tab is sent to a free one
                status, busy = await get(client, served.base + "/edc?terminal=BNI00001")
                assert status == 409 and "sedang dipakai" in busy and "?terminal=BNI00002" in busy
                # the limit (2 here): one more session fits, then the room is full
                _, page2 = await get(client, served.base + "/edc?terminal=BRI00001")
                async with client.ws_connect(websocket_url(page2)) as ws2:
                    await first_screen(ws2, enough=1)
                    status, full = await get(client, served.base + "/?terminal=BTN00001")
                    assert status == 503 and "Semua 2 sesi" in full
                    async with client.ws_connect(served.base.replace("http:", "ws:") + "/ws/BTN00001") as ws3:
                        refused = await asyncio.wait_for(ws3.receive(), WAIT_S)
                        assert refused.type == aiohttp.WSMsgType.CLOSE and refused.data == 1013
            # closing the tab ends the session: the terminal is free again
            deadline = time.monotonic() + WAIT_S
            while (await get(client, served.base + "/edc?terminal=BNI00001"))[0] != 200:
                assert time.monotonic() < deadline, "session not ended after the tab closed"
                await asyncio.sleep(0.2)

    run(scenario())
    deadline = time.monotonic() + WAIT_S
    while apps_running(served.data_dir):
        assert time.monotonic() < deadline, apps_running(served.data_dir)
        time.sleep(0.2)


def test_ctrl_c_ends_every_session_and_the_server(served: Served) -> None:
    async def scenario() -> None:
        async with new_client() as client:
            _, page = await get(client, served.base + "/edc")
            async with client.ws_connect(websocket_url(page)) as ws:
                await first_screen(ws)
                await asyncio.sleep(0.3)  # fully up: it quits when asked (a starting app is killed, later)
                assert apps_running(served.data_dir)
                served.process.send_signal(signal.SIGINT)
                while (message := await asyncio.wait_for(ws.receive(), WAIT_S)).type == aiohttp.WSMsgType.BINARY:
                    pass
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

    run(scenario())
    assert served.process.wait(timeout=WAIT_S) == 0
    assert "stopped" in served.output()
    assert not apps_running(served.data_dir)
