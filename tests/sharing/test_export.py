"""Streamed bulk export: CSV and JSON Lines of the granted slice, manifest, bounded memory."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import tracemalloc
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import orjson
import pytest
from aiohttp import web

from hub.errors import BadParameter, StateError
from hub.sharing.enforce import GrantScope, plan_query
from hub.sharing.export import EXPORT_FORMATS, ExportStream, send_export, stream_export
from hub.sharing.filterlang import parse
from security.masking import MaskRule

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)

SCOPE = GrantScope(
    dataset="licence",
    fields=("id", "name", "phone", "amount", "ok", "meta", "owner.name"),
    row_filter=parse("region = '330100'"),
    masks=(MaskRule("phone", "phone"),),
    grant_id="g-42",
)

ROWS: list[dict[str, Any]] = [
    {
        "id": "1",
        "name": 'Acme, "quoted"\r\nline 2',
        "phone": "13812345678",
        "amount": 1.5,
        "ok": True,
        "meta": {"k": [1, "张"]},
        "owner": {"name": "李四", "id_card": "11010519491231002X"},
        "region": "330100",
        "secret": "S-1",
    },
    {"id": "2", "name": "drop me", "region": "330200", "secret": "S-2"},
    {"id": "3", "name": "=1+1", "amount": 0, "ok": False, "region": "330100", "secret": "S-3"},
]


async def _aiter(rows: Iterable[Mapping[str, Any]]) -> AsyncIterator[Mapping[str, Any]]:
    for r in rows:
        yield r


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_csv_is_rfc4180_of_the_granted_projection() -> None:
    plan = plan_query(SCOPE)
    stream = stream_export(_aiter(ROWS), plan, "csv", generated_at=T0)
    with pytest.raises(StateError):
        stream.manifest()  # not before the end
    body = await _collect(stream)
    assert stream.media_type == EXPORT_FORMATS["csv"] == "text/csv; charset=utf-8"
    assert not body.startswith(b"\xef\xbb\xbf") and b"\r\n" in body
    table = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert table == [
        ["id", "name", "phone", "amount", "ok", "meta", "owner.name"],
        ["1", 'Acme, "quoted"\r\nline 2', "138****5678", "1.5", "true", '{"k":[1,"张"]}', "李四"],
        ["3", "'=1+1", "", "0", "false", "", ""],  # formula guard (on by default)
    ]
    for leak in (b"S-1", b"S-3", b"330100", b"13812345678", b"11010519491231002X", b"drop me"):
        assert leak not in body
    assert stream.manifest() == {
        "dataset": "licence",
        "grant_id": "g-42",
        "fields": ["id", "name", "phone", "amount", "ok", "meta", "owner.name"],
        "format": "csv",
        "count": 2,
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes": len(body),
        "complete": True,
        "truncated": False,
        "generated_at": "2026-03-02T08:00:00+00:00",
        "csv_formula_guard": True,
    }
    assert orjson.loads(stream.manifest_bytes())["sha256"] == hashlib.sha256(body).hexdigest()


async def test_jsonl_with_request_fields_and_filter() -> None:
    plan = plan_query(SCOPE, fields="owner.name,id", filter="amount >= 0")
    stream = stream_export(_aiter(ROWS), plan, "jsonl")
    body = await _collect(stream)
    lines = body.split(b"\n")
    assert lines[-1] == b""
    assert [orjson.loads(x) for x in lines[:-1]] == [
        {"owner": {"name": "李四"}, "id": "1"},
        {"id": "3"},
    ]
    m = stream.manifest()
    assert m["count"] == 2 and m["format"] == "jsonl" and m["fields"] == ["owner.name", "id"]
    assert m["sha256"] == hashlib.sha256(body).hexdigest()


async def test_max_records_truncates_and_says_so() -> None:
    rows = [{"id": str(i), "region": "330100"} for i in range(10)]
    stream = stream_export(_aiter(rows), plan_query(SCOPE, fields="id"), "jsonl", max_records=4)
    body = await _collect(stream)
    assert body.count(b"\n") == 4
    m = stream.manifest()
    assert (m["count"], m["truncated"], m["complete"]) == (4, True, True)


async def test_an_unfinished_stream_has_no_manifest() -> None:
    rows = ({"id": "x" * 100, "region": "330100"} for _ in range(5000))
    stream = stream_export(_aiter(rows), plan_query(SCOPE, fields="id"), "csv", chunk_bytes=4096)
    async for _chunk in stream:
        break  # the client went away: the HTTP handler closes the stream
    await stream.aclose()
    assert not stream.digest.complete and stream.digest.count > 0
    with pytest.raises(StateError) as exc:
        stream.manifest()
    assert exc.value.code == "E_STATE"
    assert [c async for c in stream] == []  # iterated once only


def test_unknown_format_is_refused() -> None:
    with pytest.raises(BadParameter) as exc:
        stream_export(_aiter([]), plan_query(SCOPE), "xlsx")
    assert exc.value.code == "E_PARAM" and exc.value.field == "format"


async def test_an_empty_export_has_a_header_and_a_manifest() -> None:
    stream = stream_export(_aiter([]), plan_query(SCOPE, fields="id,name"), "csv")
    assert await _collect(stream) == b"id,name\r\n"
    assert stream.manifest()["count"] == 0


async def _export_peak(fmt: str, n: int) -> tuple[int, int]:
    """Stream ``n`` generated records; return (traced peak memory, bytes streamed)."""

    async def records() -> AsyncIterator[Mapping[str, Any]]:
        for i in range(n):
            yield {
                "id": f"{i:08d}",
                "name": f"企业名称{i}号有限公司",
                "phone": f"138{i:08d}",
                "amount": i * 0.5,
                "ok": i % 2 == 0,
                "region": "330100" if i % 10 else "330200",
                "secret": f"S-{i}",
            }

    plan = plan_query(SCOPE, fields="id,name,phone,amount,ok")
    stream = stream_export(records(), plan, fmt)
    digest = hashlib.sha256()
    size = 0
    tracemalloc.start()
    try:
        async for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    m = stream.manifest()
    assert m["count"] == n - n // 10  # every tenth row is another region's
    assert m["sha256"] == digest.hexdigest() and m["bytes"] == size
    return peak, size


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_memory_does_not_grow_with_the_export(fmt: str) -> None:
    """Six times the records, the same peak: nothing accumulates (tracemalloc, not timings;
    sizes kept moderate because tracing every allocation is slow)."""
    small_peak, small_size = await _export_peak(fmt, 10_000)
    peak, size = await _export_peak(fmt, 60_000)
    assert size > 5 * small_size and size > 3_000_000
    assert peak < 1_000_000, f"peak {peak} bytes while streaming {size} bytes"
    assert peak < small_peak * 1.5 + 200_000, (small_peak, peak)


# --------------------------------------------------------------------------- over HTTP


async def test_send_export_over_http(aiohttp_client: Any) -> None:
    """A real aiohttp server streams the export; the client checks the manifest's SHA-256;
    a client that goes away leaves an incomplete manifest."""
    exports: dict[str, ExportStream] = {}
    finished: dict[str, asyncio.Event] = {"full": asyncio.Event(), "cut": asyncio.Event()}

    async def records(n: int) -> AsyncIterator[Mapping[str, Any]]:
        for i in range(n):
            yield {"id": f"{i:06d}", "name": f"名称{i}", "region": "330100", "secret": "S-x"}

    async def download(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        n = 30_000 if name == "full" else 400_000
        fmt = request.query.get("format", "csv")
        stream = stream_export(records(n), plan_query(SCOPE, fields="id,name"), fmt)
        exports[name] = stream
        try:
            return await send_export(
                request,
                stream,
                filename=f"许可-{name}.{fmt}",
                manifest_url=f"/exports/{name}/manifest",
            )
        finally:
            finished[name].set()

    async def manifest(request: web.Request) -> web.Response:
        stream = exports[request.match_info["name"]]
        return web.json_response(
            stream.manifest() if stream.digest.complete else {"complete": False}
        )

    app = web.Application()
    app.router.add_get("/exports/{name}", download)
    app.router.add_get("/exports/{name}/manifest", manifest)
    client = await aiohttp_client(app)

    resp = await client.get("/exports/full")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Link"] == '</exports/full/manifest>; rel="describedby"'
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"__-full.csv\"; filename*=UTF-8''%E8%AE%B8%E5%8F%AF-full.csv"
    )
    assert resp.headers["Transfer-Encoding"] == "chunked"
    digest = hashlib.sha256()
    async for chunk in resp.content.iter_chunked(65536):
        digest.update(chunk)
    m = await (await client.get("/exports/full/manifest")).json()
    assert m["complete"] and m["count"] == 30_000 and m["sha256"] == digest.hexdigest()

    resp = await client.get("/exports/cut")
    await resp.content.read(10_000)
    resp.close()  # the client goes away mid-download
    await asyncio.wait_for(finished["cut"].wait(), 30)
    assert (await (await client.get("/exports/cut/manifest")).json()) == {"complete": False}
    assert 0 < exports["cut"].digest.count < 400_000
