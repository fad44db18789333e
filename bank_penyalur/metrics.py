"""The bank's Prometheus metrics, served on its API's GET /metrics.

The authorisation writer threads (`batcher.AuthorisationBatcher`) observe each answered
request (operation, response code, seconds from its arrival in the queue to its answer) and
each group-commit batch's size; the queue depth is read at scrape time.

No lock on the writers' path: each writer thread adds to a shard of its own (a plain tally held
in thread-local storage), and a scrape adds the shards up. With several writers (PostgreSQL) no
increment is lost, and no writer ever waits for a scrape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.registry import Collector

from shared.metrics import (
    LATENCY_BUCKETS_S,
    Buckets,
    bounded_rc,
    counter_family,
    exposition,
    gauge_family,
    histogram_family,
    merged,
    new_registry,
)

# Requests per group commit (the writer takes up to `batch_max`, 64 by default).
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class _Shard:
    """One writer thread's tallies."""

    __slots__ = ("answers", "batch_size", "seconds")

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], int] = {}  # (op, rc) -> count
        self.seconds: dict[str, Buckets] = {}  # op -> latency tally
        self.batch_size = Buckets(BATCH_SIZE_BUCKETS)


class BankMetrics(Collector):
    """The bank's authorisation tallies and their collector, in a registry of its own."""

    def __init__(self, queue_depth: Callable[[], int] | None = None) -> None:
        self._queue_depth = queue_depth
        self._local = threading.local()
        self._shards: list[_Shard] = []  # appended once per writer thread (atomic under the GIL)
        self.registry = new_registry()
        self.registry.register(self)

    def _shard(self) -> _Shard:
        shard = getattr(self._local, "shard", None)
        if shard is None:
            shard = self._local.shard = _Shard()
            self._shards.append(shard)
        return shard

    # -- observations (writer threads) -------------------------------------------------------

    def answered(self, op: str, code: str, submitted_s: float) -> None:
        """One authorisation answered `code`; `submitted_s`: its `time.perf_counter()` when queued."""
        shard = self._shard()
        key = (op, bounded_rc(code))
        shard.answers[key] = shard.answers.get(key, 0) + 1
        tally = shard.seconds.get(op)
        if tally is None:
            tally = shard.seconds[op] = Buckets(LATENCY_BUCKETS_S)
        tally.observe(max(0.0, time.perf_counter() - submitted_s))

    def batch(self, size: int) -> None:
        """One group-commit batch of `size` requests taken by a writer."""
        self._shard().batch_size.observe(size)

    # -- scrape (event loop) -------------------------------------------------------------------

    def scrape(self) -> bytes:
        """The text exposition of this bank's metrics."""
        return exposition(self.registry)

    def collect(self) -> Iterator:
        shards = list(self._shards)
        answers: dict[tuple[str, str], int] = {}
        seconds: dict[tuple[str], list[Buckets]] = {}
        for shard in shards:
            for key, count in shard.answers.copy().items():
                answers[key] = answers.get(key, 0) + count
            for op, tally in shard.seconds.copy().items():
                seconds.setdefault((op,), []).append(tally)
        yield counter_family(
            "sembako_bank_authorisations", "Authorisations answered, by operation and response code.", ("op", "rc"), answers
        )
        yield histogram_family(
            "sembako_bank_authorisation_seconds", "Seconds from an authorisation's arrival in the queue to its answer.",
            ("op",), {op: merged(tallies, LATENCY_BUCKETS_S) for op, tallies in seconds.items()},
        )
        yield histogram_family(
            "sembako_bank_batch_size", "Authorisations per group-commit batch.", (),
            {(): merged((s.batch_size for s in shards), BATCH_SIZE_BUCKETS)},
        )
        if self._queue_depth is not None:
            yield gauge_family("sembako_bank_queue_depth", "Authorisations waiting for a writer.", self._queue_depth())
