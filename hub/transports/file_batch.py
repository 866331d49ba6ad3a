"""``file_batch`` (批量交换): batch files in a drop folder, both directions.

Inbound (source ``kind: file_batch``) the hub polls a folder (an SFTP drop folder is just a
folder here) for ``<file>.manifest.json`` files. A data file is taken only once its manifest
exists, so a half-written file is never read. The manifest names the file, its record count and
SHA-256 (optionally the dataset and encoding); a mismatch moves both to ``failed/`` with a
``<file>.error.json`` and nothing is ingested. A good file is ingested in chunks with the keys
``sha256:<file digest>:<record no>``; rejected records are quarantined by the hub and listed in
``done/<file>.report.json``; then the file and its manifest move to ``done/``. A file whose digest
was committed before (any name) is moved to ``done/`` as a duplicate without ingesting.

Outbound (transport ``file_batch``) each batch of deliveries becomes one JSON Lines or CSV file
plus its manifest, written atomically (temporary name, fsync, rename; manifest last). The file
name derives from the batch's message ids, so a retried batch rewrites the same file.

Crash semantics are documented in ``docs/transports.md`` (``## file_batch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.errors import (
    EmptyFileError,
    EncodingError,
    FileFormatError,
    HubError,
    ManifestError,
    PathError,
    SignatureError,
    TooLargeError,
    UnknownDataset,
)
from hub.specs import (
    OutboundItem,
    RawLines,
    SendResult,
    Signer,
    SourceContext,
    SourceSpec,
    TransportSpec,
)
from hub.transports import SignsWithHubKey

__all__ = [
    "MANIFEST_SUFFIX",
    "FileBatchOutOptions",
    "FileBatchSource",
    "FileBatchSourceOptions",
    "FileBatchTransport",
    "Manifest",
    "ParsedBatch",
    "check_file_name",
    "escape_csv_cell",
    "parse_batch",
    "source_spec",
    "spec",
    "write_batch_file",
]

MANIFEST_SUFFIX = ".manifest.json"
Encoding = Literal["utf-8", "gbk", "gb18030"]
Format = Literal["csv", "jsonl", "xml"]
_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xml": "xml",
}
_MAX_MANIFEST_BYTES = 64 * 1024
#: cells a spreadsheet would evaluate as a formula (OWASP "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Manifest(BaseModel):
    """``<file>.manifest.json``: what the sender says the batch file holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(description="the data file's name, in the same folder")
    records: int = Field(ge=0, description="how many records the file holds")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 of the file's bytes")
    dataset: str | None = Field(None, description="the dataset of every record (default: config)")
    encoding: Encoding | None = Field(None, description="text encoding (default: config)")
    format: Format | None = Field(None, description="csv, jsonl or xml (default: by extension)")
    signature: str | None = Field(
        None,
        description="detached signature of the file's exact bytes (security.httpsig."
        "sign_detached) by one of the sender's keys",
    )


