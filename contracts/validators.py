"""Check-character and format validators for Chinese identifiers, and the pydantic types
built on them.

The plain functions (``is_valid_uscc`` …) are pure and cheap: they run once per record at
tens of thousands of records per second, so every table is computed at import time and the
weighted sums run as one C-level ``map`` over per-position lookup tables.

Identifiers covered:

* 统一社会信用代码 (USCC, GB 32100-2015) — 18 characters; positions 9–17 are the 主体标识码,
  a GB 11714 organisation code with its own mod-11 check character; position 18 is the
  mod-31 check character over positions 1–17.
* 公民身份号码 (GB 11643-1999) — 18 characters with an ISO 7064 mod-11 check character.
* 行政区划代码 (GB/T 2260) — 6 digits, or the 12-digit statistical code.

USCC strictness
---------------
Some legal codes from early pilot regions fail the check characters (e.g.
``91350100M0001TGQXM``), so datasets may choose to accept them. The annotated types read the
pydantic *validation context*::

    warnings: list[dict[str, str]] = []
    Model.model_validate(data, context={"uscc_strict": False, "warnings": warnings})

With ``uscc_strict`` set to ``False`` a wrong check character (final or organisation-code) is
accepted and, when the context holds a ``"warnings"`` list, a dict with ``type``, ``field``,
``input`` and ``msg`` is appended to it. Format errors (length, alphabet, non-digit region)
are always rejected. Without a context, or with ``uscc_strict`` missing or true, a wrong check
character is a validation error.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from operator import getitem
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, ValidationInfo
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "CATALOG_CODE_PATTERN",
    "CHINA_TZ",
    "IMPLEMENTATION_CODE_PATTERN",
    "PROVINCE_CODES",
    "USCC",
    "USCC_ALPHABET",
    "ChinaDatetime",
    "IdCardNumber",
    "RegionCode",
    "check_id_card_value",
    "check_uscc_value",
    "id_card_check_char",
    "id_card_error",
    "is_valid_id_card",
    "is_valid_org_code",
    "is_valid_region_code",
    "is_valid_region_code_12",
    "is_valid_uscc",
    "org_code_check_char",
    "region_level",
    "uscc_check_char",
    "uscc_error",
]

# --------------------------------------------------------------------------- tables

#: GB 32100 code alphabet: digits and capital letters without I, O, S, V, Z; values 0–30.
USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES: Final = {c: v for v, c in enumerate(USCC_ALPHABET)}
# Position i (0-based) has weight 3^i mod 31; one lookup table per position maps a character
# straight to value × weight, so the weighted sum is ``sum(map(getitem, tables, code))``.
_USCC_TABLES: Final = tuple(
    {c: v * pow(3, i, 31) for c, v in _USCC_VALUES.items()} for i in range(17)
)

# GB 11714 organisation code: 8 body characters (digits, A–Z valued 10–35) and a check
# character 11 − (Σ mod 11), where 10 → X and 11 → 0.
_ORG_VALUES: Final = {c: v for v, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_ORG_TABLES: Final = tuple(
    {c: v * w for c, v in _ORG_VALUES.items()} for w in (3, 7, 9, 10, 5, 8, 4, 2)
)
# Indexed by (−Σ) mod 11, which equals 11 − (Σ mod 11) except that 11 becomes 0.
_ORG_CHECK: Final = "0123456789X"

# Fast paths for well-formed codes (the common case): a weighted sum Σ vᵢ·wᵢ mod m whose
# weights are the powers of some q mod m is the value of the digit string in a base b ≡ q
# (mod m), which ``int(text, b)`` computes in C. The fast paths run only after a full-match
# of the alphabet (``int`` would also accept signs, underscores, spaces and lower case); any
# malformed code takes the per-position tables above, which name the first problem.
#: Each byte of the GB 32100 alphabet to its value as a base-34 digit, every other byte to
#: ``!`` (which ``int`` refuses). Weight 3^i (position i from the left) = 34^i mod 31, so the
#: first 17 characters are read right to left.
_USCC_TO_BASE34: Final = bytes.maketrans(
    USCC_ALPHABET.encode() + bytes(c for c in range(256) if chr(c) not in USCC_ALPHABET),
    b"0123456789ABCDEFGHIJKLMNOPQRSTU" + b"!" * (256 - len(USCC_ALPHABET)),
)

# GB 11643: weights 2^(17−i) mod 11, check character indexed by Σ mod 11.
_ID_TABLES: Final = tuple(
    {str(d): d * w for d in range(10)}
    for w in (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
)
_ID_CHECK: Final = "10X98765432"
_ID_EARLIEST_BIRTH: Final = date(1850, 1, 1)

#: GB/T 2260 province-level codes (first two digits of a 行政区划代码).
PROVINCE_CODES: Final = frozenset(
    f"{n}"
    for n in (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
    )
)
# 港澳台居民居住证 numbers follow GB 11643 with 810000 / 820000 / 830000 as the region.
_ID_PROVINCES: Final = PROVINCE_CODES | {"83"}

#: China Standard Time (UTC+08:00), assumed for datetimes that arrive without an offset.
CHINA_TZ: Final = timezone(timedelta(hours=8), "CST")

#: 监管事项目录编码: 14 digits. (Patterns use ``[0-9]``: the Rust regex engine that pydantic
#: runs them in treats ``\d`` as any Unicode digit.)
CATALOG_CODE_PATTERN: Final = r"^[0-9]{14}$"
#: 检查实施清单编码: the implementing body's USCC, a digit 1–5, then a 1–10 digit sequence.
IMPLEMENTATION_CODE_PATTERN: Final = r"^[0-9A-HJ-NPQRTUWXY]{18}[1-5][0-9]{1,10}$"

# An identifier problem: (error type, message template, template values).
_Problem = tuple[str, str, dict[str, Any]]

# Check-character failures that ``uscc_strict: False`` downgrades to warnings.
_USCC_SOFT: Final = frozenset({"uscc_check", "uscc_org_check"})


def _digits(s: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts e.g. '²' and Arabic-Indic digits)."""
    return s.isascii() and s.isdigit()


