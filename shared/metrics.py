"""Prometheus metrics without locks on the hot path: plain tallies, turned into metric families
only when /metrics is scraped.

prometheus_client's own Counter and Histogram take a lock on every observation; the switch's
event loop and the bank's authorisation writers must not pay that per message. So the hot paths
add to plain integers (`Buckets`, dicts of counts) and a custom collector builds the families at
scrape time; the registry and the text exposition are still prometheus_client's. Every
application owns its `CollectorRegistry` (never the global default one), so that several
applications in one process (the tests run several) do not collide.

Labels are bounded: response codes outside the known table are reported as "other", so a peer
sending odd codes cannot grow the label set without bound. No label ever carries card data.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.utils import floatToGoString

from shared import rc

__all__ = [
    "CONTENT_TYPE_LATEST",
    "Buckets",
    "bounded_rc",
    "counter_family",
    "exposition",
    "gauge_family",
    "histogram_family",
    "new_registry",
]

# Seconds of a request or a bank call: 1 ms to 10 s (above the switch's bank timeout).
LATENCY_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OTHER_RC = "other"
_KNOWN_RCS = frozenset(rc.ALL_CODES)


class Buckets:
    """One histogram's tally: a count per bucket (the last one above every bound) and the sum.
    `observe` is two additions and a bisect: no lock, no allocation."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        assert list(bounds) == sorted(set(bounds)), "bucket bounds must be increasing"
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le semantics: value <= bound
        self.sum += value

    def add(self, other: Buckets) -> None:
        """Add another tally with the same bounds (merging per-thread shards)."""
        for index, count in enumerate(list(other.counts)):
            self.counts[index] += count
        self.sum += other.sum

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs, ending with +Inf, as Prometheus exposes them."""
        counts, total, pairs = list(self.counts), 0, []
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            total += count
            pairs.append((floatToGoString(bound), total))
        return pairs


def bounded_rc(code: str | None) -> str:
    """A response code fit for a label: a known code as-is, anything else "other"."""
    return code if code in _KNOWN_RCS else OTHER_RC


def new_registry() -> CollectorRegistry:
    """A registry of one application's own (never prometheus_client's global REGISTRY)."""
    return CollectorRegistry(auto_describe=False)


def counter_family(name: str, documentation: str, labels: tuple[str, ...], counts: Mapping[tuple, int]) -> CounterMetricFamily:
    """A counter family (`name` without `_total`) with one sample per label tuple of `counts`."""
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    for values, count in sorted(dict(counts).items()):
        family.add_metric(list(values), count)
    return family


def histogram_family(
    name: str, documentation: str, labels: tuple[str, ...], tallies: Mapping[tuple, Buckets]
) -> HistogramMetricFamily:
    """A histogram family with one series per label tuple of `tallies`."""
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for values, tally in sorted(dict(tallies).items()):
        family.add_metric(list(values), tally.cumulative(), tally.sum)
    return family


def gauge_family(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (serve it as CONTENT_TYPE_LATEST)."""
    return generate_latest(registry)


def merged(shards: Iterable[Buckets], bounds: tuple[float, ...]) -> Buckets:
    """One tally adding up `shards` (all with `bounds`)."""
    total = Buckets(bounds)
    for shard in shards:
        total.add(shard)
    return total
