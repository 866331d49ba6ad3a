"""The ``monitoring:`` section of the hub file (all keys optional)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MonitoringSettings"]


class MonitoringSettings(BaseModel):
    """Metrics, health probes and the ops dashboard (运维监控)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    probe_interval: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="seconds between health probes of a target (skipped while real traffic "
        "shows its state)",
    )
    probe_timeout: float = Field(2.0, gt=0, le=60, description="seconds a probe may take")
    sample_interval: float = Field(
        10.0, gt=0, le=3600, description="seconds between dashboard sparkline samples"
    )
    samples: int = Field(60, ge=2, le=1440, description="sparkline points kept per series")
    queue_age_degraded: float = Field(
        300.0, gt=0, description="a target whose oldest due delivery waits longer is degraded"
    )
    metrics_open: bool = Field(
        False,
        description="serve /metrics without a credential even when security: is configured "
        "(a scraper on a trusted network)",
    )
    dashboard: bool = Field(True, description="serve the ops dashboard at /dashboard")
    default_language: str = Field("zh", pattern="^(zh|en)$", description="zh or en")
