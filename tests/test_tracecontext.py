"""``child_traceparent``: the sliced fast path for the stored form gives what splitting gives."""

from __future__ import annotations

import random

import pytest

from hub import tracecontext
from hub.tracecontext import child_traceparent, new_traceparent


def _by_split(parent: str, span: int) -> str:
    version, trace_id, _span, flags = parent.split("-")
    return f"{version}-{trace_id}-{span or 1:016x}-{flags}"


@pytest.mark.parametrize(
    "parent",
    [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-011",  # 55 chars, dashes moved
        "00-0af7651916cd43dd8448eb211c80319-cb7ad6b7169203331-01",
        "00-abc-def-01",
    ],
)
def test_child_keeps_trace_and_flags_like_splitting(
    parent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracecontext, "_rand", random.Random(5))
    got = child_traceparent(parent)
    want = _by_split(parent, random.Random(5).getrandbits(64))
    assert got == want


def test_child_of_nothing_starts_a_trace_and_bad_shapes_still_raise() -> None:
    assert len(child_traceparent(None)) == 55 == len(new_traceparent())
    with pytest.raises(ValueError):
        child_traceparent("00-only-three")
    with pytest.raises(ValueError):
        child_traceparent("a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z-0-1-2")
