"""An asyncio ISO 8583 client: one persistent TCP connection from an EDC to the switch.

Several requests may be in flight at once (bounded); each answer is matched to its request by
(MTI class, STAN), so a late or out-of-order answer reaches the right caller and an answer
nobody waits for is dropped. Every await has a timeout: connect, send, each answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from shared.iso8583 import FrameError, FrameTimeoutError, Message, MessageError, Tpdu, decode, frame, read_frame, response_mti, split_frame

log = logging.getLogger(__name__)

REQUEST_TPDU = Tpdu(destination=0x0001, source=0x0000)
READ_IDLE_MS = 60_000  # the reader wakes up this often when the line is quiet


class SwitchUnavailable(ConnectionError):
    """The switch cannot be reached, or the connection to it was lost."""


@dataclass(frozen=True, slots=True)
class Received:
    message: Message  # decoded
    raw: bytes  # the message bytes (without length and TPDU), for MAC checks


@dataclass(frozen=True, slots=True)
class ClientConfig:
    connect_timeout_ms: int = 5_000
    max_in_flight: int = 8
    frame_timeout_ms: int = 5_000  # a started answer must be whole within this, else the link is dropped
    tpdu: Tpdu = REQUEST_TPDU


def match_key(mti: str, stan: str) -> tuple[str, str]:
    """(MTI class, STAN) of an answer: '0410' for both 0400 and 0401 becomes '041'."""
    return mti[:3], stan


class SwitchClient:
    def __init__(self, host: str, port: int, config: ClientConfig = ClientConfig()) -> None:
        self.host = host
        self.port = port
        self.config = config
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._waiters: dict[tuple[str, str], asyncio.Future[Received]] = {}
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._write_lock = asyncio.Lock()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    @property
    def in_flight(self) -> int:
        return len(self._waiters)

    async def __aenter__(self) -> SwitchClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        timeout = self.config.connect_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            raise SwitchUnavailable(f"Switch {self.address} tidak menjawab dalam {timeout:g} detik (koneksi)") from None
        except OSError as exc:
            raise SwitchUnavailable(f"Switch {self.address} tidak dapat dihubungi: {_reason(exc)}") from None
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"edc-reader-{self.address}")

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self._writer.wait_closed()
            self._writer = None
        self._fail_waiters(SwitchUnavailable("Koneksi ke switch ditutup"))

    async def request(self, data: bytes, mti: str, stan: str, timeout_ms: int) -> Received:
        """Send message `data` (MTI `mti`, STAN `stan`) and await its answer.

        Raises TimeoutError when no answer comes within `timeout_ms` (waiting for a free slot and
        sending count against it), SwitchUnavailable when the connection is down."""
        key = match_key(response_mti(mti), stan)
        async with asyncio.timeout(timeout_ms / 1000):
            async with self._slots:
                return await self._exchange(key, data)

    async def _exchange(self, key: tuple[str, str], data: bytes) -> Received:
        if not self.connected:
            raise SwitchUnavailable(f"Tidak terhubung ke switch {self.address}")
        if key in self._waiters:
            raise ValueError(f"a request with MTI class {key[0]} and STAN {key[1]} is already in flight")
        waiter: asyncio.Future[Received] = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        try:
            await self._write(frame(self.config.tpdu, data))
            return await waiter
        finally:
            self._waiters.pop(key, None)

    async def _write(self, framed: bytes) -> None:
        assert self._writer is not None
        async with self._write_lock:
            try:
                self._writer.write(framed)
                await self._writer.drain()
            except OSError as exc:
                raise SwitchUnavailable(f"Koneksi ke switch {self.address} terputus: {_reason(exc)}") from None

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                try:
                    body = await read_frame(self._reader, READ_IDLE_MS, frame_timeout_ms=self.config.frame_timeout_ms)
                except FrameTimeoutError:
                    raise  # the stream is out of step (a length that lied): only a new connection recovers
                except TimeoutError:
                    continue
                self._deliver(body)
        except (asyncio.IncompleteReadError, ConnectionError, FrameError, FrameTimeoutError, OSError) as exc:
            log.info("connection to switch %s ended: %s", self.address, exc)
        finally:
            self._fail_waiters(SwitchUnavailable(f"Koneksi ke switch {self.address} terputus"))
            if self._writer is not None:
                self._writer.close()

    def _deliver(self, body: bytes) -> None:
        try:
            _, raw = split_frame(body)
            message = decode(raw)
        except (FrameError, MessageError) as exc:
            log.warning("dropping an unreadable frame from the switch: %s", exc)
            return
        key = match_key(str(message.get("t", "")), str(message.get("11", "")))
        waiter = self._waiters.get(key)
        if waiter is None or waiter.done():
            log.info("dropping an answer nobody waits for: MTI %s STAN %s", *key)
            return
        waiter.set_result(Received(message, raw))

    def _fail_waiters(self, exc: Exception) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(exc)


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "koneksi ditolak"
    return exc.strerror or type(exc).__name__
