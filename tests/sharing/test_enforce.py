"""Governed projection: authorization probes, whitelist projection, masks, sort and cursors."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from hub.errors import BadParameter
from hub.sharing.enforce import (
    CursorCodec,
    CursorError,
    FieldNotGranted,
    GrantScope,
    SortKey,
    parse_fields,
    parse_sort,
    plan_query,
)
from hub.sharing.filterlang import FilterError, parse
from security.masking import MaskRule
from security.roles import Principal, Role
from tests.sharing.strategies import sample_records

SECRET = b"test-cursor-secret-0123456789"
CODEC = CursorCodec(SECRET)

PERSON = {
    "id": "r1",
    "name": "张三丰",
    "id_card": "11010519491231002X",
    "region": "330100",
    "score": 7,
    "owner": {"name": "李四", "phone": "13812345678", "bank": "6222000011112222"},
    "internal_note": "do not share",
}

SCOPE = GrantScope(
    dataset="penalty",
    fields=("id", "name", "id_card", "score", "owner.name", "owner.phone"),
    row_filter=parse("region = '330100'"),
    masks=(
        MaskRule("id_card", "id_card"),
        MaskRule("owner.phone", "phone", reveal_grant="penalty.phone.reveal"),
    ),
    grant_id="g-1",
)
REQUESTER = Principal("t1", "requester", frozenset({Role.REQUESTER}), department="dept-a")
REVEALED = Principal(
    "t2",
    "requester-with-reveal",
    frozenset({Role.REQUESTER}),
    department="dept-a",
    grants=frozenset({"penalty.phone.reveal"}),
)


def assert_refused(param: str, path: str, **kw: Any) -> FieldNotGranted:
    with pytest.raises(FieldNotGranted) as exc:
        plan_query(SCOPE, principal=REQUESTER, **kw)
    err = exc.value
    assert err.code == "E_FIELD_NOT_GRANTED" and err.status == 403
    assert err.field == param and err.extra["path"] == path and repr(path) in err.message
    return err


# --------------------------------------------------------------------------- probes


def test_default_fields_are_the_granted_ones_projected_by_whitelist_and_masked() -> None:
    plan = plan_query(SCOPE, principal=REQUESTER)
    assert plan.fields == SCOPE.fields
    out = plan.apply(PERSON)
    assert out == {
        "id": "r1",
        "name": "张三丰",
        "id_card": "110105********002X",
        "score": 7,
        "owner": {"name": "李四", "phone": "138****5678"},
    }
    assert "region" not in out and "bank" not in out["owner"]  # filter field, ungranted
    assert plan.apply({**PERSON, "region": "330200"}) is None  # the grant's row filter
    assert PERSON["id_card"] == "11010519491231002X"  # the input is never changed


def test_requested_fields_narrow_the_output_in_request_order() -> None:
    plan = plan_query(SCOPE, fields="score, owner.name,id", principal=REQUESTER)
    assert plan.fields == ("score", "owner.name", "id")
    assert list(plan.apply(PERSON) or {}) == ["score", "owner", "id"]
    assert plan.apply(PERSON) == {"score": 7, "owner": {"name": "李四"}, "id": "r1"}


def _shape(err: FieldNotGranted) -> str:
    """The refusal's message with the field's path taken out: what a prober compares."""
    return err.message.replace(repr(err.extra["path"]), "<path>")


def test_probe_ungranted_field_via_fields() -> None:
    ungranted = assert_refused("fields", "internal_note", fields="id,internal_note")
    assert_refused("fields", "region", fields="region")  # the row filter's field is not granted
    assert_refused("fields", "owner", fields="owner")  # only parts of owner are granted
    assert_refused("fields", "owner.bank", fields="owner.bank")
    unknown = assert_refused("fields", "no_such_field", fields="no_such_field")
    assert _shape(unknown) == _shape(ungranted)  # same answer: no probing for what exists


def test_probe_ungranted_field_via_filter() -> None:
    ungranted = assert_refused("filter", "internal_note", filter="internal_note like 'd%'")
    nested = assert_refused("filter", "owner.bank", filter="score > 1 or not owner.bank is null")
    assert_refused("filter", "region", filter="region = '330200'")  # cannot widen or probe rows
    unknown = assert_refused("filter", "no_such_field", filter="no_such_field = 1")
    assert _shape(unknown) == _shape(ungranted) == _shape(nested)


def test_probe_ungranted_field_via_sort() -> None:
    ungranted = assert_refused("sort", "internal_note", sort="-internal_note")
    nested = assert_refused("sort", "owner.bank", sort="id,owner.bank")
    unknown = assert_refused("sort", "no_such_field", sort="no_such_field")
    assert _shape(unknown) == _shape(ungranted) == _shape(nested)


def test_masked_fields_are_not_filtered_or_sorted_on() -> None:
    err = assert_refused("filter", "id_card", filter="id_card like '110105194912%'")
    assert "masked" in err.message
    assert_refused("sort", "id_card", sort="id_card")
    assert_refused("filter", "owner.phone", filter="owner.phone = '13812345678'")
    # revealed to this principal: filtering on it reads nothing it cannot see anyway
    plan = plan_query(SCOPE, filter="owner.phone = '13812345678'", principal=REVEALED)
    assert (plan.apply(PERSON) or {})["owner"]["phone"] == "13812345678"


def test_deeper_paths_under_a_granted_field_are_granted() -> None:
    scope = GrantScope("d", fields=("owner", "id"))
    plan = plan_query(
        scope, fields="owner.name", filter="owner.phone like '138%'", sort="owner.bank"
    )
    assert plan.apply(PERSON) == {"owner": {"name": "李四"}}
    assert plan_query(scope).apply(PERSON) == {"owner": PERSON["owner"], "id": "r1"}


def test_malformed_parameters() -> None:
    for text in ("", "a,,b", "a.", "a b", "a.$x", "1a"):
        with pytest.raises(BadParameter) as exc:
            parse_fields(text)
        assert exc.value.code == "E_PARAM" and exc.value.field == "fields"
    with pytest.raises(BadParameter, match="appears twice"):
        parse_sort("a,-a")
    with pytest.raises(BadParameter, match="more than 5 keys"):
        parse_sort("a,b,c,d,e,f")
    assert parse_sort("-a, +b,c.d") == (SortKey("a", True), SortKey("b"), SortKey("c.d"))
    with pytest.raises(FilterError):
        plan_query(SCOPE, filter="score >")
    with pytest.raises(BadParameter) as exc:
        GrantScope("d", fields=("a..b",))
    assert exc.value.code == "E_PARAM"
    with pytest.raises(BadParameter, match="at least one field"):
        GrantScope("d", fields=())
    with pytest.raises(BadParameter, match="longer than 4096"):
        parse_sort("a," * 3000)
    with pytest.raises(BadParameter, match="longer than 4096"):
        parse_fields("a," * 3000)
    with pytest.raises(BadParameter, match="more than 200 fields"):
        parse_fields(",".join(f"f{i}" for i in range(201)))


def test_a_stored_grant_filter_may_be_text() -> None:
    scope = GrantScope("d", ("a",), row_filter="region = '330100'")  # type: ignore[arg-type]
    assert scope.row_filter == parse("region = '330100'")
    with pytest.raises(FilterError) as exc:
        GrantScope("d", ("a",), row_filter="region = ")  # type: ignore[arg-type]
    assert exc.value.code == "E_FILTER"


def test_grant_validity_period() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    scope = GrantScope("d", ("a",), valid_from=t0, valid_until=t0 + dt.timedelta(days=30))
    assert not scope.active(t0 - dt.timedelta(seconds=1))
    assert scope.active(t0) and scope.active(t0 + dt.timedelta(days=29, hours=23))
    assert not scope.active(t0 + dt.timedelta(days=30))  # valid_until is exclusive
    assert GrantScope("d", ("a",)).active(t0)


# --------------------------------------------------------------------------- cursors


def test_cursor_round_trip_and_tampering() -> None:
    plan = plan_query(SCOPE, sort="-score", principal=REQUESTER)
    token = CODEC.encode(plan.fingerprint, [7, "r1"])
    assert CODEC.decode(token, plan.fingerprint) == [7, "r1"]
    body, mac = token.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    bad = [
        f"{flipped}.{mac}",  # altered position
        f"{body}.{mac[:-1]}",  # altered MAC
        CursorCodec(b"another-hub-secret-0000").encode(plan.fingerprint, [7, "r1"]),
        "not-a-cursor",
        "a.b.c",
        "%%%.###",
        "",
        "x" * 5000,
    ]
    for t in bad:
        with pytest.raises(CursorError) as exc:
            CODEC.decode(t, plan.fingerprint)
        assert exc.value.code == "E_CURSOR" and exc.value.field == "cursor"
    other = plan_query(SCOPE, sort="score", principal=REQUESTER)
    with pytest.raises(CursorError, match="another query"):
        CODEC.decode(token, other.fingerprint)
    with pytest.raises(CursorError, match="does not fit"):
        plan.page([], 10, CODEC, CODEC.encode(plan.fingerprint, ["r1"]))
    with pytest.raises(ValueError, match="at least 16 bytes"):
        CursorCodec(b"short")


def test_cursor_reveals_nothing_but_the_last_rows_sort_values() -> None:
    plan = plan_query(SCOPE, fields="id", sort="score", principal=REQUESTER)
    rows = [(f"k{i}", {**PERSON, "id": f"r{i}", "score": i}) for i in range(5)]
    page = plan.page(rows, 2, CODEC)
    assert page.next_cursor is not None
    body = page.next_cursor.split(".")[0]
    import base64

    doc = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert doc["p"] == [1, "k1"]
    assert b"do not share" not in orjson.dumps(doc) and "330100" not in str(doc)


# --------------------------------------------------------------------------- paging


@pytest.mark.parametrize("sort", ["", "a", "-a", "b,-a", "-o.x,c"])
def test_paging_returns_every_row_once_in_order(sort: str) -> None:
    records = sample_records(120, seed=11)
    rows = [(f"k{i:04d}", {**r, "n": i}) for i, r in enumerate(records)]
    scope = GrantScope("d", ("a", "b", "c", "o", "n"), row_filter=parse("c is not null"))
    plan = plan_query(scope, filter="not b = 1", sort=sort or None)

    def keep(r: dict[str, Any]) -> bool:
        # the filter recomputed by hand: typed equality (true is not 1), null is not 1
        b = r.get("b")
        return r.get("c") is not None and not (type(b) in (int, float) and b == 1)

    expected = sorted(((k, r) for k, r in rows if keep(r)), key=lambda kr: plan.sort_key(*kr))
    seen: list[int] = []
    cursor = None
    for _ in range(100):
        page = plan.page(reversed(rows), 7, CODEC, cursor)  # input order does not matter
        seen += [item["n"] for item in page.items]
        assert len(page.items) <= 7
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [r["n"] for _, r in expected]
    assert 0 < len(seen) < len(rows)


def test_sort_order_across_types_and_directions() -> None:
    values: list[Any] = ["b", None, 2, "a", True, 1.5, {"x": 1}, False, -3]
    rows = [(f"k{i}", {"v": v}) for i, v in enumerate(values)] + [("k9", {})]
    plan = plan_query(GrantScope("d", ("v",)), sort="v")
    page = plan.page(rows, 20, CODEC)
    got = [item.get("v", "<missing>") for item in page.items]
    assert got == [None, "<missing>", False, True, -3, 1.5, 2, "a", "b", {"x": 1}]
    down = plan_query(GrantScope("d", ("v",)), sort="-v").page(rows, 20, CODEC)
    got_down = [item.get("v", "<missing>") for item in down.items]
    # descending by value; rows with equal values (null and missing) stay in key order
    assert got_down == [{"x": 1}, "b", "a", 2, 1.5, -3, True, False, None, "<missing>"]
    with pytest.raises(BadParameter, match="limit"):
        plan.page(rows, 0, CODEC)


def test_where_sql_preselects_the_same_rows() -> None:
    records = sample_records(200, seed=3)
    scope = GrantScope("d", ("a", "b"), row_filter=parse("c is not null or o.x = true"))
    plan = plan_query(scope, filter="a != 'x' and b not like '%b%'")
    where = plan.where_sql("sqlite", "payload")
    assert where is not None
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id INTEGER, payload TEXT)")
    db.executemany(
        "INSERT INTO t VALUES (?, ?)", [(i, orjson.dumps(r)) for i, r in enumerate(records)]
    )
    ids = {i for (i,) in db.execute(f"SELECT id FROM t WHERE {where[0]}", where[1])}
    assert ids == {i for i, r in enumerate(records) if plan.matches(r)}
    assert 0 < len(ids) < len(records)
    assert plan_query(GrantScope("d", ("a",))).where_sql() is None


def test_paging_in_sql_by_key_with_cursors() -> None:
    """With no sort, a store pages in key order in SQL; the cursor carries only the key."""
    records = sample_records(150, seed=5)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (key TEXT PRIMARY KEY, payload TEXT)")
    db.executemany(
        "INSERT INTO t VALUES (?, ?)",
        [(f"k{i:04d}", orjson.dumps(r)) for i, r in enumerate(records)],
    )
    scope = GrantScope("d", ("a", "b"), row_filter=parse("c is not null"), grant_id="g-9")
    plan = plan_query(scope, filter="b != 1")
    where, params = plan.where_sql() or ("1", [])
    served: list[dict[str, Any]] = []
    cursor = None
    while True:
        after = "" if cursor is None else plan.decode_cursor(CODEC, cursor)[0]
        rows = db.execute(
            f"SELECT key, payload FROM t WHERE key > ? AND {where} ORDER BY key LIMIT 20",
            [after, *params],
        ).fetchall()
        page = [(k, orjson.loads(p)) for k, p in rows]
        served += [out for _, r in page if (out := plan.apply(r)) is not None]
        if len(page) < 20:
            break
        cursor = plan.encode_cursor(CODEC, *page[-1])
    assert served == [plan.project(r) for r in records if plan.matches(r)]
    assert 20 < len(served) < len(records)
    sorted_plan = plan_query(scope, sort="a")
    with pytest.raises(CursorError, match="another query"):
        sorted_plan.decode_cursor(CODEC, plan.encode_cursor(CODEC, "k0001", records[1]))


def test_masks_inside_lists() -> None:
    scope = GrantScope(
        "inspection",
        ("inspection_no", "inspectors"),
        masks=(MaskRule("inspectors[].name", "name"),),
    )
    record = {
        "inspection_no": "JC1",
        "inspectors": [{"name": "刘伟", "cert": "3301"}, {"name": "欧阳修远", "cert": "3302"}],
    }
    out = plan_query(scope).apply(record)
    assert out == {
        "inspection_no": "JC1",
        "inspectors": [{"name": "刘*", "cert": "3301"}, {"name": "欧阳**", "cert": "3302"}],
    }
    assert record["inspectors"][0]["name"] == "刘伟"  # type: ignore[index]
    for kw in ({"filter": "inspectors is null"}, {"sort": "inspectors"}):
        with pytest.raises(FieldNotGranted, match="masked"):
            plan_query(scope, **kw)  # type: ignore[arg-type]
    assert plan_query(scope, fields="inspection_no").apply(record) == {"inspection_no": "JC1"}


async def test_apage_streams_rows_and_matches_page() -> None:
    records = sample_records(400, seed=8)
    rows = [(f"k{i:04d}", r) for i, r in enumerate(records)]
    plan = plan_query(GrantScope("d", ("a", "b", "c")), filter="c is not null", sort="-a,b")
    read = 0

    async def stream() -> AsyncIterator[tuple[str, dict[str, Any]]]:
        nonlocal read
        for row in rows:
            read += 1
            yield row

    cursor = None
    pages = 0
    while True:
        want = plan.page(rows, 25, CODEC, cursor)
        got = await plan.apage(stream(), 25, CODEC, cursor)
        assert got == want
        pages += 1
        cursor = got.next_cursor
        if cursor is None:
            break
    assert pages > 5 and read == pages * len(rows)
