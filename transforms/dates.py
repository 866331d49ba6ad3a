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

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "DEFAULT_FORMATS",
    "DateFormatError",
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

_SPECIAL = ("iso", "epoch_millis", "epoch_seconds")

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


def parse_tz(text: str) -> timezone:
    """``+08:00`` / ``-05:30`` / ``Z`` / ``UTC`` to a fixed-offset timezone."""
    if text in ("Z", "UTC", "utc", "+00:00"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if not m or int(m.group(2)) > 23 or int(m.group(3)) > 59:
        raise DateFormatError(f"bad time zone offset {text!r}; write e.g. +08:00")
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    return timezone(delta if m.group(1) == "+" else -delta)


def _compile_pattern(fmt: str) -> tuple[re.Pattern[str], bool]:
    """One format to (anchored regex, has time). Raises DateFormatError."""
    parts: list[str] = []
    seen: set[str] = set()
    for tok in _TOKEN_RE.findall(fmt):
        if tok in _TOKENS:
            group, rx = _TOKENS[tok]
            if group in seen:
                raise DateFormatError(f"date format {fmt!r} has {group} twice")
            seen.add(group)
            parts.append(f"(?P<{group}>{rx})")
        elif tok.startswith("'") and tok.endswith("'") and len(tok) >= 2:
            parts.append(re.escape(tok[1:-1]))
        elif tok.isascii() and tok.isalpha():
            raise DateFormatError(
                f"date format {fmt!r}: unknown letters {tok!r} (use yyyy MM M dd d HH H mm ss "
                "SSS; quote literal text as 'T'; or one of iso, epoch_millis, epoch_seconds)"
            )
        else:
            parts.append(re.escape(tok))
    if not {"year", "month", "day"} <= seen:
        raise DateFormatError(f"date format {fmt!r} needs a year (yyyy), month (MM) and day (dd)")
    has_time = "hour" in seen
    if ("minute" in seen or "second" in seen) and not has_time:
        raise DateFormatError(f"date format {fmt!r} has minutes or seconds but no hour (HH)")
    return re.compile("".join(parts)), has_time


def _from_match(m: re.Match[str], has_time: bool) -> date | datetime:
    g = m.groupdict()
    y, mo, d = int(g["year"]), int(g["month"]), int(g["day"])
    if not has_time:
        return date(y, mo, d)
    ms = g.get("milli")
    return datetime(
        y,
        mo,
        d,
        int(g["hour"]),
        int(g.get("minute") or 0),
        int(g.get("second") or 0),
        int(ms) * 1000 if ms else 0,
    )


def compile_date_parser(
    formats: Sequence[str] | None = None, *, tz: str = "+08:00"
) -> Callable[[Any], date | datetime]:
    """Compile ``formats`` (default :data:`DEFAULT_FORMATS`) into ``parse(value)``.

    ``parse`` returns a :class:`date` for formats without a time, a naive :class:`datetime`
    for formats with one, and an aware datetime (in ``tz``) for epoch numbers and ISO texts
    with an offset. It raises :class:`ValueError` naming the tried formats when nothing fits.
    Raises :class:`DateFormatError` at compile time for a bad format or offset.
    """
    fmts = tuple(formats) if formats else DEFAULT_FORMATS
    if isinstance(formats, str):
        raise DateFormatError("formats must be a list of format strings")
    zone = parse_tz(tz)
    compiled: list[tuple[str, re.Pattern[str] | None, bool]] = []
    for f in fmts:
        if not isinstance(f, str) or not f:
            raise DateFormatError(f"date format {f!r} must be a non-empty string")
        if f in _SPECIAL:
            compiled.append((f, None, True))
        else:
            rx, has_time = _compile_pattern(f)
            compiled.append((f, rx, has_time))
    epoch_scale = {"epoch_millis": 1000.0, "epoch_seconds": 1.0}
    names = ", ".join(fmts)

    def parse(value: Any) -> date | datetime:
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return value
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        text = value.strip() if isinstance(value, str) else None
        for name, rx, has_time in compiled:
            if rx is not None:
                if text is None:
                    continue
                m = rx.fullmatch(text)
                if m is None:
                    continue
                try:
                    return _from_match(m, has_time)
                except ValueError:
                    continue  # e.g. month 13: maybe a later format fits
            elif name == "iso":
                if text is None:
                    continue
                try:
                    got = datetime.fromisoformat(text)
                except ValueError:
                    continue
                if got.tzinfo is not None:
                    return got.astimezone(zone)
                # a date-only ISO text is a date
                return got.date() if len(text) == 10 else got
            else:
                if is_number:
                    num = float(value)
                elif text is not None and text.isdigit():
                    num = float(text)
                else:
                    continue
                try:
                    return datetime.fromtimestamp(num / epoch_scale[name], zone)
                except (OverflowError, OSError, ValueError):
                    continue
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
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    value = value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)
    return value.isoformat()