class FileBatchSourceOptions(BaseModel):
    """Options of the ``file_batch`` source (``inbound.source:`` with ``kind: file_batch``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: Path = Field(description="the drop folder; done/ and failed/ are made inside")
    poll_interval: float = Field(2.0, gt=0, description="seconds between scans of the folder")
    format: Format | None = Field(None, description="csv, jsonl or xml (default: by extension)")
    encoding: Encoding = Field("utf-8", description="default when the manifest names none")
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field separator")
    json_columns: list[str] = Field(
        default_factory=list, description="CSV columns whose cells hold JSON (lists, objects)"
    )
    record_tag: str = Field(
        "record", pattern=r"^[A-Za-z_][\w.-]*$", description="XML: one element per record"
    )
    xml_lists: list[str] = Field(
        default_factory=list, description="XML elements whose children always form a list"
    )
    dataset: str | None = Field(None, description="default dataset when the manifest names none")
    max_file_bytes: int = Field(256 * 1024 * 1024, ge=1, description="larger files fail")
    chunk_records: int = Field(1000, ge=1, le=10_000, description="records per ingest call")
    signed: bool = Field(
        False,
        description="every manifest must carry a signature of its file by one of this "
        "system's keys (keys.peers); unsigned or badly signed files fail whole (E_SIGNATURE)",
    )


class FileBatchOutOptions(BaseModel):
    """Options of the ``file_batch`` transport (``outbound:`` with ``transport: file_batch``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: Path = Field(description="where batch files and their manifests are written")
    format: Literal["jsonl", "csv"] = "jsonl"
    encoding: Encoding = "utf-8"
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field separator")
    columns: list[str] | None = Field(
        None, description="CSV columns (default: the fields of the batch, in first-seen order)"
    )
    escape_formulas: bool = Field(
        True, description="CSV: prefix cells starting with = + - @ with ' (CSV injection)"
    )
    batch_size: int = Field(500, ge=1, le=10_000, description="records per file")
    prefix: str = Field("batch", pattern=r"^[A-Za-z0-9_-]{1,40}$", description="file name prefix")
    sign: bool = Field(
        False, description="sign each file (detached signature in its manifest) with the hub's key"
    )


# --------------------------------------------------------------------------- parsing


@dataclass(slots=True)
class ParsedBatch:
    """A data file that passed every file-level check: its records, in file order."""

    name: str
    digest: str
    records: list[Any]
    #: the 1-based record number of each record (keys ``sha256:<digest>:<no>``)
    numbers: list[int] = field(default_factory=list)
    dataset: str | None = None


def check_file_name(name: Any, what: str = "file") -> str:
    """Return ``name`` if it is one plain file name in its folder; raise :class:`PathError`
    for anything that could reach elsewhere (``..``, separators, absolute paths, NUL)."""
    if not isinstance(name, str) or not name:
        raise PathError(f"{what} must be a non-empty file name", field=what)
    if "\x00" in name:
        raise PathError(f"{what} {name!r} holds a NUL byte", field=what)
    if "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        raise PathError(
            f"{what} {name!r} is not a plain file name (no folders, no '..', not absolute)",
            field=what,
        )
    if name.startswith("."):
        raise PathError(f"{what} {name!r} is hidden (a leading dot)", field=what)
    return name


def _decode(data: bytes, encoding: str, name: str) -> str:
    try:
        text = data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        raise EncodingError(
            f"{name}: byte {exc.start} does not decode as {encoding} ({exc.reason}); "
            "declare the right encoding in the manifest",
            field="encoding",
        ) from None
    return text


def parse_batch(
    data: bytes, *, name: str, fmt: Format, encoding: str, options: FileBatchSourceOptions
) -> list[Any]:
    """Decode and parse one batch file into records (dicts, or RawLines for JSON Lines).

    Values are kept as text: nothing in a cell is evaluated (a CSV ``=cmd|...`` is a string).
    """
    text = _decode(data, encoding, name)
    if fmt == "csv":
        return _parse_csv(text, name, options)
    if fmt == "jsonl":
        return _parse_jsonl(text)
    return _parse_xml(data, encoding, name, options)


def _parse_csv(text: str, name: str, options: FileBatchSourceOptions) -> list[Any]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=options.delimiter, strict=True)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise FileFormatError(
            f"{name}: not valid CSV at line {reader.line_num}: {exc}", field="file"
        ) from None
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header) or "" in header:
        raise FileFormatError(
            f"{name}: the header row must name every column once: {header}", field="file"
        )
    json_cols = set(options.json_columns)
    out: list[Any] = []
    for n, row in enumerate(rows[1:], start=1):
        if not row:  # a blank line
            continue
        if len(row) != len(header):
            raise FileFormatError(
                f"{name}: record {n} has {len(row)} fields, the header {len(header)}",
                field="file",
            )
        rec: dict[str, Any] = {}
        for col, cell in zip(header, row, strict=True):
            if cell == "":
                continue  # an empty cell is an absent value
            if col in json_cols:
                try:
                    rec[col] = orjson.loads(cell)
                except orjson.JSONDecodeError:
                    rec[col] = cell  # the contract check names the field then
            else:
                rec[col] = cell
        out.append(rec)
    return out


