"""An asyncio TCP proxy between EDC terminals and the switch that plays a link profile.

The proxy reads whole frames (2-byte big-endian length + TPDU + message, see shared.iso8583)
and applies, per frame and per direction: a one-way delay (half the round trip, plus or minus
half the jitter, divided by time_scale), loss, serialisation delay at the profile's bandwidth
and random disconnects. Each direction draws from its own `random.Random`, seeded from `seed`,
so the same seed replays the same behaviour for the same sequence of frames. Frames keep their
order per direction.

Tests and scenarios steer it: drop, delay or duplicate the next frame in a direction, cut the
link (close every connection and refuse new ones) and heal it, or swap the profile.
Everything is bounded: frame size, bytes queued per connection and direction, connections, and
every wait.
"""

from __future__ import annotations

import asyncio
import copy
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from shared.iso8583 import FRAME_BYTES_MAX, FrameSplitter

from .profiles import LinkProfile

TO_SWITCH = "to_switch"
TO_TERMINAL = "to_terminal"
DIRECTIONS = (TO_SWITCH, TO_TERMINAL)

CONNECTIONS_MAX = 64
# Per connection and direction: what the link holds in flight, in bytes (a few thousand of the
# terminals' frames: a pipelined upload is not held back by the proxy); beyond it the proxy stops
# reading that side (back-pressure).
QUEUED_BYTES_MAX = 512 * 1024
STEERING_PENDING_MAX = 64  # pending drop/delay/duplicate requests per direction
CONNECT_TIMEOUT_MS = 5_000
WRITE_TIMEOUT_MS = 5_000
IDLE_TIMEOUT_MS = 900_000  # a connection with no frame either way for this long is closed
CLOSE_TIMEOUT_MS = 2_000
DRAIN_BYTES = 64 * 1024  # a writer waits for the peer only past this much unsent data
READ_CHUNK_BYTES = 64 * 1024  # what one read takes from a side: every whole frame in it is forwarded
STEER_DELAY_MS_MAX = 600_000
TIME_SCALE_MAX = 1_000.0


@dataclass
class LinkCounters:
    """What the proxy did, per direction where it applies."""

    forwarded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    duplicated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    connections_accepted: int = 0
    connections_refused: int = 0
    connections_cut: int = 0


@dataclass
class _Steering:
    """Pending one-shot requests for the next frames of one direction."""

    drops: int = 0
    duplicates: int = 0
    delays_ms: deque[int] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What happens to one frame."""

    copies: int  # 0 = lost
    extra_delay_ms: int
    jitter_ms: float
    disconnect: bool


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close a connection at once, discarding what is buffered (a broken link)."""
    writer.transport.abort()
    writer.close()


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")


