"""Built-in value functions for mapping rules (``fn:``), registered by the core plugin.

Each is ``func(value, *args) -> value``; a non-string value is converted with ``str`` first.
"""

from __future__ import annotations

from typing import Any

from hub.specs import TransformFunctionSpec

__all__ = ["VALUE_FUNCTIONS", "lower", "pad_left", "replace", "strip", "substring", "upper"]


def _s(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def upper(value: Any) -> str:
    """Upper-case (``91330102ma...`` → ``91330102MA...``)."""
    return _s(value).upper()


def lower(value: Any) -> str:
    """Lower-case."""
    return _s(value).lower()


def strip(value: Any, chars: str | None = None) -> str:
    """Remove leading and trailing whitespace (U+3000 included), or the given ``chars``."""
    return _s(value).strip(chars)


def replace(value: Any, old: str, new: str) -> str:
    """Replace every ``old`` with ``new``."""
    return _s(value).replace(old, new)


def pad_left(value: Any, width: int, char: str = "0") -> str:
    """Pad on the left to ``width`` characters (``42`` → ``000042`` with ``[6, "0"]``)."""
    return _s(value).rjust(int(width), char)


def substring(value: Any, start: int, end: int | None = None) -> str:
    """Characters ``start`` (0-based) up to ``end`` (exclusive; to the end when omitted)."""
    return _s(value)[int(start) : None if end is None else int(end)]


#: What the core plugin registers through ``hub_register_transform_functions``.
VALUE_FUNCTIONS: list[TransformFunctionSpec] = [
    TransformFunctionSpec("upper", upper, "upper-case a value", kind="value"),
    TransformFunctionSpec("lower", lower, "lower-case a value", kind="value"),
    TransformFunctionSpec("strip", strip, "trim whitespace (args: [chars])", kind="value"),
    TransformFunctionSpec("replace", replace, "replace text (args: [old, new])", kind="value"),
    TransformFunctionSpec(
        "pad_left", pad_left, "left-pad to a width (args: [width, char])", kind="value"
    ),
    TransformFunctionSpec(
        "substring", substring, "part of a value (args: [start, end])", kind="value"
    ),
]
