"""Property: over random grants and random queries, either the query is refused with
E_FIELD_NOT_GRANTED, or every output (query pages, cursors, CSV and JSON Lines exports)
holds only granted fields of rows the grant's filter admits, and no ungranted or masked value
ever appears in the serialized output.

The expectations are computed here independently of :mod:`hub.sharing.enforce`: which
requests must be refused, which rows qualify (with :func:`filterlang.evaluate`, itself checked
against SQLite and PostgreSQL in test_filter_sql.py), and a naive reference projection.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hub.sharing.enforce import (
    CursorCodec,
    FieldNotGranted,
    GrantScope,
    Plan,
    SortKey,
    plan_query,
)
from hub.sharing.export import stream_export
from hub.sharing.filterlang import Expr, evaluate, fields_of, unparse
from security.masking import MaskRule, mask_value
from security.roles import Principal, Role
from tests.sharing.strategies import exprs, sample_records

UNIVERSE = ["a", "b", "c", "o", "o.x", "o.y", "s1"]
REQUESTABLE = [*UNIVERSE, "zz", "o.x.deeper"]
MASKS = [
    MaskRule("s1", "full", reveal_grant="reveal.s1"),
    MaskRule("o.y", "name"),
    MaskRule("a", "full"),
]
#: who asks: nobody special, or a principal the s1 mask is revealed to
PRINCIPALS = [
    None,
    Principal("p1", "requester", frozenset({Role.REQUESTER}), department="d1"),
    Principal("p2", "revealed", frozenset({Role.REQUESTER}), grants=frozenset({"reveal.s1"})),
]
CODEC = CursorCodec(b"property-test-cursor-secret")


def _rows() -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for i, r in enumerate(sample_records(80, seed=2)):
        r["s1"] = f"S1V{i:03d}X"  # markers: must never show unless granted and unmasked
        if isinstance(r.get("o"), dict):
            r["o"] = {**r["o"], "y": f"OYV{i:03d}X"}
        rows.append((f"k{i:03d}", r))
    return rows


ROWS = _rows()
MARKERS = {"s1": b"S1V", "o.y": b"OYV"}


def covered(path: str, granted: tuple[str, ...] | list[str]) -> bool:
    return any(path == g or path.startswith(g + ".") for g in granted)


def related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


grants = st.builds(
    lambda fields, row_filter, masks: GrantScope(
        "d", tuple(fields), row_filter=row_filter, masks=tuple(masks), grant_id="g"
    ),
    st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=5, unique=True),
    st.none() | exprs(UNIVERSE, max_leaves=3),
    st.lists(st.sampled_from(MASKS), unique=True, max_size=2),
)
queries = st.fixed_dictionaries(
    {
        "fields": st.none() | st.lists(st.sampled_from(REQUESTABLE), min_size=1, max_size=4),
        "filter": st.none() | exprs(REQUESTABLE, max_leaves=3),
        "principal": st.sampled_from(PRINCIPALS),
        "sort": st.none()
        | st.lists(
            st.builds(SortKey, st.sampled_from(REQUESTABLE), st.booleans()),
            min_size=1,
            max_size=2,
            unique_by=lambda k: k.field,
        ),
    }
)


def _masked(scope: GrantScope, principal: Principal | None) -> list[MaskRule]:
    revealed = principal is not None and "reveal.s1" in principal.grants
    return [m for m in scope.masks if not (revealed and m.reveal_grant == "reveal.s1")]


def _must_refuse(scope: GrantScope, q: dict[str, Any]) -> set[str]:
    """The paths that make this query ungranted (empty: it must be served)."""
    granted = scope.fields
    masked = [m.path for m in _masked(scope, q["principal"])]
    bad = {p for p in q["fields"] or [] if not covered(p, granted)}
    read = fields_of(q["filter"]) | {k.field for k in q["sort"] or []}
    bad |= {p for p in read if not covered(p, granted) or any(related(p, m) for m in masked)}
    return bad


def _reference_projection(
    record: Mapping[str, Any], wanted: list[str], masks: list[MaskRule]
) -> Any:
    out: dict[str, Any] = {}
    for path in wanted:
        node: Any = record
        parts = path.split(".")
        ok = True
        for p in parts:
            if isinstance(node, dict) and p in node:
                node = node[p]
            else:
                ok = False
                break
        if not ok:
            continue
        target = out
        for p in parts[:-1]:
            target = target.setdefault(p, {})
        target[parts[-1]] = copy.deepcopy(node)
    for m in masks:
        parts = m.path.split(".")
        target = out
        for p in parts[:-1]:
            target = target.get(p) if isinstance(target, dict) else None  # type: ignore[assignment]
        if isinstance(target, dict) and parts[-1] in target:
            target[parts[-1]] = mask_value(target[parts[-1]], m.kind)
    return out


def _only_granted(node: Mapping[str, Any], granted: tuple[str, ...], prefix: str = "") -> bool:
    for k, v in node.items():
        p = prefix + k
        if covered(p, granted):
            continue
        if isinstance(v, dict) and any(g.startswith(p + ".") for g in granted):
            if not _only_granted(v, granted, p + "."):
                return False
            continue
        return False
    return True


def _canon(items: list[Any]) -> list[bytes]:
    return sorted(orjson.dumps(x, option=orjson.OPT_SORT_KEYS) for x in items)


async def _records() -> AsyncIterator[Mapping[str, Any]]:
    for _, r in ROWS:
        yield r


async def _export(plan: Plan, fmt: str) -> tuple[bytes, int]:
    stream = stream_export(_records(), plan, fmt)
    body = b"".join([c async for c in stream])
    return body, stream.manifest()["count"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scope=grants, q=queries)
def test_no_ungranted_value_ever_leaves(scope: GrantScope, q: dict[str, Any]) -> None:
    bad = _must_refuse(scope, q)
    try:
        plan = plan_query(
            scope,
            fields=None if q["fields"] is None else ",".join(q["fields"]),
            filter=None if q["filter"] is None else unparse(q["filter"]),  # as sent over HTTP
            sort=None
            if q["sort"] is None
            else ",".join(("-" if k.descending else "") + k.field for k in q["sort"]),
            principal=q["principal"],
        )
    except FieldNotGranted as err:
        event(f"refused via {err.field}")
        assert bad, f"refused a query the grant covers: {err}"
        assert err.code == "E_FIELD_NOT_GRANTED" and err.extra["path"] in bad
        assert err.field in ("fields", "filter", "sort")
        return
    assert not bad, f"served a query reading {bad}"
    event("served")

    # which rows qualify and what they must look like, computed without the plan
    request_filter: Expr | None = q["filter"]
    qualifying = [
        r
        for _, r in ROWS
        if (scope.row_filter is None or evaluate(scope.row_filter, r))
        and (request_filter is None or evaluate(request_filter, r))
    ]
    wanted = list(scope.fields) if q["fields"] is None else list(q["fields"])
    expected = _canon(
        [_reference_projection(r, wanted, _masked(scope, q["principal"])) for r in qualifying]
    )

    whole = plan.page(ROWS, 1000, CODEC)
    assert whole.next_cursor is None
    assert _canon(whole.items) == expected

    # paged with cursors: the same rows, in the same order, once each
    items: list[Any] = []
    cursor = None
    cursors: list[str] = []
    while True:
        page = plan.page(ROWS, 7, CODEC, cursor)
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
        cursors.append(cursor)
    assert items == whole.items

    served = orjson.dumps(whole.items)
    csv_body, csv_count = asyncio.run(_export(plan, "csv"))
    jsonl_body, jsonl_count = asyncio.run(_export(plan, "jsonl"))
    assert csv_count == jsonl_count == len(qualifying)
    assert _canon([orjson.loads(x) for x in jsonl_body.splitlines()]) == expected
    assert all(_only_granted(item, scope.fields) for item in whole.items)
    cursor_text = b"".join(
        base64.urlsafe_b64decode(c.split(".")[0] + "=" * (-len(c.split(".")[0]) % 4))
        for c in cursors
    )
    masked = {m.path for m in _masked(scope, q["principal"])}
    for path, marker in MARKERS.items():
        visible = covered(path, scope.fields) and path not in masked
        if not visible:
            for out in (served, csv_body, jsonl_body, cursor_text):
                assert marker not in out, f"{path} leaked"
        elif marker in served:
            event(f"{path} granted and shown")  # the check above is not vacuous
