"""Helpers of the monitoring tests: find a hub's monitor, read /metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from hub.runtime import Hub
from monitoring.monitor import Monitor


def monitor_of(hub: Hub) -> Monitor:
    """The per-hub monitor the monitoring plugin registered into the hub's plugin manager."""
    found = [p for p in hub.pm.get_plugins() if isinstance(p, Monitor)]
    assert len(found) == 1, found
    return found[0]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition: (name, sorted labels) -> value."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def value(got: dict[Any, float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent, as Prometheus reads a missing counter)."""
    return got.get((name, tuple(sorted(labels.items()))), 0.0)
