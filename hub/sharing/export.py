"""Bulk download (批量下载) of a grant's slice as CSV or JSON Lines, streamed.

Public interface::

    stream_export(records, plan, fmt, *, max_records=None, chunk_bytes=65536,
                  generated_at=None, csv_formula_guard=True) -> ExportStream
    ExportStream                      # an AsyncIterator[bytes]; iterate it once
        .digest: ExportDigest         # count, sha256, bytes so far; final when .complete
        .manifest() -> dict           # after the stream ended (StateError before)
        .manifest_bytes() -> bytes    # the manifest as JSON
    ExportDigest(dataset, grant_id, fields, format, count, sha256, size, complete,
                 truncated, generated_at, csv_formula_guard)
    guard_formula(text) -> str        # a text cell a spreadsheet would run, made inert
    EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
    async send_export(request, stream, *, filename, manifest_url=None, headers=None)
        -> web.StreamResponse     # chunked body, Content-Disposition, Link to the manifest

``records`` is any async iterable of records (dicts as stored); every record goes through
``plan.apply`` (the grant's row filter AND the request's filter, whitelist projection, masks),
so an export can never hold more than a query would show, even when the store pre-selected
with ``plan.where_sql``. Output is produced in chunks of about ``chunk_bytes``; nothing but the
current chunk is held, so memory does not grow with the size of the export.

Formats:

* ``csv``: RFC 4180 (``csv`` module, ``\\r\\n``, quotes where needed), UTF-8 without BOM, a header
  row of the plan's fields; ``None`` / absent is an empty cell, booleans are ``true`` /
  ``false``, nested objects and lists are their compact JSON text. With ``csv_formula_guard``
  (the default) a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return gets a leading ``'`` (OWASP "CSV injection"), so a spreadsheet shows it instead of
  running it as a formula (``=HYPERLINK(...)``, ``@SUM(...)``, DDE). Numbers are never
  prefixed (``-3.5`` stays a number: a number cannot be a formula). The manifest says
  ``"csv_formula_guard": true|false``; its SHA-256 is of the bytes sent, guard included.
* ``jsonl``: one compact JSON object per line (``\\n``), fields in the plan's order.

The manifest (清单) is known only once the last byte is out::

    {"dataset": ..., "grant_id": ..., "fields": [...], "format": "csv", "count": 1234,
     "sha256": "<hex of every byte of the body>", "bytes": 56789, "complete": true,
     "truncated": false, "generated_at": "2026-11-29T08:00:00+08:00",
     "csv_formula_guard": true}                     # CSV only

How the HTTP layer should deliver it: stream the body with :func:`send_export` (chunked),
then store the manifest with the export's id (the audit record of the download) and serve it
at a manifest URL announced up front in a ``Link: <.../manifest>; rel="describedby"`` header.
HTTP trailers are not used (aiohttp cannot send them and most clients drop them). A client
recomputes the SHA-256 of what it received and compares it with the manifest; a body cut
short by a broken connection never matches, and its manifest says ``complete: false``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import orjson
from aiohttp import hdrs, web

from hub.errors import BadParameter, StateError
from hub.sharing.enforce import Plan

__all__ = [
    "EXPORT_FORMATS",
    "FORMULA_TRIGGERS",
    "ExportDigest",
    "ExportFormat",
    "ExportStream",
    "guard_formula",
    "send_export",
    "stream_export",
]

ExportFormat = Literal["csv", "jsonl"]
EXPORT_FORMATS: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
}


#: first characters that make a spreadsheet read a cell as a formula (OWASP CSV injection)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def guard_formula(text: str) -> str:
    """``text`` with a leading ``'`` when it begins with a formula trigger, else unchanged."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


