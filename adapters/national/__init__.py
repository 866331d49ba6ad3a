"""Connector to the national 互联网+监管 system (与国家系统对接): pushes the catalog
(监管事项目录清单) as ordered, versioned updates; reports 监管行为 (inspections, penalties,
coordinated supervision) in batches with per-record receipts; receives warnings, clues and
tasks (pulled on a schedule and pushed to us) and sends feedback; reconciles daily (对账).

See ``docs/national.md``. The simulator of the national side is
:mod:`adapters.national.simulator`.
"""

from adapters.national.connector import (
    NationalAdapterOptions,
    NationalConnector,
    ReconcileReport,
)
from adapters.national.errors import NationalRejected, ReconcileError, VersionConflict
from adapters.national.transport import NationalOptions, NationalTransport

__all__ = [
    "NationalAdapterOptions",
    "NationalConnector",
    "NationalOptions",
    "NationalRejected",
    "NationalTransport",
    "ReconcileError",
    "ReconcileReport",
    "VersionConflict",
]
