"""Date and datetime parsing shared by mappings and cleaning steps.

Formats are written the way department engineers know them (Java/ICU style letters):
``yyyy`` year, ``MM``/``M`` month, ``dd``/``d`` day, ``HH``/``H`` hour (0-23), ``mm`` minute,
``ss`` second, ``SSS`` milliseconds; text in single quotes is literal (``yyyy-MM-dd'T'HH:mm``);
any other character that is not a letter is literal. Three special names: ``iso`` (ISO 8601 as
Python's ``datetime.fromisoformat`` reads it, offsets included), ``epoch_millis`` and
``epoch_seconds`` (numbers or digit strings).

A format is compiled once into an anchored regular expression; a value is tried against the
formats in order and the first that matches *and* is a real calendar date wins.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "DEFAULT_FORMATS",
    "DateFormatError",
    "compile_date_matchers",
    "compile_date_parser",
    "iso_date",
    "iso_datetime",
    "parse_tz",
]

#: Tried in this order when a rule or cleaning step names no formats. Epoch numbers are never
#: guessed (``20240301`` could be either): name ``epoch_millis`` / ``epoch_seconds`` explicitly.
DEFAULT_FORMATS: tuple[str, ...] = (
    "yyyy-MM-dd HH:mm:ss",
    "yyyy-MM-dd",
    "yyyyMMdd",
    "yyyy/MM/dd",
    "yyyy年M月d日",
    "yyyyMMddHHmmss",
    "yyyy/MM/dd HH:mm:ss",
    "iso",
)


# token -> (group name, regex)
_TOKENS: dict[str, tuple[str, str]] = {
    "yyyy": ("year", r"\d{4}"),
    "MM": ("month", r"\d{2}"),
    "M": ("month", r"\d{1,2}"),
    "dd": ("day", r"\d{2}"),
    "d": ("day", r"\d{1,2}"),
    "HH": ("hour", r"\d{2}"),
    "H": ("hour", r"\d{1,2}"),
    "mm": ("minute", r"\d{2}"),
    "ss": ("second", r"\d{2}"),
    "SSS": ("milli", r"\d{3}"),
}
_TOKEN_RE = re.compile(r"yyyy|MM|M|dd|d|HH|H|mm|ss|SSS|'[^']*'|[A-Za-z]+|.", re.DOTALL)


class DateFormatError(ValueError):
    """A date format string cannot be compiled (the message says why)."""


@functools.lru_cache(maxsize=64)
def parse_tz(text: str) -> timezone:
    """``+08:00`` / ``-05:30`` / ``Z`` / ``UTC`` to a fixed-offset timezone (the same object
    for the same text, so converted values can be recognised as already in it)."""
    if text in ("Z", "UTC", "utc", "+00:00"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if not m or int(m.group(2)) > 23 or int(m.group(3)) > 59:
        raise DateFormatError(f"bad time zone offset {text!r}; write e.g. +08:00")
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    return timezone(delta if m.group(1) == "+" else -delta)


_FIELDS = ("year", "month", "day", "hour", "minute", "second", "milli")


def _compile_pattern(fmt: str) -> tuple[re.Pattern[str], tuple[int, ...], bool]:
    """One format to (anchored regex, group number of each of _FIELDS or 0, has time).
    Raises DateFormatError."""
    parts: list[str] = []
    seen: list[str] = []
    for tok in _TOKEN_RE.findall(fmt):
        if tok in _TOKENS:
            group, rx = _TOKENS[tok]
            if group in seen:
                raise DateFormatError(f"date format {fmt!r} has {group} twice")
            seen.append(group)
            parts.append(f"({rx})")
        elif tok.startswith("'") and tok.endswith("'") and len(tok) >= 2:
            parts.append(re.escape(tok[1:-1]))
        elif tok.isascii() and tok.isalpha():
            raise DateFormatError(
                f"date format {fmt!r}: unknown letters {tok!r} (use yyyy MM M dd d HH H mm ss "
                "SSS; quote literal text as 'T'; or one of iso, epoch_millis, epoch_seconds)"
            )
        else:
            parts.append(re.escape(tok))
    if not {"year", "month", "day"} <= set(seen):
        raise DateFormatError(f"date format {fmt!r} needs a year (yyyy), month (MM) and day (dd)")
    has_time = "hour" in seen
    if ("minute" in seen or "second" in seen) and not has_time:
        raise DateFormatError(f"date format {fmt!r} has minutes or seconds but no hour (HH)")
    order = tuple(seen.index(f) + 1 if f in seen else 0 for f in _FIELDS)
    return re.compile("".join(parts)), order, has_time


_Try = Callable[[Any], "date | datetime | None"]


_FIXED = {
    "yyyy": ("year", 4),
    "MM": ("month", 2),
    "dd": ("day", 2),
    "HH": ("hour", 2),
    "mm": ("minute", 2),
    "ss": ("second", 2),
    "SSS": ("milli", 3),
}


def _fixed_layout(fmt: str) -> tuple[int, dict[str, slice], tuple[tuple[int, str], ...]] | None:
    """For a format of fixed-width fields only (``yyyyMMddHHmmss``, ``yyyy-MM-dd HH:mm:ss``):
    (length, field -> slice, literal characters by position), so a value can be sliced
    instead of matched by a regular expression (the fast path of the usual format)."""
    pos = 0
    fields: dict[str, slice] = {}
    literals: list[tuple[int, str]] = []
    for tok in _TOKEN_RE.findall(fmt):
        if tok in _FIXED:
            name, width = _FIXED[tok]
            fields[name] = slice(pos, pos + width)
            pos += width
        elif tok.startswith("'") and tok.endswith("'") and len(tok) >= 2:
            for ch in tok[1:-1]:
                literals.append((pos, ch))
                pos += 1
        elif len(tok) == 1 and not tok.isalnum():
            literals.append((pos, tok))
            pos += 1
        else:
            return None  # M, d, H (variable width) or letters: the regex handles it
    return pos, fields, tuple(literals)


def _pattern_try(fmt: str, zone: timezone | None) -> _Try:
    slow = _regex_try(fmt, zone)
    layout = _fixed_layout(fmt)
    if layout is None:
        return slow
    length, f, literals = layout
    zero = slice(0, 0)
    y, mo, d = f["year"], f["month"], f["day"]
    h, mi, se, ms = (f.get(k, zero) for k in ("hour", "minute", "second", "milli"))
    has_time = "hour" in f

    def fast(value: Any) -> date | datetime | None:
        if value.__class__ is not str or len(value) != length:
            return slow(value)
        for i, ch in literals:
            if value[i] != ch:
                return slow(value)
        parts = [value[y], value[mo], value[d], value[h], value[mi], value[se], value[ms]]
        if not all(p.isdigit() and p.isascii() for p in parts if p):
            return slow(value)
        try:
            if not has_time:
                return date(int(parts[0]), int(parts[1]), int(parts[2]))
            return datetime(
                int(parts[0]),
                int(parts[1]),
                int(parts[2]),
                int(parts[3]),
                int(parts[4]) if parts[4] else 0,
                int(parts[5]) if parts[5] else 0,
                int(parts[6]) * 1000 if parts[6] else 0,
                tzinfo=zone,
            )
        except ValueError:
            return None  # e.g. month 13: maybe a later format fits

    return fast


def _regex_try(fmt: str, zone: timezone | None) -> _Try:
    rx, (y, mo, d, h, mi, se, ms), has_time = _compile_pattern(fmt)
    match = rx.fullmatch

    if not has_time:

        def try_date(value: Any) -> date | None:
            if not isinstance(value, str):
                return None
            m = match(value) or match(value.strip())
            if m is None:
                return None
            g = m.group
            try:
                return date(int(g(y)), int(g(mo)), int(g(d)))
            except ValueError:
                return None  # e.g. month 13: maybe a later format fits

        return try_date

    def try_datetime(value: Any) -> datetime | None:
        if not isinstance(value, str):
            return None
        m = match(value) or match(value.strip())
        if m is None:
            return None
        g = m.group
        try:
            return datetime(
                int(g(y)),
                int(g(mo)),
                int(g(d)),
                int(g(h)),
                int(g(mi)) if mi else 0,
                int(g(se)) if se else 0,
                int(g(ms)) * 1000 if ms else 0,
                tzinfo=zone,
            )
        except ValueError:
            return None

    return try_datetime


def _iso_try(zone: timezone, naive_zone: timezone | None) -> _Try:
    def try_iso(value: Any) -> date | datetime | None:
        if not isinstance(value, str):
            return None
        text = value.strip()
        try:
            got = datetime.fromisoformat(text)
        except ValueError:
            return None
        if got.tzinfo is not None:
            return got.astimezone(zone)
        if len(text) == 10:  # a date-only ISO text is a date
            return got.date()
        return got if naive_zone is None else got.replace(tzinfo=naive_zone)

    return try_iso


def _epoch_try(scale: float, zone: timezone) -> _Try:
    def try_epoch(value: Any) -> datetime | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            num = float(value)
        elif isinstance(value, str) and value.strip().isdigit():
            num = float(value.strip())
        else:
            return None
        try:
            return datetime.fromtimestamp(num / scale, zone)
        except (OverflowError, OSError, ValueError):
            return None

    return try_epoch


def compile_date_matchers(
    formats: Sequence[str] | None = None, *, tz: str = "+08:00", naive_in_tz: bool = False
) -> tuple[Callable[[Any], date | datetime | None], ...]:
    """One matcher per format (see :func:`compile_date_parser`): each returns the parsed
    value or ``None`` when its format does not fit."""
    if isinstance(formats, str):
        raise DateFormatError("formats must be a list of format strings")
    fmts = tuple(formats) if formats else DEFAULT_FORMATS
    zone = parse_tz(tz)
    naive_zone = zone if naive_in_tz else None
    tries: list[_Try] = []
    for f in fmts:
        if not isinstance(f, str) or not f:
            raise DateFormatError(f"date format {f!r} must be a non-empty string")
        if f == "iso":
            tries.append(_iso_try(zone, naive_zone))
        elif f == "epoch_millis":
            tries.append(_epoch_try(1000.0, zone))
        elif f == "epoch_seconds":
            tries.append(_epoch_try(1.0, zone))
        else:
            tries.append(_pattern_try(f, naive_zone))
    return tuple(tries)


def compile_date_parser(
    formats: Sequence[str] | None = None, *, tz: str = "+08:00", naive_in_tz: bool = False
) -> Callable[[Any], date | datetime]:
    """Compile ``formats`` (default :data:`DEFAULT_FORMATS`) into ``parse(value)``.

    ``parse`` returns a :class:`date` for formats without a time, a naive :class:`datetime`
    for formats with one (aware in ``tz`` with ``naive_in_tz``), and an aware datetime (in
    ``tz``) for epoch numbers and ISO texts with an offset. It raises :class:`ValueError`
    naming the tried formats when nothing fits. Raises :class:`DateFormatError` at compile
    time for a bad format or offset.
    """
    tries = compile_date_matchers(formats, tz=tz, naive_in_tz=naive_in_tz)
    fmts = tuple(formats) if formats else DEFAULT_FORMATS
    names = ", ".join(fmts)
    first, rest = tries[0], tuple(tries[1:])

    def parse(value: Any) -> date | datetime:
        got = first(value)
        if got is not None:
            return got
        if isinstance(value, date):  # datetime is a date too
            return value
        for t in rest:
            got = t(value)
            if got is not None:
                return got
        raise ValueError(f"{value!r} matches none of the date formats ({names})")

    return parse


def iso_date(value: date | datetime, zone: timezone) -> str:
    """``YYYY-MM-DD``; an aware datetime is first moved into ``zone``."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(zone)
        return value.date().isoformat()
    return value.isoformat()


def iso_datetime(value: date | datetime, zone: timezone) -> str:
    """``YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM`` in ``zone``; a naive value is taken to be in
    ``zone`` and a date is its midnight."""
    if value.__class__ is datetime:
        tzinfo = value.tzinfo  # type: ignore[union-attr]
        if tzinfo is zone:
            return value.isoformat()
        value = value.replace(tzinfo=zone) if tzinfo is None else value.astimezone(zone)
        return value.isoformat()
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    value = value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)
    return value.isoformat()