# --------------------------------------------------------------------------- USCC


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character (position 18) for the first 17 characters of a USCC.

    Raises ``ValueError`` if ``first17`` is not 17 characters of the code alphabet.
    """
    if len(first17) != 17:
        raise ValueError(f"expected 17 characters, got {len(first17)}")
    try:
        total = sum(map(getitem, _USCC_TABLES, first17))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the GB 32100 alphabet") from None
    return USCC_ALPHABET[-total % 31]


def org_code_check_char(first8: str) -> str:
    """The GB 11714 check character for the 8-character body of an organisation code
    (USCC positions 9–16). Raises ``ValueError`` on a wrong length or character."""
    if len(first8) != 8:
        raise ValueError(f"expected 8 characters, got {len(first8)}")
    try:
        total = sum(map(getitem, _ORG_TABLES, first8))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not allowed in a GB 11714 code") from None
    return _ORG_CHECK[-total % 11]


def is_valid_org_code(code: str) -> bool:
    """True if ``code`` is a 9-character GB 11714 organisation code (组织机构代码, without the
    hyphen) whose last character is its check character."""
    if len(code) != 9:
        return False
    try:
        return org_code_check_char(code[:8]) == code[8]
    except ValueError:
        return False


#: Valid USCCs seen lately. A department's own codes recur in every record it sends (e.g. the
#: 检查实施清单编码 starts with the implementing body's USCC), while the counterparts' codes are
#: mostly new: a set that is emptied when full costs a new code less than an LRU cache's
#: bookkeeping, and a recurring code is back in it after one record.
_USCC_VALID: set[str] = set()
_USCC_VALID_MAX: Final = 16384  # as many as the LRU cache it replaced held


def _uscc_problem(code: str) -> _Problem | None:
    """The first problem of a USCC, or ``None`` (a pure function of the code)."""
    if code in _USCC_VALID:
        return None
    problem = _uscc_problem_uncached(code)
    if problem is None:
        if len(_USCC_VALID) >= _USCC_VALID_MAX:
            _USCC_VALID.clear()
        _USCC_VALID.add(code)
    return problem


def _uscc_problem_uncached(code: str) -> _Problem | None:
    """A code of the right shape (18 characters of the alphabet, a digit region) has only its two
    check characters left to judge; those are computed in C (see ``_USCC_TO_BASE34``).
    Anything else goes through :func:`_uscc_problem_slow`, which finds the first problem."""
    if len(code) != 18 or not code.isascii():
        return _uscc_problem_slow(code)
    raw = code.encode("ascii")
    digits = raw.translate(_USCC_TO_BASE34)
    if digits[17] == 0x21 or not raw[2:8].isdigit():  # "!": not in the alphabet
        return _uscc_problem_slow(code)
    try:
        # Σ vᵢ·3^i mod 31 over positions 1–17: the base-34 value of the reversed digits.
        total = int(digits[16::-1], 34)
    except ValueError:  # a character outside the alphabet
        return _uscc_problem_slow(code)
    expected = USCC_ALPHABET[-total % 31]
    last = code[17]
    if last != expected:
        return (
            "uscc_check",
            "统一社会信用代码 check character should be '{expected}', got '{actual}'",
            {"expected": expected, "actual": last},
        )
    # GB 11714 weights 3, 7, 9, 10, 5, 8, 4, 2 are 2^8 … 2^1 mod 11, and 35 ≡ 2 (mod 11): the
    # body's base-35 value times 2 (the alphabet has no Z, so every character is a base-35 digit
    # with its GB 11714 value).
    org_expected = _ORG_CHECK[-2 * int(raw[8:16], 35) % 11]
    if code[16] != org_expected:
        return (
            "uscc_org_check",
            "统一社会信用代码 organisation code (positions 9–17) check character should be "
            "'{expected}', got '{actual}'",
            {"expected": org_expected, "actual": code[16]},
        )
    return None


def _uscc_problem_slow(code: str) -> _Problem | None:
    """The first problem of a USCC, position by position (the reference the fast path of
    :func:`_uscc_problem_uncached` agrees with; tested)."""
    if len(code) != 18:
        return (
            "uscc_length",
            "统一社会信用代码 must be 18 characters, got {length}",
            {"length": len(code)},
        )
    try:
        total = sum(map(getitem, _USCC_TABLES, code))  # the 17 tables stop at position 17
    except KeyError as exc:
        char = exc.args[0]
        return _uscc_char_problem(char, code.index(char) + 1)
    last = code[17]
    if last not in _USCC_VALUES:
        return _uscc_char_problem(last, 18)
    if not _digits(code[2:8]):
        return (
            "uscc_region",
            "统一社会信用代码 positions 3–8 (region of the registering authority) must be "
            "digits, got '{region}'",
            {"region": code[2:8]},
        )
    expected = USCC_ALPHABET[-total % 31]
    if last != expected:
        return (
            "uscc_check",
            "统一社会信用代码 check character should be '{expected}', got '{actual}'",
            {"expected": expected, "actual": last},
        )
    org_expected = _ORG_CHECK[-sum(map(getitem, _ORG_TABLES, code[8:16])) % 11]
    if code[16] != org_expected:
        return (
            "uscc_org_check",
            "统一社会信用代码 organisation code (positions 9–17) check character should be "
            "'{expected}', got '{actual}'",
            {"expected": org_expected, "actual": code[16]},
        )
    return None


def _uscc_char_problem(char: str, position: int) -> _Problem:
    return (
        "uscc_char",
        "统一社会信用代码 character '{char}' at position {position} is not allowed "
        "(digits and capital letters except I, O, S, V, Z)",
        {"char": char, "position": position},
    )


def is_valid_uscc(code: str) -> bool:
    """True if ``code`` is a well-formed USCC with correct check characters: the GB 32100
    check character (position 18) and the GB 11714 organisation-code check character
    (position 17). Case-sensitive: the canonical form is upper case."""
    return _uscc_problem(code) is None


def uscc_error(code: str) -> str | None:
    """``None`` if ``code`` is a valid USCC, else a readable explanation of the first
    problem found."""
    problem = _uscc_problem(code)
    return None if problem is None else _render(problem)


# --------------------------------------------------------------------------- ID card


def id_card_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of a 公民身份号码.

    Raises ``ValueError`` if ``first17`` is not 17 ASCII digits.
    """
    if len(first17) != 17:
        raise ValueError(f"expected 17 digits, got {len(first17)} characters")
    try:
        return _ID_CHECK[sum(map(getitem, _ID_TABLES, first17)) % 11]
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not a digit") from None