@dataclass
class ExportDigest:
    """Running totals of an export; final (``complete``) once the stream has ended."""

    dataset: str
    grant_id: str
    fields: list[str]
    format: str
    generated_at: str
    count: int = 0
    size: int = 0  # bytes of the body ("bytes" in the manifest)
    sha256: str = ""
    complete: bool = False
    truncated: bool = False
    #: CSV text cells starting with a formula trigger were prefixed with ' (None: not CSV)
    csv_formula_guard: bool | None = None
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)

    def _feed(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def manifest(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "grant_id": self.grant_id,
            "fields": list(self.fields),
            "format": self.format,
            "count": self.count,
            "sha256": self.sha256,
            "bytes": self.size,
            "complete": self.complete,
            "truncated": self.truncated,
            "generated_at": self.generated_at,
            **(
                {}
                if self.csv_formula_guard is None
                else {"csv_formula_guard": self.csv_formula_guard}
            ),
        }


def _cell(v: Any) -> str:
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if v is None:
        return ""
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        return repr(v)
    if isinstance(v, str):
        return str(v)
    return orjson.dumps(v).decode("utf-8")


def _guarded_cell(v: Any) -> str:
    """:func:`_cell`, a text value made inert for spreadsheets; numbers, booleans and nested
    values are written as :func:`_cell` writes them (``-3.5`` is a number, not a formula)."""
    if isinstance(v, str):
        return guard_formula(v)
    return _cell(v)


def _at(record: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = record
    for p in parts:
        if not isinstance(node, Mapping):
            return None
        node = node.get(p)
    return node


class ExportStream:
    """The body of one export as an async iterator of byte chunks (iterate once)."""

    def __init__(
        self,
        records: AsyncIterable[Mapping[str, Any]],
        plan: Plan,
        fmt: str,
        *,
        max_records: int | None = None,
        chunk_bytes: int = 65536,
        generated_at: dt.datetime | None = None,
        csv_formula_guard: bool = True,
    ) -> None:
        if fmt not in EXPORT_FORMATS:
            raise BadParameter(
                f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}", field="format"
            )
        if max_records is not None and max_records < 0:
            raise ValueError("max_records must be >= 0")
        self._records = records
        self._plan = plan
        self._fmt = fmt
        self._max = max_records
        self._chunk = max(1024, chunk_bytes)
        when = generated_at or dt.datetime.now(dt.UTC)
        self.digest = ExportDigest(
            dataset=plan.scope.dataset,
            grant_id=plan.scope.grant_id,
            fields=list(plan.fields),
            format=fmt,
            generated_at=when.isoformat(),
            csv_formula_guard=bool(csv_formula_guard) if fmt == "csv" else None,
        )
        self._started = False
        self._iter: AsyncIterator[bytes] | None = None

    @property
    def media_type(self) -> str:
        return EXPORT_FORMATS[self._fmt]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._iter is None:
            if self._started:
                raise StopAsyncIteration
            self._started = True
            self._iter = self._body()
        return await self._iter.__anext__()

    async def aclose(self) -> None:
        """Stop the export (the client went away); the manifest stays unknown."""
        self._started = True
        if self._iter is not None:
            it, self._iter = self._iter, None
            await it.aclose()  # type: ignore[attr-defined]

    def manifest(self) -> dict[str, Any]:
        """The manifest; only once the stream has ended (``E_STATE`` before)."""
        if not self.digest.complete:
            raise StateError("the export has not finished; its manifest is not known yet")
        return self.digest.manifest()

    def manifest_bytes(self) -> bytes:
        return orjson.dumps(self.manifest(), option=orjson.OPT_INDENT_2)

    async def _body(self) -> AsyncIterator[bytes]:
        d = self.digest
        plan = self._plan
        buf = io.StringIO() if self._fmt == "csv" else None
        parts: list[bytes] = []
        size = 0
        writer = None
        paths = tuple(tuple(p.split(".")) for p in plan.fields)
        flat = None if any(len(p) > 1 for p in paths) else tuple(p[0] for p in paths)
        cell = _guarded_cell if d.csv_formula_guard else _cell
        if buf is not None:
            writer = csv.writer(buf, lineterminator="\r\n")
            writer.writerow(plan.fields)
        async for record in self._records:
            out = plan.apply(record)
            if out is None:
                continue
            if self._max is not None and d.count >= self._max:
                d.truncated = True
                break
            d.count += 1
            if writer is not None and buf is not None:
                if flat is not None:
                    writer.writerow([cell(out.get(k)) for k in flat])
                else:
                    writer.writerow([cell(_at(out, p)) for p in paths])
                if buf.tell() >= self._chunk:
                    chunk = buf.getvalue().encode("utf-8")
                    buf.seek(0)
                    buf.truncate()
                    d._feed(chunk)
                    yield chunk
            else:
                line = orjson.dumps(out) + b"\n"
                parts.append(line)
                size += len(line)
                if size >= self._chunk:
                    chunk = b"".join(parts)
                    parts.clear()
                    size = 0
                    d._feed(chunk)
                    yield chunk
        tail = buf.getvalue().encode("utf-8") if buf is not None else b"".join(parts)
        if tail:
            d._feed(tail)
            yield tail
        d.sha256 = d._hash.hexdigest()
        d.complete = True


async def send_export(
    request: web.Request,
    stream: ExportStream,
    *,
    filename: str,
    manifest_url: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Send ``stream`` as the chunked body of the response to ``request``.

    Sets ``Content-Type`` from the format, ``Content-Disposition: attachment`` with
    ``filename`` (RFC 6266, UTF-8 names allowed), ``Link: <manifest_url>; rel="describedby"``
    when given, and ``Cache-Control: no-store``. When the client goes away the stream is
    closed (its manifest stays ``complete: false``) and the error propagates."""
    resp = web.StreamResponse(status=200)
    resp.content_type = stream.media_type.split(";")[0]
    if stream.media_type.startswith("text/"):
        resp.charset = "utf-8"
    resp.headers[hdrs.CONTENT_DISPOSITION] = _disposition(filename)
    resp.headers[hdrs.CACHE_CONTROL] = "no-store"
    if manifest_url is not None:
        resp.headers[hdrs.LINK] = f'<{manifest_url}>; rel="describedby"'
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        async for chunk in stream:
            await resp.write(chunk)
    except BaseException:
        await stream.aclose()
        raise
    await resp.write_eof()
    return resp


def _disposition(filename: str) -> str:
    safe = "".join(c for c in filename if c.isprintable() and c not in '"\\/;') or "export"
    ascii_name = safe.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(safe)}"


def stream_export(
    records: AsyncIterable[Mapping[str, Any]],
    plan: Plan,
    fmt: str,
    *,
    max_records: int | None = None,
    chunk_bytes: int = 65536,
    generated_at: dt.datetime | None = None,
    csv_formula_guard: bool = True,
) -> ExportStream:
    """Stream ``records`` through ``plan`` as ``fmt`` (``csv`` or ``jsonl``); read the
    manifest from the returned stream after the last chunk. ``csv_formula_guard`` (CSV only)
    makes text cells a spreadsheet would run as formulas inert (see the module docstring)."""
    return ExportStream(
        records,
        plan,
        fmt,
        max_records=max_records,
        chunk_bytes=chunk_bytes,
        generated_at=generated_at,
        csv_formula_guard=csv_formula_guard,
    )
