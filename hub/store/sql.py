"""Load SQL kept in named blocks (``-- name: <block>``) from a ``.sql`` file next to a store."""

from __future__ import annotations

import re
from importlib.resources import files

__all__ = ["load_queries"]

_BLOCK = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def load_queries(package: str, filename: str) -> dict[str, str]:
    """Return ``{block name: SQL}``; comment lines before a block's first statement are kept."""
    text = files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _BLOCK.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{filename}: query block {name!r} defined twice")
        queries[name] = body.strip()
    return queries
