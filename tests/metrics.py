"""Reading a Prometheus text exposition in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(exposition: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a text exposition: (sample name, its labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return found.get((name, frozenset(labels.items())), 0.0)