# Birth dates up to this day (as yyyymmdd) are certainly not in the future: it trails the day
# ``date.today()`` last returned by two days, so a clock that moved on (or back by less than a
# day) since then cannot change the answer; later dates ask ``date.today()`` again.
_past_until = (0, -1.0)  # (yyyymmdd, when it was computed, time.time())
_MONTH_DAYS: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _surely_past(born: int) -> bool:
    """True when the birth date ``born`` (yyyymmdd) is at least two days before today."""
    global _past_until
    until, at = _past_until
    now = time.time()
    if not 0.0 <= now - at < 3600.0:
        d = date.today() - timedelta(days=2)
        until, at = d.year * 10000 + d.month * 100 + d.day, now
        _past_until = (until, at)
    return born <= until


def _id_card_problem(num: str) -> _Problem | None:
    """The first problem of a 公民身份号码. Well-formed numbers (17 ASCII digits, a known
    province, a real past birth date) take a fast path computed in C; every other number goes
    through :func:`_id_card_problem_slow`, which finds the first problem."""
    first17 = num[:17]
    if len(num) != 18 or not (first17.isascii() and first17.isdigit()):
        return _id_card_problem_slow(num)
    if num[:2] not in _ID_PROVINCES:
        return _id_card_problem_slow(num)
    born = int(num[6:14])
    year, month, day = born // 10000, born // 100 % 100, born % 100
    if not 1 <= month <= 12 or born < 18500101 or not _surely_past(born):
        return _id_card_problem_slow(num)
    leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _MONTH_DAYS[month] + leap:
        return _id_card_problem_slow(num)
    # GB 11643 weights are 2^17 … 2^1 mod 11, and 13 ≡ 2 (mod 11): twice the base-13 value.
    expected = _ID_CHECK[2 * int(first17, 13) % 11]
    if num[17] != expected:
        return (
            "id_card_check",
            "公民身份号码 check character should be '{expected}', got '{actual}'",
            {"expected": expected, "actual": num[17]},
        )
    return None


