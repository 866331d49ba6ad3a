"""Per (system, dataset) pipeline of what happens to a record around the contract check:
mapping and cleaning before it, comparison, de-duplication and linking after it (数据治理:
抽取、清洗、去重、比对、校核、标准化转换、关联整合).

Everything is compiled once when the hub starts (``build_pipelines``); a dataset with nothing
configured has no pipeline, so the plain ingest path pays nothing for this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hub.config import SystemConfig, load_yaml_file
from hub.errors import BadRequest, HubError, MismatchError, SchemaError, TooDeep, TooLargeError
from hub.plugins import Registry
from hub.routing import get_path
from hub.specs import ComparatorSpec
from hub.validation import too_deep

__all__ = [
    "GovernedRecord",
    "Pipeline",
    "RecordFn",
    "build_outbound_mappings",
    "build_pipelines",
    "error_for",
    "line_locator",
    "raw_text",
]

#: longest raw text kept with a quarantined record
MAX_RAW_CHARS = 64 * 1024

RecordFn = Callable[[dict[str, Any], list[str] | None], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class GovernedRecord:
    """What governance found out about one valid record, passed on to the store."""

    business_key: str | None
    version: str | None
    subject: str | None
    notes: tuple[str, ...]


@dataclass(slots=True)
class Pipeline:
    """The compiled governance of one (system, dataset)."""

    system: str
    dataset: str
    mapping: RecordFn | None = None
    cleaner: RecordFn | None = None
    key_fields: tuple[str, ...] = ()
    version_field: str | None = None
    link_fields: tuple[str, ...] = ()
    comparators: list[tuple[ComparatorSpec, str]] = field(default_factory=list)

    @property
    def before(self) -> bool:
        """Records must be parsed, mapped or cleaned before the contract check."""
        return self.mapping is not None or self.cleaner is not None

    @property
    def after(self) -> bool:
        """Valid records need dedupe keys, links or comparisons."""
        return bool(self.key_fields or self.link_fields or self.comparators)

    def prepare(
        self, raw: Any, i: int, line: int | None, *, max_bytes: int | None, depth: int
    ) -> tuple[dict[str, Any], list[str]]:
        """Parse (if bytes), map and clean one record; return it with its notes.

        Raises the record's :class:`HubError`; a line that is not JSON raises
        :class:`BadRequest` (the whole body is refused, as on the plain path)."""
        where = f"record {i}" + (f" (line {line})" if line is not None else "")
        if isinstance(raw, (bytes, bytearray, memoryview)):
            data = bytes(raw)
            if max_bytes is not None and len(data) > max_bytes:
                raise TooLargeError(f"{where}: larger than {max_bytes} bytes", field="(record)")
            try:
                raw = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(
                    f"line {line} is not valid JSON: {exc}", field=f"line {line}", line=line
                ) from None
        if not isinstance(raw, dict):
            raise SchemaError(
                f"{where}: a record must be a JSON object, got {type(raw).__name__}",
                field="(record)",
            )
        if too_deep(raw, depth):
            raise TooDeep(f"{where}: nested deeper than {depth} levels", field="(record)")
        notes: list[str] = []
        rec: dict[str, Any] = raw
        if self.mapping is not None:
            rec = self.mapping(rec, notes)
        if self.cleaner is not None:
            rec = self.cleaner(rec, notes)
        return rec, notes

    async def govern(self, rec: Mapping[str, Any], notes: list[str]) -> GovernedRecord:
        """Compare, key and link one valid canonical record. Raises :class:`MismatchError`
        when a ``reject`` comparison fails."""
        if self.comparators:
            found = await asyncio.gather(
                *(c.check(self.dataset, dict(rec)) for c, _ in self.comparators)
            )
            for (spec, policy), mismatch in zip(self.comparators, found, strict=True):
                if mismatch is None:
                    continue
                if policy == "reject":
                    raise MismatchError(
                        f"compare {spec.name}: {mismatch}", field=spec.name, rule=spec.name
                    )
                notes.append(f"compare {spec.name} flagged: {mismatch}")
        bkey = None
        if self.key_fields:
            parts = [get_path(rec, f) for f in self.key_fields]
            if any(p in (None, "") for p in parts):
                missing = [
                    f for f, p in zip(self.key_fields, parts, strict=True) if p in (None, "")
                ]
                raise SchemaError(
                    f"the business key field {missing[0]!r} is empty (governance.dedupe.key)",
                    field=missing[0],
                )
            bkey = "\x1f".join(str(p) for p in parts)
        version = None
        if self.version_field is not None:
            v = get_path(rec, self.version_field)
            version = None if v is None else str(v)
        subject = None
        for f in self.link_fields:
            v = get_path(rec, f)
            if v not in (None, ""):
                subject = str(v)
                notes.append(f"linked to subject {f}={subject}")
                break
        return GovernedRecord(bkey, version, subject, tuple(notes))


def raw_text(raw: Any) -> str:
    """A record as received, as text for the quarantine (cut at ``MAX_RAW_CHARS``)."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        text = bytes(raw).decode("utf-8", errors="replace")
    else:
        try:
            text = orjson.dumps(raw, default=str).decode()
        except TypeError:
            text = repr(raw)
    return text[:MAX_RAW_CHARS]


