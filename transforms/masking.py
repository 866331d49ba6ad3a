"""Masking (脱敏) and salted hashing of personal fields, used by mapping rules.

Masks keep a fixed number of leading and trailing characters and replace the rest with ``*``:
公民身份号码 (ID number) keeps the first 6 (region) and last 4, a mobile phone number the first 3
and last 4, a person's name its surname (compound surnames such as 欧阳 keep both characters).
A value too short to keep anything is masked completely, so a mask never reveals more than
the rule says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

__all__ = [
    "COMPOUND_SURNAMES",
    "MASKS",
    "keep_ends",
    "mask_id_card",
    "mask_name",
    "mask_phone",
    "salted_sha256",
]

# 复姓: the common two-character surnames; a name starting with one keeps both characters.
_COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "轩辕",
        "令狐",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "百里",
        "呼延",
        "澹台",
        "公冶",
        "太史",
        "申屠",
        "闻人",
        "万俟",
        "单于",
        "赫连",
        "钟离",
        "宗政",
        "濮阳",
        "淳于",
    }
)
#: the common two-character surnames (复姓), public for the security package's masking
COMPOUND_SURNAMES = _COMPOUND_SURNAMES


def keep_ends(value: str, first: int, last: int, char: str = "*") -> str:
    """Keep ``first`` leading and ``last`` trailing characters, mask the rest; a value of at
    most ``first + last`` characters is masked completely."""
    n = len(value)
    if n <= first + last:
        return char * n
    return value[:first] + char * (n - first - last) + (value[n - last :] if last else "")


def mask_id_card(value: str) -> str:
    """公民身份号码: ``330102199001011234`` → ``330102********1234``."""
    return keep_ends(value, 6, 4)


def mask_phone(value: str) -> str:
    """Phone number: ``13812345678`` → ``138****5678``."""
    return keep_ends(value, 3, 4)


def mask_name(value: str) -> str:
    """Person's name: keep the surname, ``王小明`` → ``王**``, ``欧阳娜娜`` → ``欧阳**``."""
    keep = 2 if value[:2] in _COMPOUND_SURNAMES and len(value) > 2 else 1
    if len(value) <= 1:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - keep)


#: Named masks usable as ``mask: <name>`` in a mapping rule.
MASKS: dict[str, Callable[[str], str]] = {
    "id_card": mask_id_card,
    "phone": mask_phone,
    "name": mask_name,
}


def salted_sha256(value: str, salt: bytes) -> str:
    """Lower-case hex SHA-256 of ``salt`` followed by the UTF-8 bytes of ``value``.

    The same value with the same salt always gives the same digest (records stay joinable);
    without the salt an ID number cannot be found by hashing every possible number.
    """
    return hashlib.sha256(salt + value.encode("utf-8")).hexdigest()