def _id_card_problem_slow(num: str) -> _Problem | None:
    """The first problem of a 公民身份号码, step by step (the reference the fast path of
    :func:`_id_card_problem` agrees with; tested)."""
    if len(num) != 18:
        return (
            "id_card_length",
            "公民身份号码 must be 18 characters, got {length}",
            {"length": len(num)},
        )
    try:
        total = sum(map(getitem, _ID_TABLES, num))
    except KeyError as exc:
        return (
            "id_card_char",
            "公民身份号码 positions 1–17 must be digits, got '{char}' at position {position}",
            {"char": exc.args[0], "position": num.index(exc.args[0]) + 1},
        )
    if num[:2] not in _ID_PROVINCES:
        return (
            "id_card_region",
            "公民身份号码 region '{region}' has an unknown province code",
            {"region": num[:6]},
        )
    born = num[6:14]
    try:
        birth = date(int(born[:4]), int(born[4:6]), int(born[6:]))
    except ValueError:
        birth = None
    if birth is None or birth < _ID_EARLIEST_BIRTH:
        return (
            "id_card_birth_date",
            "公民身份号码 birth date '{birth_date}' is not a real date",
            {"birth_date": born},
        )
    if birth > date.today():
        return (
            "id_card_birth_date",
            "公民身份号码 birth date '{birth_date}' is in the future",
            {"birth_date": born},
        )
    expected = _ID_CHECK[total % 11]
    if num[17] != expected:
        return (
            "id_card_check",
            "公民身份号码 check character should be '{expected}', got '{actual}'",
            {"expected": expected, "actual": num[17]},
        )
    return None


def is_valid_id_card(num: str) -> bool:
    """True if ``num`` is an 18-character 公民身份号码 with a known province, a real birth date
    not in the future, and a correct check character (upper-case ``X``)."""
    return _id_card_problem(num) is None


def id_card_error(num: str) -> str | None:
    """``None`` if ``num`` is a valid 公民身份号码, else a readable explanation."""
    problem = _id_card_problem(num)
    return None if problem is None else _render(problem)


# --------------------------------------------------------------------------- region codes


