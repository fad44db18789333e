"""Logging of a service process: its own rotating file, repeated warnings rate-limited.

`configure_logging(service_name, data_dir)` (called by `sembako switch serve` and
`sembako bank serve`) sends the process's log records to `<data_dir>/logs/<service>.log`,
rotated at `file_bytes_max` with `files_kept` old files beside it (`<service>.log.1`, ...), and
to stderr as well when stderr is a terminal. So a service's log never grows without bound.

- Rate limit: of the records at WARNING and above that share a logger, a level and a message
  template ("format error in %s: %s"), at most `burst` per `interval_s` are written; the rest
  are counted and reported as one line "... suppressed N similar" (with the next record of the
  same kind, or by a reporter thread once the interval is over). At most `keys_max` kinds are
  tracked. INFO records (start, stop) are never limited.
- One line per record: a message is cut at `line_chars_max` and its line breaks escaped;
  tracebacks (from `log.exception`, kept for real faults of the service) are written whole.
- uvicorn: the services start uvicorn with `log_config=None`, so its own records ("uvicorn.error")
  go through these handlers; access logs are off in every service (bank URLs carry card numbers,
  and one line per request would be the largest log of all). `sembako up` captures each child's
  stdout and stderr in `<service>.out` only for what escapes logging (an interpreter crash).

Worker processes of one service that a supervisor cannot number (uvicorn's, for `sembako bank
serve --workers N`) each take the lowest free slot (`worker_slot`) and log to
`<service>-worker-<slot>.log`: rotation is safe only with one writer per file.

Settings come from SEMBAKO_LOG_* environment variables (see LogSettings).
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
TEMPLATE_CHARS_MAX = 200  # of a message template, as the rate limit's key

log = logging.getLogger("logs")


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEMBAKO_LOG_", extra="ignore")

    level: str = "INFO"
    file_bytes_max: int = 10_000_000  # a log file is rotated at this size
    files_kept: int = 5  # rotated files kept beside the current one
    burst: int = 10  # records of one kind written per interval before suppression
    interval_s: float = 60.0
    keys_max: int = 1_024  # kinds of record tracked by the rate limit
    line_chars_max: int = 2_000  # of one message (tracebacks are not cut)
    stderr: str = "auto"  # "auto" (when a terminal), "always" or "never"


@dataclass
class _Window:
    start_s: float
    passed: int = 1
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    """Lets `burst` records of one kind through per `interval_s`, counts the rest.

    Put the same instance on every handler: the decision is taken once per record."""

    def __init__(self, burst: int, interval_s: float, keys_max: int = 1_024, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.interval_s = interval_s
        self.keys_max = keys_max
        self._clock = clock
        self._windows: OrderedDict[tuple, _Window] = OrderedDict()
        self._lock = threading.Lock()
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or getattr(record, "rate_limit_exempt", False):
            return True
        decision = getattr(record, "_rate_limit_decision", None)
        if decision is None:
            with self._lock:
                decision = self._decide(record)
            record._rate_limit_decision = decision
        return decision

    def _decide(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg)[:TEMPLATE_CHARS_MAX])
        now_s = self._clock()
        window = self._windows.get(key)
        if window is None or now_s - window.start_s >= self.interval_s:
            if window is not None and window.suppressed:
                record.msg = f"{record.msg} [suppressed {window.suppressed} similar in the previous {now_s - window.start_s:.0f} s]"
            self._windows[key] = _Window(now_s)
            self._windows.move_to_end(key)
            while len(self._windows) > self.keys_max:
                self._windows.popitem(last=False)
            return True
        if window.passed < self.burst:
            window.passed += 1
            return True
        window.suppressed += 1
        self.suppressed_total += 1
        return False

    def take_summaries(self, everything: bool = False) -> list[str]:
        """One line per kind whose interval is over with records suppressed (all kinds with
        `everything`); their counts start again from zero."""
        now_s = self._clock()
        lines = []
        with self._lock:
            for (name, level, template), window in self._windows.items():
                if window.suppressed and (everything or now_s - window.start_s >= self.interval_s):
                    lines.append(f"{name} {logging.getLevelName(level)} \"{template}\": suppressed {window.suppressed} similar")
                    window.suppressed = 0
        return lines


class OneLineFormatter(logging.Formatter):
    """The message part on one line, at most `line_chars_max` characters; tracebacks whole."""

    def __init__(self, line_chars_max: int, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt)
        self.line_chars_max = line_chars_max

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - the logging API's name
        text = super().formatMessage(record).replace("\r", "\\r").replace("\n", "\\n")
        if len(text) > self.line_chars_max:
            text = text[: self.line_chars_max] + f"... ({len(text) - self.line_chars_max} characters cut)"
        return text


class _Reporter(threading.Thread):
    """Writes the suppression summaries once each interval is over."""

    def __init__(self, limit: RateLimitFilter) -> None:
        super().__init__(name="log-summaries", daemon=True)
        self.limit = limit
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.limit.interval_s):
            self.report()

    def report(self, everything: bool = False) -> None:
        for line in self.limit.take_summaries(everything):
            log.warning("%s", line, extra={"rate_limit_exempt": True})

    def stop(self) -> None:
        self.stopping.set()
        self.report(everything=True)


@dataclass
class LoggingSetup:
    path: Path
    limit: RateLimitFilter
    handlers: list[logging.Handler]
    reporter: _Reporter


_current: list[LoggingSetup] = []
_slot_locks: list = []  # open lock files: held for the life of the process


def worker_slot(service_name: str, data_dir: Path, slots_max: int) -> int:
    """The lowest worker number of `service_name` that no running process holds, taken for the
    life of this process: an exclusive lock on `<data_dir>/logs/<service>-worker-<n>.lock`, which
    the operating system releases when the process ends, however it ends. Where file locks are
    missing (no fcntl), the process id."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        return os.getpid()
    directory = Path(data_dir) / "logs"
    directory.mkdir(parents=True, exist_ok=True)
    for slot in range(slots_max):
        lock_file = (directory / f"{service_name}-worker-{slot}.lock").open("a")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            continue
        _slot_locks.append(lock_file)
        return slot
    raise RuntimeError(f"all {slots_max} worker slots of {service_name} in {directory} are held")


