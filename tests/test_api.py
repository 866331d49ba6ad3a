"""The HTTP API against a real aiohttp server on 127.0.0.1, a real SQLite file and a real sink.

Every rejection must be an ``application/problem+json`` document with a stable ``code`` (and
the failing ``field`` where there is one), and must leave what was already accepted untouched.
"""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from contracts.samples import sample_inspection
from hub import __version__
from hub.api import HUB_KEY, create_app
from hub.peers.sink import Sink, SinkBehaviour
from hub.runtime import Hub
from tests.helpers import config, deep_record, wait_until

TOKEN = "s3cret-token-dept-a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECORDS = "/v1/systems/dept-a/records"
NDJSON = "application/x-ndjson"
LIMITS = {
    "max_body_bytes": 64 * 1024,
    "max_record_bytes": 8 * 1024,
    "max_batch_records": 20,
    "max_json_depth": 8,
}
BLOCKED_REGION = "330106"  # the sink refuses records of this region while it is blocked


@dataclass
class Api:
    """A running hub app with its sink and the path of its SQLite file."""

    client: TestClient[Any, Any]
    sink: Sink
    db: Path
    blocked: set[str]

    @property
    def hub(self) -> Hub:
        return self.client.app[HUB_KEY]  # type: ignore[index]

    async def post(
        self,
        body: Any,
        *,
        ctype: str | None = "application/json",
        headers: dict[str, str] | None = None,
        path: str = RECORDS,
    ) -> ClientResponse:
        h = dict(AUTH if headers is None else headers)
        if ctype is not None:
            h["Content-Type"] = ctype
        if callable(body):  # an async generator factory: a chunked body
            data = body()
        elif isinstance(body, bytes):
            data = body
        else:
            data = orjson.dumps(body)
        return await self.client.post(path, data=data, headers=h)

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Query the hub's SQLite file through a separate, read-only connection."""
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            return conn.execute(sql, args).fetchall()

    def counts(self) -> tuple[int, int]:
        """(messages, deliveries) committed to the file."""
        [(m,)] = self.rows("SELECT count(*) FROM messages")
        [(d,)] = self.rows("SELECT count(*) FROM deliveries")
        return m, d

    def payload(self, message_id: str) -> dict[str, Any]:
        [(raw,)] = self.rows("SELECT payload FROM messages WHERE id = ?", message_id)
        return orjson.loads(raw)  # type: ignore[no-any-return]

    async def message(self, message_id: str) -> dict[str, Any]:
        resp = await self.client.get(f"/v1/messages/{message_id}")
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]

    async def wait_status(self, message_id: str, status: str) -> dict[str, Any]:
        doc: dict[str, Any] = {}

        async def reached() -> bool:
            doc.update(await self.message(message_id))
            return bool(doc["status"] == status)

        await wait_until(reached, timeout=10, what=f"{message_id} {status}")
        return doc


@pytest.fixture
async def api(hub_client: Any, tmp_path: Path) -> AsyncIterator[Api]:
    blocked: set[str] = set()
    sink = Sink(
        "national",
        SinkBehaviour(
            reject=lambda r: (
                f"unknown region {r['region_code']}" if r["region_code"] in blocked else None
            )
        ),
    )
    await sink.start()
    try:
        cfg = config(tmp_path, {"national": {"url": sink.url}}, token=TOKEN, limits=LIMITS)
        client = await hub_client(create_app(cfg))
        yield Api(client, sink, tmp_path / "data" / "hub.db", blocked)
        await client.close()  # stop the hub before its target goes away
    finally:
        await sink.stop()


