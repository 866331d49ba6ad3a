"""Adapter of the provincial public credit platform (公共信用信息平台 / 信用中国): 双公示
(licences and penalties disclosed within 7 working days, corrections and withdrawals as
versions), red and black lists received and routed to departments, and 联合奖惩 (status queries
before acting, feedback of the measure taken, returned to the platform).

See ``docs/adapters/credit.md``; the configuration is ``examples/platforms/credit/``; the
simulator of the platform is :mod:`adapters.credit.simulator`.
"""

from adapters.credit.contracts import (
    CreditPenaltyRecord,
    JointFeedback,
    LicenceRecord,
    ListEntry,
)
from adapters.credit.disclosure import disclosure_deadline, lateness
from adapters.credit.errors import CreditRejected
from adapters.credit.transport import CreditOptions, CreditTransport, RegistryTransport

__all__ = [
    "CreditOptions",
    "CreditPenaltyRecord",
    "CreditRejected",
    "CreditTransport",
    "JointFeedback",
    "LicenceRecord",
    "ListEntry",
    "RegistryTransport",
    "disclosure_deadline",
    "lateness",
]
