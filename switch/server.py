"""The asyncio TCP listener: many terminals, persistent connections, several requests in
flight per connection, every read bounded in size and time."""

from __future__ import annotations

import asyncio
import logging

from shared import iso8583

from switch.core import SwitchCore

log = logging.getLogger("switch.server")


class IsoServer:
    def __init__(
        self,
        core: SwitchCore,
        host: str,
        port: int,
        frame_bytes_max: int,
        idle_timeout_ms: int,
        inflight_per_connection_max: int,
        connections_max: int,
    ) -> None:
        self.core = core
        self.host = host
        self.port = port
        self._frame_bytes_max = frame_bytes_max
        self._idle_timeout_ms = idle_timeout_ms
        self._inflight_max = inflight_per_connection_max
        self._connections_max = connections_max
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task] = set()
        self._stopping = False
        self.connections = 0
        self.frames = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every terminal connection."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self._connections_max:
            log.warning("refused a connection: %d open", self.connections)
            writer.close()
            return
        self.connections += 1
        me = asyncio.current_task()
        self._clients.add(me)
        slots = asyncio.Semaphore(self._inflight_max)
        write_lock = asyncio.Lock()
        tasks: set[asyncio.Task] = set()
        try:
            await self._read_loop(reader, writer, slots, write_lock, tasks)
        except asyncio.CancelledError:
            pass  # the server is stopping: this connection task ends here, quietly
        finally:
            if self._stopping:
                for task in tasks:
                    task.cancel()
            # Otherwise answers in flight finish (bounded by the bank timeout) and are journalled.
            self.connections -= 1
            self._clients.discard(me)
            writer.close()

    async def _read_loop(self, reader, writer, slots, write_lock, tasks) -> None:  # noqa: ANN001
        while True:
            try:
                body = await iso8583.read_frame(reader, self._idle_timeout_ms, self._frame_bytes_max)
            except iso8583.FrameError as exc:
                log.warning("dropped a frame: %s", exc)
                continue
            except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                return
            self.frames += 1
            await slots.acquire()
            task = asyncio.create_task(self._answer(body, writer, write_lock, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _answer(self, body: bytes, writer: asyncio.StreamWriter, write_lock: asyncio.Lock, slots: asyncio.Semaphore) -> None:
        try:
            answer = await self.core.handle(body)
            if answer is None:
                return
            async with write_lock:
                writer.write(_framed(answer))
                await asyncio.wait_for(writer.drain(), timeout=self._idle_timeout_ms / 1000)
        except (ConnectionError, TimeoutError):
            pass  # the terminal went away; it will repeat or reverse
        finally:
            slots.release()


def _framed(body: bytes) -> bytes:
    return len(body).to_bytes(iso8583.LENGTH_BYTES, "big") + body