def is_valid_region_code(code: str) -> bool:
    """True if ``code`` is a 6-digit GB/T 2260 行政区划代码 with a real province part."""
    return len(code) == 6 and _digits(code) and code[:2] in PROVINCE_CODES


def is_valid_region_code_12(code: str) -> bool:
    """True if ``code`` is a 12-digit statistical division code: a valid 6-digit GB/T 2260
    code followed by a 3-digit township and a 3-digit village part."""
    return len(code) == 12 and _digits(code) and code[:2] in PROVINCE_CODES


def region_level(code: str) -> Literal["province", "prefecture", "county"]:
    """The level of a 6-digit 行政区划代码: ``dd0000`` province, ``dddd00`` prefecture,
    anything else county. Raises ``ValueError`` for an invalid code."""
    if not is_valid_region_code(code):
        raise ValueError(f"not a valid 行政区划代码: {code!r}")
    if code[2:] == "0000":
        return "province"
    if code[4:] == "00":
        return "prefecture"
    return "county"


# --------------------------------------------------------------------------- pydantic types


def _render(problem: _Problem) -> str:
    return PydanticCustomError(*problem).message()


def _uscc_strict(info: ValidationInfo) -> bool:
    context = info.context
    return not (isinstance(context, dict) and context.get("uscc_strict", True) is False)


def check_uscc_value(code: str, info: ValidationInfo, *, what: str = "") -> str:
    """Validate a USCC inside a pydantic validator, honouring ``uscc_strict`` in the
    validation context. ``what`` prefixes the message (e.g. ``"检查实施清单编码: "``)."""
    problem = _uscc_problem(code)
    if problem is None:
        return code
    kind, template, values = problem
    if kind in _USCC_SOFT and not _uscc_strict(info):
        warnings = info.context.get("warnings") if isinstance(info.context, dict) else None
        if isinstance(warnings, list):
            warnings.append(
                {
                    "type": kind,
                    "field": info.field_name or "",
                    "input": code,
                    "msg": what + _render(problem),
                }
            )
        return code
    raise PydanticCustomError(kind, what + template, dict(values))  # the cached dict stays ours


def _validate_uscc(value: str, info: ValidationInfo) -> str:
    return check_uscc_value(value.upper(), info)


def check_id_card_value(num: str) -> str:
    """Validate a 公民身份号码 inside a pydantic validator (raises ``PydanticCustomError``)."""
    problem = _id_card_problem(num)
    if problem is None:
        return num
    raise PydanticCustomError(*problem)


def _validate_id_card(value: str) -> str:
    return check_id_card_value(value.upper())


def _validate_region_code(value: str) -> str:
    if len(value) != 6 or not (value.isascii() and value.isdigit()):  # _digits, inlined
        raise PydanticCustomError(
            "region_code_format",
            "行政区划代码 must be 6 digits, got '{code}'",
            {"code": value},
        )
    if value[:2] not in PROVINCE_CODES:
        raise PydanticCustomError(
            "region_code_province",
            "行政区划代码 '{code}' has an unknown province code '{province}'",
            {"code": value, "province": value[:2]},
        )
    return value


def _assume_china_tz(value: datetime) -> datetime:
    return value.replace(tzinfo=CHINA_TZ) if value.tzinfo is None else value


#: 统一社会信用代码 (GB 32100). Lower case is normalised to upper case; check characters are
#: enforced unless the validation context says ``{"uscc_strict": False}``.
USCC = Annotated[
    str,
    AfterValidator(_validate_uscc),
    WithJsonSchema(
        {"type": "string", "pattern": "^[0-9A-HJ-NPQRTUWXY]{18}$", "minLength": 18, "maxLength": 18}
    ),
]

#: 公民身份号码 (GB 11643); a lower-case ``x`` is normalised to ``X``.
IdCardNumber = Annotated[
    str,
    AfterValidator(_validate_id_card),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{17}[0-9X]$"}),
]

#: 6-digit 行政区划代码 (GB/T 2260) with a real province part.
RegionCode = Annotated[
    str,
    AfterValidator(_validate_region_code),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{6}$"}),
]

#: A datetime; one without an offset is taken as China Standard Time (UTC+08:00), so every
#: validated value is timezone-aware and values from different senders compare safely.
ChinaDatetime = Annotated[datetime, AfterValidator(_assume_china_tz)]