class LinkProxy:
    """A TCP proxy from (listen_host, listen_port) to (upstream_host, upstream_port) that plays
    `profile`. listen_port 0 picks a free port (see `port`). time_scale > 1 shortens the
    profile's delays (not the steering delays) so tests run slow links fast."""

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        upstream_host: str,
        upstream_port: int,
        profile: LinkProfile,
        seed: int = 0,
        time_scale: float = 1.0,
    ) -> None:
        if not 0 < time_scale <= TIME_SCALE_MAX:
            raise ValueError(f"time_scale must be within (0, {TIME_SCALE_MAX}], got {time_scale}")
        self.listen_host, self.listen_port = listen_host, listen_port
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.time_scale = time_scale
        self.seed = seed
        self._profile = profile
        self._rngs = {d: random.Random(f"{seed}:{d}") for d in DIRECTIONS}
        self._steering = {d: _Steering() for d in DIRECTIONS}
        self._counters = LinkCounters()
        self._lock = threading.Lock()
        self._cut = False
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()  # one per accepted socket
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen; returns self."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.listen_port)
        return self

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is None:
            return
        self._server.close()
        self._close_all(count_as_cut=False)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_MS / 1000):
                await self._server.wait_closed()
                await asyncio.gather(*self._handlers, return_exceptions=True)
        except TimeoutError:
            pass
        self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port the proxy listens on (after start)."""
        if self._server is None:
            raise RuntimeError("the link proxy is not started")
        return self._server.sockets[0].getsockname()[1]

    # -- state and counters ----------------------------------------------------------------

    @property
    def profile(self) -> LinkProfile:
        return self._profile

    @property
    def state(self) -> str:
        """Status-line text: "OFFLINE", "TERPUTUS" (cut) or e.g. "VSAT ~600 ms"."""
        if not self._profile.available:
            return "OFFLINE"
        if self._cut:
            return "TERPUTUS"
        return self._profile.label

    @property
    def counters(self) -> LinkCounters:
        """A snapshot of the counters."""
        with self._lock:
            return copy.deepcopy(self._counters)

    @property
    def connections(self) -> int:
        return len(self._connections)

    # -- steering --------------------------------------------------------------------------

    def drop_next(self, direction: str) -> None:
        """Lose the next frame in `direction`."""
        self._steer(direction, lambda s: setattr(s, "drops", s.drops + 1), lambda s: s.drops)

    def duplicate_next(self, direction: str) -> None:
        """Deliver the next frame in `direction` twice."""
        self._steer(direction, lambda s: setattr(s, "duplicates", s.duplicates + 1), lambda s: s.duplicates)

    def delay_next(self, direction: str, delay_ms: int) -> None:
        """Hold the next frame in `direction` for `delay_ms` more (wall-clock, not scaled);
        the frames behind it wait too, as order is kept."""
        if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or not 0 <= delay_ms <= STEER_DELAY_MS_MAX:
            raise ValueError(f"delay_ms must be a whole number within [0, {STEER_DELAY_MS_MAX}], got {delay_ms!r}")
        self._steer(direction, lambda s: s.delays_ms.append(delay_ms), lambda s: len(s.delays_ms))

    def cut(self) -> None:
        """Close every connection now and refuse new ones until `heal()`."""
        self._cut = True
        self._on_loop(lambda: self._close_all(count_as_cut=True))

    def heal(self) -> None:
        """Accept connections again after `cut()`."""
        self._cut = False

    def forget_steering(self) -> int:
        """Drop every drop/delay/duplicate request not yet used; returns how many there were."""
        with self._lock:
            pending = sum(s.drops + s.duplicates + len(s.delays_ms) for s in self._steering.values())
            self._steering = {d: _Steering() for d in DIRECTIONS}
        return pending

    def set_profile(self, profile: LinkProfile) -> None:
        """Play `profile` from the next frame on; an unavailable one closes every connection."""
        if not isinstance(profile, LinkProfile):
            raise TypeError(f"profile must be a LinkProfile, got {type(profile).__name__}")
        self._profile = profile
        if not profile.available:
            self._on_loop(lambda: self._close_all(count_as_cut=True))

    def _steer(self, direction: str, apply: Callable[[_Steering], None], pending: Callable[[_Steering], int]) -> None:
        _check_direction(direction)
        with self._lock:
            steering = self._steering[direction]
            if pending(steering) >= STEERING_PENDING_MAX:
                raise ValueError(f"at most {STEERING_PENDING_MAX} pending requests of one kind per direction")
            apply(steering)

    def _on_loop(self, action: Callable[[], None]) -> None:
        """Run `action` on the proxy's loop: now when called from it, else scheduled."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
        else:
            loop.call_soon_threadsafe(action)

    # -- per frame ---------------------------------------------------------------------------

    def _plan(self, direction: str) -> _Plan:
        """Decide one frame's fate. Always draws the same three numbers, so a seed replays."""
        rng = self._rngs[direction]
        lost_draw, disconnect_draw, jitter_draw = rng.random(), rng.random(), rng.uniform(-1.0, 1.0)
        profile = self._profile
        copies = 0 if lost_draw < profile.loss else 1
        with self._lock:
            steering = self._steering[direction]
            extra_delay_ms = steering.delays_ms.popleft() if steering.delays_ms else 0
            if steering.drops:
                steering.drops -= 1
                copies = 0
            elif steering.duplicates and copies:
                steering.duplicates -= 1
                copies = 2
        return _Plan(copies, extra_delay_ms, jitter_draw * profile.jitter_ms / 2, disconnect_draw < profile.disconnect_rate)

    def _one_way_s(self, plan: _Plan) -> float:
        """The propagation delay of one frame, in seconds of wall-clock time."""
        scaled_ms = max(0.0, self._profile.rtt_ms / 2 + plan.jitter_ms) / self.time_scale
        return (scaled_ms + plan.extra_delay_ms) / 1000

    def _serialisation_s(self, frame_bytes: int) -> float:
        bandwidth = self._profile.bandwidth_bytes_per_s
        return frame_bytes / bandwidth / self.time_scale if bandwidth else 0.0

    def _count(self, kind: str, direction: str, n: int = 1) -> None:
        with self._lock:
            getattr(self._counters, kind)[direction] += n

    def _count_connection(self, kind: str) -> None:
        with self._lock:
            setattr(self._counters, kind, getattr(self._counters, kind) + 1)

    # -- connections -------------------------------------------------------------------------

    def _refusing(self) -> bool:
        return self._cut or not self._profile.available or len(self._connections) >= CONNECTIONS_MAX

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(handler)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing():
            self._count_connection("connections_refused")
            _abort(writer)
            return
        upstream = await self._connect_upstream()
        if upstream is None or self._refusing():
            self._count_connection("connections_refused")
            _abort(writer)
            if upstream is not None:
                _abort(upstream[1])
            return
        self._count_connection("connections_accepted")
        connection = _Connection(self, reader, writer, *upstream)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_MS / 1000):
                return await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except (OSError, TimeoutError):
            return None

    def _close_all(self, count_as_cut: bool) -> None:
        for connection in list(self._connections):
            if count_as_cut:
                self._count_connection("connections_cut")
            connection.close(abort=True)