async def problem(
    resp: ClientResponse, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """Check an RFC 9457 problem document and return it."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/problem+json", text
    doc: dict[str, Any] = orjson.loads(text)
    assert doc["code"] == code, doc
    assert doc["status"] == status
    assert doc["type"].endswith(f"/{code}")
    assert doc["title"] and doc["detail"]
    assert doc["instance"] == resp.url.path
    if field is not None:
        assert doc.get("field") == field, doc
    return doc


def bad(i: int, *, drop: str = "inspection_no") -> dict[str, Any]:
    rec = sample_inspection(i)
    del rec[drop]
    return rec


# --------------------------------------------------------------------------- accepting


async def test_single_record_is_committed_before_202_and_traceable(api: Api) -> None:
    rec = sample_inspection(1)
    resp = await api.post(rec)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["accepted"] == 1 and body["ids"] == [body["id"]]
    mid = body["id"]
    # The 202 promises durability: the row is already in the file, seen by another connection.
    assert api.payload(mid)["inspection_no"] == rec["inspection_no"]

    doc = await api.message(mid)
    assert doc["id"] == mid and doc["source"] == "dept-a" and doc["dataset"] == "inspection"
    assert [s["step"] for s in doc["trace"][:2]] == ["received", "accepted"]
    assert doc["payload"]["inspection_no"] == rec["inspection_no"]

    doc = await api.wait_status(mid, "delivered")
    assert doc["trace"][-1]["step"] == "delivered" and doc["trace"][-1]["target"] == "national"
    assert doc["deliveries"][0]["state"] == "delivered"
    assert api.sink.applied[mid]["inspection_no"] == rec["inspection_no"]


async def test_json_array_batch_ids_in_order(api: Api) -> None:
    recs = [sample_inspection(i) for i in range(5)]
    resp = await api.post(recs)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["accepted"] == 5 and len(set(body["ids"])) == 5
    assert "id" not in body and "rejected" not in body
    for mid, rec in zip(body["ids"], recs, strict=True):
        assert api.payload(mid)["inspection_no"] == rec["inspection_no"]


@pytest.mark.parametrize("ctype", [NDJSON, "application/jsonl", "application/ndjson"])
async def test_ndjson_batch_ids_in_order(api: Api, ctype: str) -> None:
    recs = [sample_inspection(i) for i in range(4)]
    # blank lines (and a missing final newline) are allowed
    body = b"\n".join(orjson.dumps(r) for r in recs[:2]) + b"\n\n"
    body += b"\n".join(orjson.dumps(r) for r in recs[2:])
    resp = await api.post(body, ctype=ctype)
    assert resp.status == 202, await resp.text()
    ids = (await resp.json())["ids"]
    assert [api.payload(m)["inspection_no"] for m in ids] == [r["inspection_no"] for r in recs]


async def test_gzip_body_is_accepted(api: Api) -> None:
    recs = [sample_inspection(i) for i in range(3)]
    resp = await api.post(
        gzip.compress(orjson.dumps(recs)), headers={**AUTH, "Content-Encoding": "gzip"}
    )
    assert resp.status == 202, await resp.text()
    ids = (await resp.json())["ids"]
    assert [api.payload(m)["inspection_no"] for m in ids] == [r["inspection_no"] for r in recs]


async def test_partly_bad_batch_is_207_and_commits_only_the_good(api: Api) -> None:
    recs: list[Any] = [
        sample_inspection(0),
        bad(1),
        sample_inspection(2),
        {**sample_inspection(3), "inspection_time": "yesterday"},
        42,
    ]
    resp = await api.post(recs)
    assert resp.status == 207, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["code"] == "E_BATCH"
    assert body["accepted"] == 2 and body["accepted_indexes"] == [0, 2]
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [1, 3, 4]
    assert rejected[1]["code"] == "E_SCHEMA" and rejected[1]["field"] == "inspection_no"
    assert rejected[3]["code"] == "E_SCHEMA" and rejected[3]["field"] == "inspection_time"
    assert rejected[4]["code"] == "E_SCHEMA" and rejected[4]["field"] == "(record)"
    assert "record 1" in rejected[1]["detail"]

    assert api.counts() == (2, 2)
    stored = {api.payload(m)["inspection_no"] for m in body["ids"]}
    assert stored == {recs[0]["inspection_no"], recs[2]["inspection_no"]}
    [(n,)] = api.rows(
        "SELECT count(*) FROM messages WHERE payload LIKE ?",
        f"%{sample_inspection(3)['inspection_no']}%",
    )
    assert n == 0


async def test_batch_with_every_record_bad_is_422_e_batch(api: Api) -> None:
    resp = await api.post([bad(1), bad(2, drop="region_code")])
    doc = await problem(resp, 422, "E_BATCH")
    assert [(r["index"], r["code"], r["field"]) for r in doc["rejected"]] == [
        (0, "E_SCHEMA", "inspection_no"),
        (1, "E_SCHEMA", "region_code"),
    ]
    assert api.counts() == (0, 0)


async def test_oversized_record_in_batch_is_rejected_alone(api: Api) -> None:
    huge = {**sample_inspection(1), "business_address": "路" * 4000}
    resp = await api.post([sample_inspection(0), huge])
    assert resp.status == 207, await resp.text()
    [rej] = (await resp.json())["rejected"]
    assert rej["index"] == 1 and rej["code"] == "E_TOO_LARGE" and rej["field"] == "(record)"
    assert api.counts() == (1, 1)


async def test_idempotency_key_resend_returns_same_ids_and_routes_once(api: Api) -> None:
    one = {**AUTH, "Idempotency-Key": "dept-a-2024-0001"}
    first = await (await api.post(sample_inspection(1), headers=one)).json()
    again = await api.post(sample_inspection(1), headers=one)
    assert again.status == 202
    second = await again.json()
    assert second["id"] == first["id"] and second["duplicates"] == [0]
    assert "duplicates" not in first

    many = {**AUTH, "Idempotency-Key": "dept-a-batch-7"}
    recs = [sample_inspection(i) for i in range(10, 13)]
    b1 = await (await api.post(recs, headers=many)).json()
    b2 = await (await api.post(recs, headers=many)).json()
    assert b2["ids"] == b1["ids"] and b2["duplicates"] == [0, 1, 2]

    assert api.counts() == (4, 4)  # one message, one delivery each
    await wait_until(lambda: len(api.sink.applied) == 4, timeout=10, what="4 deliveries")
    await api.wait_status(b1["ids"][-1], "delivered")
    assert set(api.sink.applied) == {first["id"], *b1["ids"]}
    assert api.sink.requests == 4 and api.sink.redeliveries == 0
    keys = [k for (k,) in api.rows("SELECT idem_key FROM messages ORDER BY seq")]
    assert keys == ["dept-a-2024-0001", "dept-a-batch-7:0", "dept-a-batch-7:1", "dept-a-batch-7:2"]


async def test_reused_idempotency_key_with_other_payload_is_409_e_duplicate(api: Api) -> None:
    key = {**AUTH, "Idempotency-Key": "dept-a-2024-0002"}
    first = await (await api.post(sample_inspection(1), headers=key)).json()
    changed = {**sample_inspection(1), "inspection_result": "3"}
    doc = await problem(await api.post(changed, headers=key), 409, "E_DUPLICATE", "Idempotency-Key")
    assert doc["original_id"] == first["id"]
    assert api.counts() == (1, 1)
    assert (
        api.payload(first["id"])["inspection_result"] == sample_inspection(1)["inspection_result"]
    )
    # in a batch only the conflicting record is refused
    batch = {**AUTH, "Idempotency-Key": "dept-a-batch-9"}
    recs = [sample_inspection(i) for i in range(20, 23)]
    b1 = await (await api.post(recs, headers=batch)).json()
    recs[1] = {**recs[1], "submitter": "someone else"}
    resp = await api.post(recs, headers=batch)
    assert resp.status == 207
    b2 = await resp.json()
    assert b2["ids"] == [b1["ids"][0], b1["ids"][2]] and b2["duplicates"] == [0, 2]
    [rej] = b2["rejected"]
    assert (rej["index"], rej["code"], rej["field"]) == (1, "E_DUPLICATE", "Idempotency-Key")
    assert api.counts() == (4, 4)


async def test_one_element_array_is_a_batch_and_empty_array_is_refused(api: Api) -> None:
    key = {**AUTH, "Idempotency-Key": "k-one"}
    doc = await (await api.post([sample_inspection(1)], headers=key)).json()
    assert "id" not in doc and len(doc["ids"]) == 1
    [(k,)] = api.rows("SELECT idem_key FROM messages")
    assert k == "k-one:0"
    await problem(await api.post([]), 400, "E_JSON", "body")
    assert api.counts() == (1, 1)


async def test_ndjson_lines_are_judged_one_by_one(api: Api) -> None:
    """NDJSON lines are validated from their bytes: a bad line is rejected by index, the
    others are committed; a line that is not JSON at all refuses the body (see HOSTILE)."""
    lines = [
        orjson.dumps(sample_inspection(1)),
        orjson.dumps(deep_record(40)),  # too deep
        b"[1, 2]",  # not an object
        orjson.dumps(bad(4)),  # breaks its contract
        orjson.dumps({**sample_inspection(5), "business_address": "路" * 4000}),  # too large
        b"",
        orjson.dumps(sample_inspection(6)),
    ]
    resp = await api.post(b"\n".join(lines) + b"\n", ctype=NDJSON)
    assert resp.status == 207, await resp.text()
    doc = await resp.json()
    assert doc["accepted_indexes"] == [0, 5]  # the blank line is not a record
    got = [(r["index"], r["code"], r["field"]) for r in doc["rejected"]]
    assert got == [
        (1, "E_TOO_DEEP", "(record)"),
        (2, "E_SCHEMA", "(record)"),
        (3, "E_SCHEMA", "inspection_no"),
        (4, "E_TOO_LARGE", "(record)"),
    ]
    assert "line 7" not in str(doc) and "(line 5)" in doc["rejected"][3]["detail"]
    assert api.counts() == (2, 2)


# --------------------------------------------------------------------------- refusing


async def _chunked_too_large() -> AsyncIterator[bytes]:
    for _ in range(20):
        yield b" " * 4096  # 80 KiB in chunks, no Content-Length


@dataclass
class Hostile:
    name: str
    status: int
    code: str
    field: str | None
    body: Any = b"{}"
    ctype: str | None = "application/json"
    headers: dict[str, str] | None = None
    path: str = RECORDS
    method: str = "POST"


HOSTILE = [
    Hostile("malformed JSON", 400, "E_JSON", "body", b'{"inspection_no": '),
    Hostile("invalid UTF-8", 400, "E_JSON", "body", b'{"a": "\xff"}'),
    Hostile("NaN is not JSON", 400, "E_JSON", "body", b'{"a": NaN}'),
    Hostile(
        "invalid NDJSON line",
        400,
        "E_JSON",
        "line 2",
        orjson.dumps(sample_inspection(1)) + b"\n{oops\n",
        NDJSON,
    ),
    Hostile("wrong Content-Type", 415, "E_MEDIA_TYPE", "Content-Type", b"a,b,c", "text/csv"),
    Hostile("form Content-Type", 415, "E_MEDIA_TYPE", "Content-Type", b"a=1", "multipart/x"),
    Hostile("body over limit", 413, "E_TOO_LARGE", "body", b" " * (LIMITS["max_body_bytes"] + 1)),
    Hostile("chunked body over limit", 413, "E_TOO_LARGE", "body", _chunked_too_large),
    Hostile("too many records", 413, "E_TOO_LARGE", "body", b"[" + b",".join([b"{}"] * 21) + b"]"),
    Hostile("JSON nested too deep", 400, "E_TOO_DEEP", "(record)", orjson.dumps(deep_record(10))),
    Hostile("non-object record", 422, "E_SCHEMA", "(record)", b"42"),
    Hostile("null record", 422, "E_SCHEMA", "(record)", b"null"),
    Hostile("record failing its contract", 422, "E_SCHEMA", "inspection_no", orjson.dumps(bad(1))),
    Hostile("empty body", 400, "E_JSON", "body", b""),
    Hostile("blank body", 400, "E_JSON", "body", b" \n\t\n"),
    Hostile(
        "corrupt gzip body",
        400,
        "E_JSON",
        "body",
        b"not gzip at all",
        headers={**AUTH, "Content-Encoding": "gzip"},
    ),
    Hostile(
        "gzip bomb over limit",  # small on the wire, the limit counts what it inflates to
        413,
        "E_TOO_LARGE",
        "body",
        gzip.compress(b"[" + b" " * (LIMITS["max_body_bytes"] * 4) + b"]"),
        headers={**AUTH, "Content-Encoding": "gzip"},
    ),
    Hostile("unknown system", 404, "E_UNKNOWN_SYSTEM", "system", path="/v1/systems/nope/records"),
    Hostile(
        "system without inbound",
        404,
        "E_UNKNOWN_SYSTEM",
        "system",
        path="/v1/systems/national/records",
    ),
    Hostile(
        "dataset not allowed",
        422,
        "E_UNKNOWN_DATASET",
        "dataset",
        orjson.dumps(sample_inspection(1)),
        path=f"{RECORDS}?dataset=catalog_item",
    ),
    Hostile(
        "dataset not registered",
        422,
        "E_UNKNOWN_DATASET",
        "dataset",
        path=f"{RECORDS}?dataset=no_such_dataset",
    ),
    Hostile("missing bearer token", 401, "E_AUTH", "Authorization", headers={}),
    Hostile(
        "wrong bearer token",
        401,
        "E_AUTH",
        "Authorization",
        headers={"Authorization": "Bearer s3cret-token-dept-b"},
    ),
    Hostile(
        "token without Bearer scheme",
        401,
        "E_AUTH",
        "Authorization",
        headers={"Authorization": f"Basic {TOKEN}x"},
    ),
    Hostile("unknown route", 404, "E_NOT_FOUND", None, path="/v1/nothing/here", method="GET"),
    Hostile("wrong method", 405, "E_METHOD", None, method="GET"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[h.name for h in HOSTILE])
async def test_hostile_request_is_refused_without_harm(api: Api, case: Hostile) -> None:
    accepted = (await (await api.post([sample_inspection(100), sample_inspection(101)])).json())[
        "ids"
    ]
    for mid in accepted:
        await api.wait_status(mid, "delivered")
    before = api.counts()
    applied = dict(api.sink.applied)

    if case.method == "POST":
        resp = await api.post(case.body, ctype=case.ctype, headers=case.headers, path=case.path)
    else:
        resp = await api.client.request(case.method, case.path, headers=AUTH)
    doc = await problem(resp, case.status, case.code, case.field)
    if case.field and case.field.startswith("line "):
        assert doc["line"] == 2 and "line 2" in doc["detail"]

    # refused without harming anything already accepted
    assert api.counts() == before
    assert api.sink.applied == applied
    for mid in accepted:
        assert (await api.message(mid))["status"] == "delivered"
    # ... and the hub still takes good records afterwards
    resp = await api.post(sample_inspection(102))
    assert resp.status == 202, await resp.text()
    assert api.counts() == (before[0] + 1, before[1] + 1)


async def test_unknown_message_is_404(api: Api) -> None:
    doc = await problem(await api.client.get("/v1/messages/no-such-id"), 404, "E_NOT_FOUND", "id")
    assert "no-such-id" in doc["detail"]


# --------------------------------------------------------------------------- dead letters


async def _dead_letter(api: Api, i: int) -> tuple[str, int]:
    """Post a record the sink refuses; return (message id, delivery id) once it is dead."""
    api.blocked.add(BLOCKED_REGION)
    mid = (await (await api.post(sample_inspection(i, region=BLOCKED_REGION))).json())["id"]
    await api.wait_status(mid, "dead-lettered")
    items = (await (await api.client.get("/v1/dlq")).json())["items"]
    [item] = [d for d in items if d["message_id"] == mid]
    return mid, item["delivery_id"]


async def test_dlq_list_then_replay_once_target_fixed(api: Api) -> None:
    mid, did = await _dead_letter(api, 1)
    resp = await api.client.get("/v1/dlq", params={"target": "national", "limit": "10"})
    assert resp.status == 200 and resp.content_type == "application/json"
    [item] = (await resp.json())["items"]
    assert item["delivery_id"] == did and item["message_id"] == mid
    assert item["target"] == "national" and item["route"] == "inspection-out"
    assert item["last_status"] == 422 and f"unknown region {BLOCKED_REGION}" in item["reason"]
    assert item["attempts"] == 1  # a 422 is permanent: no retry
    other = await api.client.get("/v1/dlq", params={"target": "someone-else"})
    assert (await other.json())["items"] == []

    api.blocked.clear()  # the target's code table was fixed
    resp = await api.client.post(f"/v1/dlq/{did}/replay")
    assert resp.status == 200 and await resp.json() == {"replayed": 1}
    doc = await api.wait_status(mid, "delivered")
    steps = [s["step"] for s in doc["trace"]]
    assert steps[-3:] == ["dead-lettered", "replayed", "delivered"]
    assert mid in api.sink.applied
    assert (await (await api.client.get("/v1/dlq")).json())["items"] == []
    # no longer a dead letter
    await problem(await api.client.post(f"/v1/dlq/{did}/replay"), 404, "E_NOT_FOUND", "id")


async def test_dlq_discard_keeps_reason_in_trace(api: Api) -> None:
    mid, did = await _dead_letter(api, 2)
    resp = await api.client.post(
        f"/v1/dlq/{did}/discard", params={"reason": "duplicate of JC-17, fixed by hand"}
    )
    assert resp.status == 200 and await resp.json() == {"discarded": 1}
    doc = await api.message(mid)
    assert doc["deliveries"][0]["state"] == "discarded"
    assert doc["status"] == "delivered"  # nothing left to do for this message
    last = doc["trace"][-1]
    assert last["step"] == "discarded" and last["detail"] == "duplicate of JC-17, fixed by hand"
    assert (await (await api.client.get("/v1/dlq")).json())["items"] == []
    assert mid not in api.sink.applied
    await problem(await api.client.post(f"/v1/dlq/{did}/discard"), 404, "E_NOT_FOUND", "id")


@pytest.mark.parametrize("action", ["replay", "discard"])
@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        ("424242", 404, "E_NOT_FOUND"),
        ("9999999999999999999", 404, "E_NOT_FOUND"),  # beyond any SQLite row id
        ("99999999999999999999999", 400, "E_PARAM"),  # longer than any id can be
        ("9" * 5000, 400, "E_PARAM"),  # int() would refuse it: no 500
        ("abc", 400, "E_PARAM"),
        ("-1", 400, "E_PARAM"),
        ("1.5", 400, "E_PARAM"),
        ("%C2%B2", 400, "E_PARAM"),  # "²": str.isdigit() says yes, int() says no
    ],
)
async def test_dlq_bad_ids(api: Api, action: str, raw: str, status: int, code: str) -> None:
    await _dead_letter(api, 3)
    resp = await api.client.post(f"/v1/dlq/{raw}/{action}")
    await problem(resp, status, code, "id")
    assert len((await (await api.client.get("/v1/dlq")).json())["items"]) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=5000", "limit"),
        ("limit=" + "9" * 5000, "limit"),
        ("offset=-3", "offset"),
        ("limit=²", "limit"),
    ],
)
async def test_dlq_list_bad_query(api: Api, query: str, field: str) -> None:
    doc = await problem(await api.client.get(f"/v1/dlq?{query}"), 400, "E_PARAM", field)
    assert f"query parameter {field}" in doc["detail"]


# --------------------------------------------------------------------------- operations


async def test_stats_counts_routes_and_states(api: Api) -> None:
    ids = (await (await api.post([sample_inspection(i) for i in range(3)])).json())["ids"]
    await _dead_letter(api, 9)
    for mid in ids:
        await api.wait_status(mid, "delivered")
    resp = await api.client.get("/v1/stats")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    [route] = doc["routes"]
    assert (route["route"], route["target"]) == ("inspection-out", "national")
    assert (route["total"], route["delivered"], route["dead"], route["pending"]) == (4, 3, 1, 0)
    assert route["p50_ms"] is not None and route["p50_ms"] <= route["p99_ms"]
    assert doc["counts"]["messages"] == 4
    assert (doc["counts"]["delivered"], doc["counts"]["dead"]) == (3, 1)


async def test_healthz_and_readyz(api: Api) -> None:
    resp = await api.client.get("/healthz")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == {"status": "ok", "version": __version__}

    resp = await api.client.get("/readyz")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["status"] == "ready" and doc["problems"] == []
    assert doc["targets"]["national"]["circuit"] == "closed"

    await api.hub.dispatcher.stop()  # a hub that does not deliver is not ready
    resp = await api.client.get("/readyz")
    assert resp.status == 503
    doc = await resp.json()
    assert doc["status"] == "not ready" and doc["problems"] == ["dispatcher is not running"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/systems/x'%3B%20DROP%20TABLE%20messages%3B--/records",
        "/v1/messages/'%20OR%201%3D1%20--",
        "/v1/dlq?target='%20OR%20'1'%3D'1",
    ],
)
async def test_injection_attempts_are_plain_data(api: Api, path: str) -> None:
    """Every SQL statement is parameterised: hostile text is looked up, not executed."""
    ok = await api.post(sample_inspection(1))
    assert ok.status == 202
    before = api.counts()
    method = "POST" if path.endswith("/records") else "GET"
    resp = await api.client.request(method, path, headers=AUTH, data=b"{}")
    if method == "POST":
        await problem(resp, 404, "E_UNKNOWN_SYSTEM", "system")
    elif path.startswith("/v1/messages/"):
        await problem(resp, 404, "E_NOT_FOUND", "id")
    else:
        assert resp.status == 200 and (await resp.json())["items"] == []
    assert api.counts() == before
    # a record whose text looks like SQL is stored as text, byte for byte
    sneaky = {**sample_inspection(2), "inspection_name": "检查'); DELETE FROM deliveries; --"}
    doc = await (await api.post(sneaky)).json()
    assert api.payload(doc["id"])["inspection_name"] == sneaky["inspection_name"]
    assert api.counts() == (before[0] + 1, before[1] + 1)
