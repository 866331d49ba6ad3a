"""Governance steps 清洗/标准化 (data cleaning and standardisation) of canonical records.

Configured in a ``governance:`` section, compiled once by :func:`compile_cleaning`::

    trim: true                          # or a list of fields
    fullwidth_to_halfwidth: true        # or a list of fields
    empty_to_null: ["", "无", "null", "NULL", "/"]   # or true for that list
    uppercase: [counterpart_code, implementing_body_code]
    region_codes: [region_code]         # or {fields: [...], pad: true}
    dates: {fields: [inspection_time], formats: [...], output: auto, tz: "+08:00"}

Steps run in this order: full-width → half-width, trim, empty → null, upper-case, region
codes, dates. ``true`` applies a step to every string, also inside nested objects and lists; a
list of names applies it to those top-level fields only. A :class:`Cleaner` never changes the
record it is given; it returns a new one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from hub.errors import ConfigError, MappingError
from transforms.dates import DateFormatError, compile_date_parser, iso_date, iso_datetime, parse_tz

__all__ = ["CLEANING_KEYS", "DEFAULT_EMPTY_VALUES", "Cleaner", "compile_cleaning"]

#: Keys of a cleaning (governance) section.
CLEANING_KEYS: tuple[str, ...] = (
    "trim",
    "fullwidth_to_halfwidth",
    "empty_to_null",
    "uppercase",
    "region_codes",
    "dates",
)
#: The placeholders ``empty_to_null: true`` turns into ``null`` (compared after trimming).
DEFAULT_EMPTY_VALUES: tuple[str, ...] = ("", "无", "null", "NULL", "/")

# U+FF01..U+FF5E are the full-width forms of ASCII ! .. ~; U+3000 is the ideographic space.
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# str.strip() already removes every Unicode space (U+3000 included); these are invisible too.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_LEADING_DIGITS = re.compile(r"\d+")

_StrFn = Callable[[str], Any]


def _halfwidth(s: str) -> str:
    return s.translate(_FULLWIDTH)


def _trim(s: str) -> str:
    t = s.strip()
    if t and (t[0] in _INVISIBLE or t[-1] in _INVISIBLE):
        t = t.strip(_INVISIBLE + " \t\r\n\u3000").strip()
    return t


def _walk(value: Any, fn: _StrFn) -> Any:
    """``fn`` applied to every string in ``value``; containers are rebuilt only if changed."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        new = {k: _walk(v, fn) for k, v in value.items()}
        return value if all(new[k] is value[k] for k in value) else new
    if isinstance(value, list):
        items = [_walk(v, fn) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


class Cleaner:
    """A compiled cleaning section; call it with one record."""

    __slots__ = ("_field_steps", "_string_steps", "where")

    def __init__(
        self,
        string_steps: list[tuple[str, _StrFn, tuple[str, ...] | None]],
        field_steps: list[tuple[str, Callable[[Any, str], Any], tuple[str, ...]]],
        where: str,
    ) -> None:
        self._string_steps = string_steps
        self._field_steps = field_steps
        self.where = where

    def __call__(self, record: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
        """Return the cleaned copy of ``record``; ``notes`` gets one short line per change kind
        (e.g. ``trimmed: name, address``). Raises ``E_MAPPING`` naming the field for a date
        that matches none of the formats."""
        out = dict(record)
        changed: dict[str, list[str]] = {}
        for kind, fn, fields in self._string_steps:
            for k in out if fields is None else fields:
                v = out.get(k)
                if v is None:
                    continue
                new = _walk(v, fn)
                if new is not v and new != v:
                    out[k] = new
                    changed.setdefault(kind, []).append(k)
        for kind, step, names in self._field_steps:
            for k in names:
                v = out.get(k)
                if v is None:
                    continue
                new = step(v, k)
                if new != v:
                    out[k] = new
                    changed.setdefault(kind, []).append(k)
        if notes is not None:
            notes.extend(f"{kind}: {', '.join(ks)}" for kind, ks in changed.items())
        return out

    def __repr__(self) -> str:
        return f"<Cleaner {self.where}>"


def compile_cleaning(spec: Mapping[str, Any], *, where: str = "governance") -> Cleaner:
    """Compile a cleaning section once; raise ConfigError naming ``where`` and the key for an
    unknown key, a bad field list or a bad date format."""

    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{where} {key}: {msg}", field=key)

    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: the cleaning section must be a mapping", field="(top)")
    for key in spec:
        if key not in CLEANING_KEYS:
            raise fail(str(key), f"unknown key; allowed: {', '.join(CLEANING_KEYS)}")

    def fields_of(key: str, value: Any) -> tuple[str, ...] | None:
        if value is True:
            return None
        if isinstance(value, list) and value and all(isinstance(f, str) for f in value):
            return tuple(dict.fromkeys(value))
        raise fail(key, "must be true or a non-empty list of field names")

    string_steps: list[tuple[str, _StrFn, tuple[str, ...] | None]] = []
    if spec.get("fullwidth_to_halfwidth", False) is not False:
        sel = fields_of("fullwidth_to_halfwidth", spec["fullwidth_to_halfwidth"])
        string_steps.append(("half-width", _halfwidth, sel))
    if spec.get("trim", False) is not False:
        string_steps.append(("trimmed", _trim, fields_of("trim", spec["trim"])))
    if spec.get("empty_to_null", False) is not False:
        raw = spec["empty_to_null"]
        if raw is True:
            raw = list(DEFAULT_EMPTY_VALUES)
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise fail("empty_to_null", "must be true or a list of strings that mean empty")
        empties = frozenset(raw)

        def to_null(s: str) -> Any:
            return None if s in empties or s.strip() in empties else s

        string_steps.append(("emptied", to_null, None))
    if "uppercase" in spec:
        sel = fields_of("uppercase", spec["uppercase"])
        string_steps.append(("upper-cased", str.upper, sel))

    field_steps: list[tuple[str, Callable[[Any, str], Any], tuple[str, ...]]] = []
    if "region_codes" in spec:
        raw = spec["region_codes"]
        pad = False
        if isinstance(raw, Mapping):
            extra = set(raw) - {"fields", "pad"}
            if extra:
                raise fail(
                    "region_codes", f"unknown key {sorted(extra)[0]!r}; allowed: fields, pad"
                )
            pad = raw.get("pad", False)
            if not isinstance(pad, bool):
                raise fail("region_codes.pad", "must be true or false")
            raw = raw.get("fields")
        sel = fields_of("region_codes", raw)
        if sel is None:
            raise fail("region_codes", "name the fields that hold 行政区划代码")
        field_steps.append(("region codes", _region_step(pad), sel))
    if "dates" in spec:
        field_steps.append(_dates_step(spec["dates"], fail))
    return Cleaner(string_steps, field_steps, where)


def _region_step(pad: bool) -> Callable[[Any, str], Any]:
    """行政区划代码 to 6 digits: ``330102`` stays, ``330102 西湖区`` / ``330102-`` lose the junk,
    a 12-digit statistical code keeps its county part (first 6); with ``pad``, ``33`` and
    ``3301`` become ``330000`` and ``330100``. Anything else is left for the contract to
    reject with the field named."""

    def region(v: Any, field: str) -> Any:
        s = str(v).strip() if isinstance(v, (str, int)) and not isinstance(v, bool) else None
        if s is None:
            return v
        m = _LEADING_DIGITS.match(s)
        if m is None:
            return v
        digits = m.group()
        if len(digits) == 6:
            return digits
        if len(digits) == 12:
            return digits[:6]
        if pad and len(digits) in (2, 4):
            return digits.ljust(6, "0")
        return v

    return region


def _dates_step(
    raw: Any, fail: Callable[[str, str], ConfigError]
) -> tuple[str, Callable[[Any, str], Any], tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise fail("dates", "must be {fields: [...], formats: [...]}")
    extra = set(raw) - {"fields", "formats", "output", "tz"}
    if extra:
        raise fail(
            "dates", f"unknown key {sorted(extra)[0]!r}; allowed: fields, formats, output, tz"
        )
    fields = raw.get("fields")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise fail("dates.fields", "must be a non-empty list of field names")
    output = raw.get("output", "auto")
    if output not in ("auto", "date", "datetime"):
        raise fail("dates.output", "must be auto, date or datetime")
    formats = raw.get("formats")
    if formats is not None and (not isinstance(formats, list) or not formats):
        raise fail("dates.formats", "must be a non-empty list of formats")
    tz = str(raw.get("tz", "+08:00"))
    try:
        parse = compile_date_parser(formats, tz=tz)
        zone = parse_tz(tz)
    except DateFormatError as exc:
        raise fail("dates.formats" if formats else "dates.tz", str(exc)) from None

    def standardise(v: Any, field: str) -> Any:
        if isinstance(v, str) and not v.strip():
            return v
        try:
            got = parse(v)
        except ValueError as exc:
            raise MappingError(f"{field}: {exc}", field=field) from None
        if output == "date":
            return iso_date(got, zone)
        if output == "datetime" or hasattr(got, "hour"):
            return iso_datetime(got, zone)
        return iso_date(got, zone)

    return ("dates", standardise, tuple(dict.fromkeys(fields)))