@dataclass(slots=True)
class _Queued:
    data: bytes
    due: float  # loop time at which the frame is delivered


class _Lane:
    """One direction of one connection: its queue (at most QUEUED_BYTES_MAX of frames) and the
    link's timing."""

    def __init__(self, direction: str, writer: asyncio.StreamWriter) -> None:
        self.direction = direction
        self.writer = writer
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue()  # bounded in bytes by `put`
        self.queued_bytes = 0
        self._room = asyncio.Event()
        self.link_free_at = 0.0
        self.last_due = 0.0

    def _fits(self, size_bytes: int) -> bool:
        return not self.queued_bytes or self.queued_bytes + size_bytes <= QUEUED_BYTES_MAX

    async def put(self, item: _Queued | None, timeout_s: float) -> bool:
        """Queue `item` (None: the end of the stream) once it fits; False when no room came
        within `timeout_s` (the peer does not read)."""
        size_bytes = len(item.data) if item is not None else 0
        if not self._fits(size_bytes):
            try:
                async with asyncio.timeout(timeout_s):
                    while not self._fits(size_bytes):
                        self._room.clear()
                        await self._room.wait()
            except TimeoutError:
                return False
        self.queued_bytes += size_bytes
        self._queue.put_nowait(item)
        return True

    async def get(self) -> _Queued | None:
        return self._taken(await self._queue.get())

    def get_nowait(self) -> _Queued | None:
        """The next item; raises asyncio.QueueEmpty when there is none."""
        return self._taken(self._queue.get_nowait())

    def _taken(self, item: _Queued | None) -> _Queued | None:
        if item is not None:
            self.queued_bytes -= len(item.data)
            self._room.set()
        return item

    def schedule(self, now: float, serialisation_s: float, one_way_s: float) -> float:
        """The delivery time of the next frame: after it is serialised and has travelled,
        and never before the frame ahead of it."""
        start = max(now, self.link_free_at)
        self.link_free_at = start + serialisation_s
        self.last_due = max(self.link_free_at + one_way_s, self.last_due)
        return self.last_due


