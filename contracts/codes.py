"""jghub's canonical code tables (代码表).

Each table is a ``StrEnum`` whose *value* is the code that travels in records and whose
``label`` is the Chinese name. These tables are jghub's own canonical vocabulary: where a
provincial or national system uses other codes, an adapter's mapping translates them; the
contracts never accept a second spelling.

Where a widely used public numbering exists it is reused (证件类型 follows the public-security
numbering 111 居民身份证, 414 普通护照 …, plus 001 for the 统一社会信用代码); the other tables
are short, stable and documented here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

__all__ = [
    "CertificateType",
    "ChangeType",
    "CodeTable",
    "CounterpartNature",
    "InspectionCategory",
    "InspectionForm",
    "InspectionResult",
    "SupervisionLevel",
]


class CodeTable(StrEnum):
    """Base of the code tables: ``member.value`` is the code, ``member.label`` the Chinese
    name. ``Table("1")`` looks a member up by code."""

    label: str

    # ``label`` has a default only so that the by-value lookup ``Table(code)`` type-checks;
    # Enum routes that call to the lookup, never to ``__new__``.
    def __new__(cls, code: str, label: str = "") -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.label = label
        return member

    @classmethod
    def labels(cls) -> dict[str, str]:
        """The table as ``{code: label}``, in declaration order."""
        return {member.value: member.label for member in cls}


class CertificateType(CodeTable):
    """证件类型 (certificate type of the 行政相对人). 001 统一社会信用代码, 111 居民身份证,
    414 普通护照, 511 台湾居民来往大陆通行证, 516 港澳居民来往内地通行证, 553 外国人永久居留身份证,
    999 其他."""

    USCC = "001", "统一社会信用代码"
    RESIDENT_ID_CARD = "111", "居民身份证"
    PASSPORT = "414", "普通护照"
    TAIWAN_PERMIT = "511", "台湾居民来往大陆通行证"
    HK_MACAO_PERMIT = "516", "港澳居民来往内地通行证"
    FOREIGN_PERMANENT_RESIDENCE = "553", "外国人永久居留身份证"
    OTHER = "999", "其他"


class CounterpartNature(CodeTable):
    """相对人性质 (nature of the 行政相对人). 1 法人及非法人组织, 2 自然人, 3 个体工商户."""

    ORGANISATION = "1", "法人及非法人组织"
    NATURAL_PERSON = "2", "自然人"
    INDIVIDUAL_BUSINESS = "3", "个体工商户"


class InspectionForm(CodeTable):
    """检查形式 (form of inspection). 1 现场检查, 2 书面检查, 3 网络(远程)检查, 9 其他."""

    ON_SITE = "1", "现场检查"
    DOCUMENTARY = "2", "书面检查"
    REMOTE = "3", "网络(远程)检查"
    OTHER = "9", "其他"


class InspectionCategory(CodeTable):
    """检查类别 (category of inspection). 1 日常检查, 2 专项检查, 3 双随机抽查, 4 重点检查,
    5 投诉举报核查, 9 其他."""

    ROUTINE = "1", "日常检查"
    SPECIAL = "2", "专项检查"
    RANDOM = "3", "双随机抽查"
    KEY = "4", "重点检查"
    COMPLAINT = "5", "投诉举报核查"
    OTHER = "9", "其他"


class InspectionResult(CodeTable):
    """检查结果 (inspection result). 1 未发现问题, 2 发现问题已责令整改, 3 发现问题已立案查处,
    4 检查对象不存在/无法联系, 5 其他."""

    NO_PROBLEM = "1", "未发现问题"
    ORDERED_TO_RECTIFY = "2", "发现问题已责令整改"
    CASE_OPENED = "3", "发现问题已立案查处"
    NOT_FOUND = "4", "检查对象不存在/无法联系"
    OTHER = "5", "其他"


class SupervisionLevel(CodeTable):
    """监管层级 (level of government that supervises). 1 国家, 2 省, 3 市, 4 县, 5 乡."""

    NATIONAL = "1", "国家"
    PROVINCE = "2", "省"
    CITY = "3", "市"
    COUNTY = "4", "县"
    TOWNSHIP = "5", "乡"


class ChangeType(CodeTable):
    """变更类型 of a catalog item version: create 新增, change 变更, revoke 废止."""

    CREATE = "create", "新增"
    CHANGE = "change", "变更"
    REVOKE = "revoke", "废止"
