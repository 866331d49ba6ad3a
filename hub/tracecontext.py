"""W3C Trace Context (``traceparent``): accept the source's, start one if absent, and derive a
child span for every outbound request so a message can be followed across systems."""

from __future__ import annotations

import random
import re

__all__ = ["child_traceparent", "new_traceparent", "parse_traceparent"]

_TP = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(value: str | None) -> str | None:
    """The header if it is a valid version-00 traceparent, else ``None`` (then we start one)."""
    if not value:
        return None
    m = _TP.match(value.strip().lower())
    if not m or m.group(1) == "ff" or set(m.group(2)) == {"0"} or set(m.group(3)) == {"0"}:
        return None
    return m.group(0)


# Trace and span ids must be unique, not secret: a PRNG avoids a system call per record.
_rand = random.Random()


def new_traceparent() -> str:
    return f"00-{_rand.getrandbits(128) or 1:032x}-{_rand.getrandbits(64) or 1:016x}-01"


def child_traceparent(parent: str | None) -> str:
    """Same trace id, a new span id (our outbound call is a child of the inbound one)."""
    if not parent:
        return new_traceparent()
    if (
        len(parent) == 55
        and parent.count("-") == 3
        and parent[2] == parent[35] == parent[52] == "-"
    ):
        # the stored form (version-00, 2-32-16-2): only the span changes (once per record)
        return f"{parent[:36]}{_rand.getrandbits(64) or 1:016x}{parent[52:]}"
    version, trace_id, _span, flags = parent.split("-")
    return f"{version}-{trace_id}-{_rand.getrandbits(64) or 1:016x}-{flags}"
