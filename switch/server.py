"""The asyncio TCP listener: many terminals, persistent connections, several requests in
flight per connection, every read bounded in size and time.

Bounds: at most `connections_max` connections, and `connections_per_source_max` from one
source address (beyond either, a new connection is closed at once, with a warning); a
connection silent for `idle_timeout_ms` between frames is closed quietly; a frame whose first
byte has arrived must arrive whole within `frame_timeout_ms`, else the connection is closed with
one warning (a slow or stuck client holds nothing for long). Every answer task handles its own
exceptions: nothing is left for "Task exception was never retrieved".

The answers to one connection that are ready in the same turn of the event loop go out in one
write (`_Outbox`): a terminal uploading many advices at once gets its answers in a few writes,
not one system call each.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from shared import iso8583

from switch.core import SwitchCore

log = logging.getLogger("switch.server")

# Answers queued to a terminal beyond which an answer waits (at most the frame timeout) for the
# terminal to read: below it, writing costs no wait (the transport sends what it can at once).
DRAIN_BYTES = 16 * 1024


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
        frame_timeout_ms: int = 5_000,
        connections_per_source_max: int = 64,
        reuse_port: bool = False,
    ) -> None:
        self.core = core
        self._reuse_port = reuse_port  # several switch processes listen on this port (switch.workers)
        self.host = host
        self.port = port
        self._frame_bytes_max = frame_bytes_max
        self._idle_timeout_ms = idle_timeout_ms
        self._frame_timeout_ms = frame_timeout_ms
        self._inflight_max = inflight_per_connection_max
        self._connections_max = connections_max
        self._per_source_max = connections_per_source_max
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task] = set()
        self._by_source: Counter[str] = Counter()
        self._stopping = False
        self.connections = 0
        self.frames = 0
        self.refused_connections = 0
        self.slow_frames = 0

    async def start(self) -> None:
        extra = {"reuse_port": True} if self._reuse_port else {}
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=1024, **extra)
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

    def _admit(self, source: str) -> bool:
        """True when a connection from `source` is within both bounds (and then counts it)."""
        if self.connections >= self._connections_max:
            reason = f"{self.connections} connections open"
        elif self._by_source[source] >= self._per_source_max:
            reason = f"{self._by_source[source]} connections open from {source}"
        else:
            self.connections += 1
            self._by_source[source] += 1
            return True
        self.refused_connections += 1
        log.warning("refused a connection: %s", reason)
        return False

    def _release(self, source: str) -> None:
        self.connections -= 1
        self._by_source[source] -= 1
        if self._by_source[source] <= 0:
            del self._by_source[source]  # the counter holds only sources with open connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = _source_of(writer)
        if not self._admit(source):
            writer.close()
            return
        me = asyncio.current_task()
        self._clients.add(me)
        slots = asyncio.Semaphore(self._inflight_max)
        tasks: set[asyncio.Task] = set()
        try:
            await self._read_loop(reader, _Outbox(writer), slots, tasks, source)
        except asyncio.CancelledError:
            pass  # the server is stopping: this connection task ends here, quietly
        except Exception:  # noqa: BLE001 - a fault on one connection must not reach the listener
            log.exception("connection from %s failed", source)
        finally:
            if self._stopping:
                for task in tasks:
                    task.cancel()
            # Otherwise answers in flight finish (bounded by the bank timeout) and are journalled.
            self._release(source)
            self._clients.discard(me)
            writer.close()

    async def _read_loop(self, reader, outbox, slots, tasks, source: str) -> None:  # noqa: ANN001
        while True:
            try:
                body = await iso8583.read_frame(reader, self._idle_timeout_ms, self._frame_bytes_max, self._frame_timeout_ms)
            except iso8583.FrameError as exc:
                log.warning("dropped a frame from %s: %s", source, exc)
                continue
            except iso8583.FrameTimeoutError as exc:
                self.slow_frames += 1
                log.warning("closed a connection from %s: %s", source, exc)
                return
            except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                return  # end of stream, reset, or idle between frames: close quietly
            self.frames += 1
            await slots.acquire()  # bounded: each answer task ends within the bank timeout
            task = asyncio.create_task(self._answer(body, outbox, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _answer(self, body: bytes, outbox: _Outbox, slots: asyncio.Semaphore) -> None:
        try:
            answer = await self.core.handle(body)
            if answer is None:
                return
            outbox.put(_framed(answer))
            if outbox.backlog_bytes > DRAIN_BYTES:  # the terminal reads slowly
                await asyncio.wait_for(outbox.drain(), timeout=self._frame_timeout_ms / 1000)
        except ConnectionError:
            pass  # the terminal went away; it will repeat or reverse
        except TimeoutError:
            log.warning("closed a connection: the terminal did not read its answer within %d ms", self._frame_timeout_ms)
            outbox.writer.close()  # it will repeat or reverse
        except Exception:  # noqa: BLE001 - a fault of the switch: logged, the connection goes on
            log.exception("failed to answer a frame of %d bytes", len(body))
        finally:
            slots.release()


class _Outbox:
    """One connection's answers, written together at the end of the event loop's turn in which
    they were ready: whole frames, in the order they were put, never interleaved."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._frames: list[bytes] = []
        self._frames_bytes = 0

    def put(self, frame: bytes) -> None:
        if not self._frames:
            asyncio.get_running_loop().call_soon(self._flush)
        self._frames.append(frame)
        self._frames_bytes += len(frame)

    @property
    def backlog_bytes(self) -> int:
        """Bytes put but not yet taken by the kernel."""
        return self.writer.transport.get_write_buffer_size() + self._frames_bytes

    async def drain(self) -> None:
        self._flush()
        await self.writer.drain()

    def _flush(self) -> None:
        frames, self._frames, self._frames_bytes = self._frames, [], 0
        if not frames or self.writer.is_closing():
            return  # the terminal went away; it will repeat or reverse
        try:
            self.writer.write(b"".join(frames))
        except (ConnectionError, RuntimeError):  # closed meanwhile (uvloop raises RuntimeError)
            pass


def _source_of(writer: asyncio.StreamWriter) -> str:
    """The peer's address (without port) a connection comes from; '?' when unknown."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return "?"


def _framed(body: bytes) -> bytes:
    return len(body).to_bytes(iso8583.LENGTH_BYTES, "big") + body