def _parse_jsonl(text: str) -> RawLines:
    # Left unparsed: the hub validates each line and quarantines a line that is not JSON.
    out = RawLines()
    for n, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            out.append(line.encode("utf-8"))
            out.line_numbers.append(n)
    return out


def _parse_xml(data: bytes, encoding: str, name: str, options: FileBatchSourceOptions) -> list[Any]:
    parser = etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise FileFormatError(f"{name}: not well-formed XML: {exc}", field="file") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise FileFormatError(f"{name}: a DTD is not accepted in batch files", field="file")
    lists = set(options.xml_lists)
    tag = options.record_tag
    return [
        _element_value(el, lists)
        for el in root.iter(etree.Element)
        if etree.QName(el).localname == tag
    ]


def _element_value(el: Any, lists: set[str]) -> Any:
    children = [c for c in el if isinstance(c.tag, str)]
    local = etree.QName(el).localname
    if not children and not el.attrib:
        text = el.text or ""
        if local in lists:
            return []
        return text if text.strip() else None
    if local in lists:
        return [_element_value(c, lists) for c in children]
    out: dict[str, Any] = {}
    for k, v in el.attrib.items():
        out[etree.QName(k).localname] = v
    for c in children:
        key = etree.QName(c).localname
        value = _element_value(c, lists)
        if value is None:
            continue
        if key in out:
            prev = out[key]
            out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- inbound


@dataclass(slots=True)
class _Outcome:
    kind: Literal["done", "duplicate", "failed", "finished", "skip"]
    detail: str = ""