class _Connection:
    """A terminal connection and its upstream connection, with a reader and a writer per
    direction. Any side's end or error closes both sides."""

    def __init__(
        self,
        proxy: LinkProxy,
        terminal_reader: asyncio.StreamReader,
        terminal_writer: asyncio.StreamWriter,
        switch_reader: asyncio.StreamReader,
        switch_writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.readers = {TO_SWITCH: terminal_reader, TO_TERMINAL: switch_reader}
        self.lanes = {TO_SWITCH: _Lane(TO_SWITCH, switch_writer), TO_TERMINAL: _Lane(TO_TERMINAL, terminal_writer)}
        self.done = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        """Pump both directions until either side ends; the idle timeouts bound the wait."""
        for direction in DIRECTIONS:
            self.tasks.append(asyncio.create_task(self._read(direction)))
            self.tasks.append(asyncio.create_task(self._write(direction)))
        try:
            await self.done.wait()
        finally:
            await self._finish()

    def close(self, abort: bool = False) -> None:
        for lane in self.lanes.values():
            if abort:
                _abort(lane.writer)
            else:
                lane.writer.close()
        self.done.set()

    async def _finish(self) -> None:
        self.close()
        for task in self.tasks:
            task.cancel()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_MS / 1000):
                await asyncio.gather(*self.tasks, return_exceptions=True)
        except TimeoutError:
            pass

    async def _read(self, direction: str) -> None:
        lane = self.lanes[direction]
        reader = self.readers[direction]
        splitter = FrameSplitter(FRAME_BYTES_MAX)
        while not self.done.is_set():
            try:
                async with asyncio.timeout(IDLE_TIMEOUT_MS / 1000):
                    chunk = await reader.read(READ_CHUNK_BYTES)
            except TimeoutError:
                self.close()
                return
            except ConnectionError:
                chunk = b""
            if not chunk:
                await self._put(lane, None)  # deliver what is queued, then close
                return
            dropped = splitter.dropped
            for data in splitter.feed(chunk):
                if self.done.is_set():
                    return  # a disconnect drawn for a frame before it closed the link
                await self._enqueue(lane, data)
            if splitter.dropped > dropped:
                self.proxy._count("dropped", direction, splitter.dropped - dropped)

    async def _put(self, lane: _Lane, item: _Queued | None) -> None:
        """Queue one item; a queue that stays full (the peer does not read) closes both sides."""
        if not await lane.put(item, WRITE_TIMEOUT_MS / 1000):
            self.close(abort=True)

    async def _enqueue(self, lane: _Lane, data: bytes) -> None:
        proxy = self.proxy
        plan = proxy._plan(lane.direction)
        if plan.disconnect:
            proxy._count("dropped", lane.direction)
            proxy._count_connection("connections_cut")
            self.close(abort=True)
            return
        if plan.copies == 0:
            proxy._count("dropped", lane.direction)
            return
        loop_now = asyncio.get_running_loop().time()
        due = lane.schedule(loop_now, proxy._serialisation_s(len(data)), proxy._one_way_s(plan))
        for _ in range(plan.copies):
            await self._put(lane, _Queued(data, due))
        if plan.copies > 1:
            proxy._count("duplicated", lane.direction, plan.copies - 1)

    async def _write(self, direction: str) -> None:
        """Deliver each queued frame at its due time; frames already due by then go in the same
        write (one system call), as a link hands over whatever has arrived."""
        lane = self.lanes[direction]
        loop = asyncio.get_running_loop()
        held: _Queued | None = None
        try:
            while True:
                # Bounded: the reader's idle timeout closes the connection, which cancels this task.
                item = held or await lane.get()
                if item is None or lane.writer.is_closing():
                    break
                delay_s = item.due - loop.time()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                frames, held, ended = self._take_due(lane, item, loop.time())
                lane.writer.write(frames[0] if len(frames) == 1 else b"".join(frames))
                if lane.writer.transport.get_write_buffer_size() > DRAIN_BYTES:  # the peer reads slowly
                    async with asyncio.timeout(WRITE_TIMEOUT_MS / 1000):
                        await lane.writer.drain()
                self.proxy._count("forwarded", direction, len(frames))
                if ended:
                    break
        except (ConnectionError, TimeoutError):
            pass
        self.close()

    @staticmethod
    def _take_due(lane: _Lane, first: _Queued, now: float) -> tuple[list[bytes], _Queued | None, bool]:
        """`first` and the queued frames due by `now` behind it; the next frame, when it is not
        due yet (held for its time); and whether the end of the stream came after them."""
        frames = [first.data]
        while True:
            try:
                item = lane.get_nowait()
            except asyncio.QueueEmpty:
                return frames, None, False
            if item is None:
                return frames, None, True
            if item.due > now:
                return frames, item, False
            frames.append(item.data)