def configure_logging(
    service_name: str,
    data_dir: Path,
    settings: LogSettings | None = None,
    stderr: bool | None = None,
) -> LoggingSetup:
    """Send this process's log records to `<data_dir>/logs/<service_name>.log` (rotating) and,
    when stderr is a terminal, to stderr; replaces an earlier setup of this module."""
    if not SERVICE_NAME.match(service_name):
        raise ValueError(f"service name must be lowercase letters, digits, '-' or '_', got {service_name!r}")
    settings = settings or LogSettings()
    close_logging()
    path = Path(data_dir) / "logs" / f"{service_name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    limit = RateLimitFilter(settings.burst, settings.interval_s, settings.keys_max)
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(path, maxBytes=settings.file_bytes_max, backupCount=settings.files_kept, encoding="utf-8")
    ]
    if stderr if stderr is not None else _stderr_wanted(settings.stderr):
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(OneLineFormatter(settings.line_chars_max))
        handler.addFilter(limit)
        root.addHandler(handler)
    root.setLevel(settings.level.upper())
    logging.captureWarnings(True)
    reporter = _Reporter(limit)
    reporter.start()
    _current.append(LoggingSetup(path, limit, handlers, reporter))
    return _current[-1]


def close_logging() -> None:
    """Undo `configure_logging`: report what was suppressed, remove and close its handlers."""
    while _current:
        setup = _current.pop()
        setup.reporter.stop()
        root = logging.getLogger()
        for handler in setup.handlers:
            root.removeHandler(handler)
            handler.close()


def _stderr_wanted(mode: str) -> bool:
    if mode == "always":
        return True
    if mode == "never":
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


atexit.register(close_logging)