class FileBatchSource:
    """Takes batch files from a drop folder: manifest first, whole file or nothing."""

    def __init__(self, system: str, options: FileBatchSourceOptions) -> None:
        self.system = system
        self.options = options
        self.drop = options.directory
        self.done = self.drop / "done"
        self.failed = self.drop / "failed"

    async def run(self, ctx: SourceContext) -> None:
        """Scan, take every ready file, sleep ``poll_interval``; until the hub stops."""
        await asyncio.to_thread(self._make_dirs)
        while not ctx.stopping.is_set():
            for manifest_name in await asyncio.to_thread(self._ready_manifests):
                if ctx.stopping.is_set():
                    return
                await self.take(ctx, manifest_name)
            if await ctx.sleep(self.options.poll_interval):
                return

    def _make_dirs(self) -> None:
        for d in (self.done, self.failed):
            d.mkdir(parents=True, exist_ok=True)

    def _ready_manifests(self) -> list[str]:
        names = []
        with os.scandir(self.drop) as it:
            for entry in it:
                if entry.name.startswith(".") or not entry.name.endswith(MANIFEST_SUFFIX):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    continue
                names.append(entry.name)
        return sorted(names)

    async def take(self, ctx: SourceContext, manifest_name: str) -> str:
        """Process one manifest and its data file; return what happened
        (``done``, ``duplicate``, ``failed``, ``finished``)."""
        base = manifest_name[: -len(MANIFEST_SUFFIX)]
        try:
            manifest = await asyncio.to_thread(self._read_manifest, manifest_name, base)
            data_path = self.drop / base
            if not os.path.lexists(data_path):
                return (await self._finish_interrupted_move(ctx, manifest, manifest_name)).kind
            raw = await asyncio.to_thread(self._read_data, base)
            digest = hashlib.sha256(raw).hexdigest()
            if digest != manifest.sha256.lower():
                raise ManifestError(
                    f"{base}: SHA-256 is {digest}, the manifest says {manifest.sha256.lower()}",
                    field="sha256",
                )
            if self.options.signed:
                if not manifest.signature:
                    raise SignatureError(
                        f"{base}: this system must sign its batch files; the manifest has no "
                        "signature",
                        field="signature",
                    )
                ctx.verify_detached(raw, manifest.signature)
            seen = await ctx.get_state(f"file:{digest}")
            if seen is not None:
                await self._settle_seen(base, manifest_name, digest, orjson.loads(seen))
                return "duplicate"
            batch = await asyncio.to_thread(self._parse, raw, base, digest, manifest)
        except HubError as err:
            await asyncio.to_thread(self._fail, manifest_name, base, err)
            return "failed"
        return "done" if await self._commit(ctx, batch, manifest_name) else "failed"

    def decode_file(self, path: Path) -> list[Any]:
        """The records of one batch file, decoded exactly as :meth:`take` would decode them
        (``jghub check --samples``). With ``<file>.manifest.json`` next to it the manifest is
        read and checked too (name, SHA-256, record count, its encoding and format); without
        one the options and the file's extension decide. A manifest given on its own decodes
        to no records: it is read with its data file."""
        if path.name.endswith(MANIFEST_SUFFIX):
            return []
        base = check_file_name(path.name)
        raw = self._read_regular(path, self.options.max_file_bytes, "file")
        digest = hashlib.sha256(raw).hexdigest()
        manifest_path = path.with_name(base + MANIFEST_SUFFIX)
        if os.path.lexists(manifest_path):
            reader = FileBatchSource(
                self.system, self.options.model_copy(update={"directory": path.parent})
            )
            manifest = reader._read_manifest(manifest_path.name, base)
            if digest != manifest.sha256.lower():
                raise ManifestError(
                    f"{base}: SHA-256 is {digest}, the manifest says {manifest.sha256.lower()}",
                    field="sha256",
                )
            return reader._parse(raw, base, digest, manifest).records
        if not raw:
            raise EmptyFileError(f"{base} is empty (0 bytes)", field="file")
        fmt = self.options.format or _EXTENSIONS.get(path.suffix.lower())
        if fmt is None:
            raise FileFormatError(
                f"{base}: cannot tell the format from the name; name it .csv, .jsonl or .xml",
                field="format",
            )
        return parse_batch(
            raw, name=base, fmt=fmt, encoding=self.options.encoding, options=self.options
        )

    # -- reading

    def _read_manifest(self, manifest_name: str, base: str) -> Manifest:
        text = self._read_regular(self.drop / manifest_name, _MAX_MANIFEST_BYTES, "manifest")
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ManifestError(f"{manifest_name} is not JSON: {exc}", field="manifest") from None
        if not isinstance(doc, dict):
            raise ManifestError(f"{manifest_name} must hold a JSON object", field="manifest")
        check_file_name(doc.get("file"), "file")
        try:
            manifest = Manifest.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "manifest"
            raise ManifestError(f"{manifest_name}: {where}: {first['msg']}", field=where) from None
        if manifest.file != base:
            raise ManifestError(
                f"{manifest_name} names file {manifest.file!r}; a manifest must be named "
                f"<file>{MANIFEST_SUFFIX}",
                field="file",
            )
        return manifest

    def _read_data(self, base: str) -> bytes:
        return self._read_regular(self.drop / base, self.options.max_file_bytes, "file")

    @staticmethod
    def _read_regular(path: Path, limit: int, what: str) -> bytes:
        """Read a regular file without following a symlink (O_NOFOLLOW), at most ``limit``."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                raise PathError(f"{path.name} is a symlink; not followed", field=what) from None
            raise
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise PathError(f"{path.name} is not a regular file", field=what)
            if st.st_size > limit:
                raise TooLargeError(
                    f"{path.name} has {st.st_size} bytes; at most {limit}", field=what
                )
            data = fh.read(limit + 1)
        if len(data) > limit:  # grew while we read
            raise TooLargeError(f"{path.name} exceeds {limit} bytes", field=what)
        return data

    def _parse(self, raw: bytes, base: str, digest: str, manifest: Manifest) -> ParsedBatch:
        if not raw:
            raise EmptyFileError(f"{base} is empty (0 bytes)", field="file")
        fmt = manifest.format or self.options.format or _EXTENSIONS.get(Path(base).suffix.lower())
        if fmt is None:
            raise FileFormatError(
                f"{base}: cannot tell the format from the name; name it .csv, .jsonl or .xml "
                "or state format in the manifest",
                field="format",
            )
        encoding = manifest.encoding or self.options.encoding
        records = parse_batch(raw, name=base, fmt=fmt, encoding=encoding, options=self.options)
        if not records:
            raise EmptyFileError(f"{base} holds no records", field="file")
        if len(records) != manifest.records:
            raise ManifestError(
                f"{base} holds {len(records)} records, the manifest says {manifest.records}",
                field="records",
            )
        return ParsedBatch(
            base,
            digest,
            records,
            list(range(1, len(records) + 1)),
            manifest.dataset or self.options.dataset,
        )

    # -- committing

    async def _commit(self, ctx: SourceContext, batch: ParsedBatch, manifest_name: str) -> bool:
        """Ingest every chunk, report, remember the digest, move to done/. False when the hub
        refuses the whole file (an unknown dataset): it went to failed/ instead."""
        size = self.options.chunk_records
        rejected: list[dict[str, Any]] = []
        duplicates = committed = 0
        for start in range(0, len(batch.records), size):
            chunk = _slice(batch.records, start, start + size)
            numbers = batch.numbers[start : start + size]
            keys = [f"sha256:{batch.digest}:{n}" for n in numbers]
            try:
                result = await ctx.ingest(
                    chunk,
                    keys=keys,
                    dataset=batch.dataset,
                    origin=f"file {batch.name} records {numbers[0]}-{numbers[-1]}",
                )
            except (UnknownDataset, TooLargeError) as refused:
                if start:  # pragma: no cover - the same for every chunk, so the first fails
                    raise
                await asyncio.to_thread(self._fail, manifest_name, batch.name, refused)
                return False
            committed += len(result.ids) - len(result.duplicates)
            duplicates += len(result.duplicates)
            for err in result.errors:
                rejected.append(
                    {
                        "record": numbers[err.index],
                        "key": keys[err.index],
                        "code": err.error.code,
                        "field": err.error.field,
                        "message": err.error.message,
                    }
                )
        dest = await asyncio.to_thread(self._destination, batch.name)
        report: dict[str, Any] = {
            "file": batch.name,
            "sha256": batch.digest,
            "records": len(batch.records),
            "committed": committed,
            "duplicates": duplicates,
            "rejected": rejected,
            "at": time.time(),
        }
        await asyncio.to_thread(_write_atomic, self.done / f"{dest}.report.json", _dumps(report))
        state = {"name": batch.name, "dest": dest, "records": len(batch.records)}
        await ctx.put_state(f"file:{batch.digest}", _dumps(state).decode())
        await asyncio.to_thread(self._move_pair, batch.name, manifest_name, self.done, dest)
        return True

    def _destination(self, base: str) -> str:
        """A free name in ``done/`` for this file (the same name unless it is taken)."""
        dest, n = base, 0
        while (self.done / dest).exists() or (self.done / f"{dest}{MANIFEST_SUFFIX}").exists():
            n += 1
            dest = f"{base}.{n}"
        return dest

    def _move_pair(self, base: str, manifest_name: str, folder: Path, dest: str) -> None:
        # The data file first: a crash before the manifest moves leaves a manifest without its
        # data, which _finish_interrupted_move completes from the saved state.
        if os.path.lexists(self.drop / base):
            os.replace(self.drop / base, folder / dest)
        if os.path.lexists(self.drop / manifest_name):
            os.replace(self.drop / manifest_name, folder / f"{dest}{MANIFEST_SUFFIX}")
        _fsync_dir(folder)
        _fsync_dir(self.drop)

    async def _settle_seen(
        self, base: str, manifest_name: str, digest: str, seen: dict[str, Any]
    ) -> None:
        """A file whose digest was committed before: either our own move was cut short by a
        crash (same name, its destination still free) or a re-delivery (a duplicate)."""
        dest = str(seen.get("dest", ""))
        if seen.get("name") == base and dest and not (self.done / dest).exists():
            await asyncio.to_thread(self._move_pair, base, manifest_name, self.done, dest)
            return
        new_dest = await asyncio.to_thread(self._destination, base)
        report: dict[str, Any] = {
            "file": base,
            "sha256": digest,
            "duplicate_of": seen.get("name"),
            "records": seen.get("records"),
            "committed": 0,
            "rejected": [],
            "at": time.time(),
        }
        await asyncio.to_thread(
            _write_atomic, self.done / f"{new_dest}.report.json", _dumps(report)
        )
        await asyncio.to_thread(self._move_pair, base, manifest_name, self.done, new_dest)

    async def _finish_interrupted_move(
        self, ctx: SourceContext, manifest: Manifest, manifest_name: str
    ) -> _Outcome:
        seen_raw = await ctx.get_state(f"file:{manifest.sha256.lower()}")
        if seen_raw is not None:
            seen = orjson.loads(seen_raw)
            dest = str(seen.get("dest", ""))
            if seen.get("name") == manifest.file and dest and (self.done / dest).exists():
                await asyncio.to_thread(
                    self._move_pair, manifest.file, manifest_name, self.done, dest
                )
                return _Outcome("finished")
        raise ManifestError(
            f"{manifest_name}: its data file {manifest.file!r} is missing", field="file"
        )

    def _fail(self, manifest_name: str, base: str, err: HubError) -> None:
        dest, n = base, 0
        while (self.failed / f"{dest}.error.json").exists():
            n += 1
            dest = f"{base}.{n}"
        # Moved first: the error file, written last, tells a watcher the failure is complete.
        self._move_pair(base, manifest_name, self.failed, dest)
        doc = {"file": base, "code": err.code, "field": err.field, "message": err.message}
        _write_atomic(self.failed / f"{dest}.error.json", _dumps(doc))


def _slice(records: list[Any], start: int, end: int) -> list[Any]:
    if isinstance(records, RawLines):
        out = RawLines()
        out.extend(records[start:end])
        out.line_numbers.extend(records.line_numbers[start:end])
        return out
    return records[start:end]


# --------------------------------------------------------------------------- files on disk


def _dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name, fsync it, rename it over ``path``, fsync the
    folder: readers see the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def escape_csv_cell(value: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``,
    tab, CR at the start) by prefixing ``'``; other text is unchanged."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _cell(value: Any, escape: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = orjson.dumps(value).decode() if isinstance(value, (dict, list)) else str(value)
    return escape_csv_cell(text) if escape else text


def write_batch_file(
    directory: Path,
    name: str,
    records: Sequence[dict[str, Any]],
    *,
    fmt: Literal["jsonl", "csv"],
    encoding: str = "utf-8",
    dataset: str | None = None,
    delimiter: str = ",",
    columns: Sequence[str] | None = None,
    escape_formulas: bool = True,
    signer: Signer | None = None,
) -> Manifest:
    """Write one batch file and then its manifest, each atomically; return the manifest.

    Raises ``UnicodeEncodeError`` if a value cannot be written in ``encoding``."""
    check_file_name(name)
    if fmt == "jsonl":
        text = "".join(orjson.dumps(r).decode() + "\n" for r in records)
    else:
        cols = list(columns) if columns is not None else _columns(records)
        buf = io.StringIO(newline="")
        w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
        w.writerow(cols)
        for r in records:
            w.writerow([_cell(r.get(c), escape_formulas) for c in cols])
        text = buf.getvalue()
    data = text.encode(encoding)
    _write_atomic(directory / name, data)
    manifest = Manifest(
        file=name,
        records=len(records),
        sha256=hashlib.sha256(data).hexdigest(),
        dataset=dataset,
        encoding=encoding,  # type: ignore[arg-type]
        format=fmt,
        signature=None if signer is None else _sign(data, signer),
    )
    _write_atomic(
        directory / f"{name}{MANIFEST_SUFFIX}", _dumps(manifest.model_dump(exclude_none=True))
    )
    return manifest


def _sign(data: bytes, signer: Signer) -> str:
    from security.httpsig import sign_detached

    return sign_detached(data, signer)


def _columns(records: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


# --------------------------------------------------------------------------- outbound


class FileBatchTransport(SignsWithHubKey):
    """Writes each batch of deliveries as one file + manifest in ``directory``.

    Every record carries ``_message_id`` (the stable id the department de-duplicates on) and
    ``_dataset``. The file name is ``<prefix>-<digest of the message ids>.<ext>``: a retried
    batch rewrites the same file instead of adding a second one."""

    concurrency = 1

    def __init__(self, target: str, options: FileBatchOutOptions) -> None:
        self.target = target
        self.options = options
        self.max_batch = options.batch_size

    async def start(self) -> None:
        await asyncio.to_thread(self.options.directory.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    def file_name(self, message_ids: Sequence[str]) -> str:
        """The file a batch of these message ids is written to."""
        h = hashlib.sha256("\n".join(message_ids).encode()).hexdigest()[:32]
        ext = "csv" if self.options.format == "csv" else "jsonl"
        return f"{self.options.prefix}-{h}.{ext}"

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        t0 = time.perf_counter()
        results: list[SendResult | None] = [None] * len(items)
        rows: list[dict[str, Any]] = []
        kept: list[int] = []
        for i, item in enumerate(items):
            row = self._row(item)
            try:  # a value the encoding cannot hold fails that record only, for good
                for v in row.values():
                    _cell(v, False).encode(self.options.encoding)
            except UnicodeEncodeError as exc:
                results[i] = SendResult(
                    False,
                    None,
                    True,
                    f"a value cannot be written in {self.options.encoding}: {exc.reason} "
                    f"{exc.object[exc.start : exc.end]!r}",
                )
                continue
            rows.append(row)
            kept.append(i)
        if rows:
            name = self.file_name([items[i].message_id for i in kept])
            datasets = {items[i].dataset for i in kept}
            try:
                await asyncio.to_thread(
                    write_batch_file,
                    self.options.directory,
                    name,
                    rows,
                    fmt=self.options.format,
                    encoding=self.options.encoding,
                    dataset=datasets.pop() if len(datasets) == 1 else None,
                    delimiter=self.options.delimiter,
                    columns=self._csv_columns(),
                    escape_formulas=self.options.escape_formulas,
                    signer=None if self._signer is None else self._signer(),
                )
                ms = (time.perf_counter() - t0) * 1000
                for i in kept:
                    results[i] = SendResult(True, None, latency_ms=ms, receipt=name)
            except OSError as exc:  # a full disk, a missing mount: try again later
                for i in kept:
                    results[i] = SendResult(False, None, False, f"cannot write {name}: {exc}")
        return [r if r is not None else SendResult(False) for r in results]

    def _csv_columns(self) -> list[str] | None:
        cols = self.options.columns
        return None if cols is None else ["_message_id", "_dataset", *cols]

    @staticmethod
    def _row(item: OutboundItem) -> dict[str, Any]:
        body = item.body if isinstance(item.body, dict) else {"data": item.body}
        return {"_message_id": item.message_id, "_dataset": item.dataset, **body}


def _source_factory(system: str, options: FileBatchSourceOptions) -> FileBatchSource:
    return FileBatchSource(system, options)


def _transport_factory(target: str, options: FileBatchOutOptions) -> FileBatchTransport:
    return FileBatchTransport(target, options)


source_spec = SourceSpec(
    name="file_batch",
    factory=_source_factory,
    config_model=FileBatchSourceOptions,
    description="take CSV / JSON Lines / XML batch files with a manifest from a drop folder",
)

spec = TransportSpec(
    name="file_batch",
    factory=_transport_factory,
    config_model=FileBatchOutOptions,
    description="write JSON Lines / CSV batch files with a manifest, atomically",
)
