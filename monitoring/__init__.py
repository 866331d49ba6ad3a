"""Monitoring (运维监控): Prometheus metrics on a registry per hub, target and adapter health,
``/readyz`` checks, JSON delivery logs and the ops dashboard. The plugin is
:mod:`monitoring.plugin`; see ``docs/monitoring.md``."""

__all__: list[str] = []
