"""Entry-point targets for adapter packages whose names are not Python identifiers.

setuptools validates ``[project.entry-points]`` values as dotted identifiers, so
``"adapters.12345.plugin"`` is refused at install time. The entry point names an attribute of
this module instead (``hotline12345 = "adapters.entry_points:hotline12345"``); the attribute
is the plugin module itself, imported with :func:`importlib.import_module` only when the
entry point is loaded.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["hotline12345"]  # noqa: F822 - provided by the module __getattr__

_TARGETS = {"hotline12345": "adapters.12345.plugin"}


def __getattr__(name: str) -> Any:
    target = _TARGETS.get(name)
    if target is None:
        raise AttributeError(name)
    module: ModuleType = importlib.import_module(target)
    return module