def line_locator(
    sc: SystemConfig, prefix: tuple[Any, ...]
) -> Callable[[tuple[Any, ...]], int | None]:
    """Find the line of a key path (relative to ``prefix``) in the system's file, for errors."""
    located = None

    def line_of(loc: tuple[Any, ...]) -> int | None:
        nonlocal located
        if sc.source_file is None:
            return None
        if located is None:
            located = load_yaml_file(Path(sc.source_file))
        return located.line_of((*prefix, *loc))

    return line_of


def build_pipelines(sc: SystemConfig, registry: Registry) -> dict[str, Pipeline]:
    """Compile the mappings and governance a system file declares, by inbound dataset."""
    out: dict[str, Pipeline] = {}
    where_file = str(sc.source_file or f"<system {sc.name}>")
    functions = registry.transform_functions.specs
    for ds, spec in sc.mapping.inbound.items():
        from transforms.mapping import compile_mapping

        p = out.setdefault(ds, Pipeline(sc.name, ds))
        p.mapping = compile_mapping(
            spec,
            functions=functions,
            where=f"{where_file} mapping.inbound.{ds}",
            line_of=line_locator(sc, ("mapping", "inbound", ds)),
        )
    for ds, gov in sc.governance.items():
        p = out.setdefault(ds, Pipeline(sc.name, ds))
        if gov.clean is not None:
            from transforms.cleaning import compile_cleaning

            p.cleaner = compile_cleaning(gov.clean, where=f"{where_file} governance.{ds}.clean")
        if gov.dedupe is not None:
            p.key_fields = tuple(gov.dedupe.key)
            p.version_field = gov.dedupe.version
        p.link_fields = tuple(gov.link)
        for rule in gov.compare:
            p.comparators.append(
                (
                    registry.comparators.get(rule.rule, wanted_by=f"system {sc.name} governance"),
                    rule.on_mismatch,
                )
            )
    return out


def error_for(exc: Exception) -> HubError:
    """A mapping function's unexpected exception, as the record's error (named, not a 500)."""
    if isinstance(exc, HubError):
        return exc
    return SchemaError(f"mapping failed: {type(exc).__name__}: {exc}", field="(record)")


def build_outbound_mappings(sc: SystemConfig, registry: Registry) -> dict[str, RecordFn]:
    """Compile a target system's outbound mappings (canonical -> its schema), by dataset."""
    if not sc.mapping.outbound:
        return {}
    from transforms.mapping import compile_mapping

    where_file = str(sc.source_file or f"<system {sc.name}>")
    return {
        ds: compile_mapping(
            spec,
            functions=registry.transform_functions.specs,
            where=f"{where_file} mapping.outbound.{ds}",
            line_of=line_locator(sc, ("mapping", "outbound", ds)),
        )
        for ds, spec in sc.mapping.outbound.items()
    }
