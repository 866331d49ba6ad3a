"""Code tables (代码表) of the credit datasets.

相对人类别 and 证件类型 are jghub's canonical tables (:class:`contracts.codes.CounterpartNature`,
:class:`contracts.codes.CertificateType`); the credit platform's own numbering of 证件类型
(01 身份证 … 05 外国人永久居留身份证) is reached by the mapping of the credit system file.
The tables here are the ones only 双公示 and 联合奖惩 need.
"""

from __future__ import annotations

from contracts.codes import CodeTable

__all__ = [
    "DisclosureChange",
    "LicenceCategory",
    "LicenceStatus",
    "ListAction",
    "ListType",
    "MeasureKind",
    "PenaltyCategory",
]


class LicenceCategory(CodeTable):
    """许可类别: 01 普通, 02 特许, 03 认可, 04 核准, 05 登记, 06 其他."""

    ORDINARY = "01", "普通"
    FRANCHISE = "02", "特许"
    RECOGNITION = "03", "认可"
    APPROVAL = "04", "核准"
    REGISTRATION = "05", "登记"
    OTHER = "06", "其他"


class PenaltyCategory(CodeTable):
    """处罚类别 (《行政处罚法》 第九条 as the 2021 双公示 template lists them). A penalty names
    one or more of them by label, joined with ``;`` (``警告;罚款``), as the template does."""

    WARNING = "01", "警告"
    CRITICISM = "02", "通报批评"
    FINE = "03", "罚款"
    CONFISCATE_GAINS = "04", "没收违法所得"
    CONFISCATE_PROPERTY = "05", "没收非法财物"
    SUSPEND_LICENCE = "06", "暂扣许可证件"
    DOWNGRADE = "07", "降低资质等级"
    REVOKE_LICENCE = "08", "吊销许可证件"
    RESTRICT_BUSINESS = "09", "限制开展生产经营活动"
    SUSPEND_BUSINESS = "10", "责令停产停业"
    CLOSE = "11", "责令关闭"
    RESTRICT_PRACTICE = "12", "限制从业"
    DETENTION = "13", "行政拘留"
    OTHER = "99", "其他"


class LicenceStatus(CodeTable):
    """当前状态 of a licence: 1 有效, 2 无效 (撤销/注销/吊销), 3 已过期."""

    VALID = "1", "有效"
    INVALID = "2", "无效"
    EXPIRED = "3", "已过期"


class DisclosureChange(CodeTable):
    """What a 双公示 record version does: 1 新增 (first disclosure), 2 更正 (correction),
    3 撤销 (withdrawal: the decision was revoked and the disclosure is taken down)."""

    CREATE = "1", "新增"
    CORRECT = "2", "更正"
    WITHDRAW = "3", "撤销"


class ListType(CodeTable):
    """名单类型 of a credit list entry (联合奖惩): 守信激励 (red list), 失信惩戒 (black list),
    严重违法失信名单, 经营异常名录."""

    RED = "01", "守信激励对象名单(红名单)"
    BLACK = "02", "失信惩戒对象名单(黑名单)"
    SERIOUS = "03", "严重违法失信名单"
    ABNORMAL = "04", "经营异常名录"

    @property
    def rewarding(self) -> bool:
        """True for the red list (激励), False for the punishing lists (惩戒)."""
        return self is ListType.RED


class ListAction(CodeTable):
    """What a list entry version says: 1 列入 (listed), 2 移出 (removed / 信用修复)."""

    LISTED = "1", "列入"
    REMOVED = "2", "移出"


class MeasureKind(CodeTable):
    """Kind of a measure a department took on a listed subject (联合奖惩措施): 1 激励, 2 惩戒."""

    REWARD = "1", "激励"
    PUNISHMENT = "2", "惩戒"
