"""Record validation, in this process or in a pool of worker processes.

Python runs one thread of Python code at a time, and validating a record (pydantic plus the
contracts' check characters) is most of what a batch costs. With ``ingest.validation_processes``
set, big NDJSON batches are split over that many worker processes, which validate and serialise
the lines and send back the canonical bytes; the hub process only builds envelopes and commits.
Results are the same as in-process validation, record for record (tested).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from hub.errors import BadRequest, HubError, SchemaError, TooDeep, TooLargeError

__all__ = ["Checked", "ValidationPool", "schema_error", "too_deep", "validate_line"]

log = logging.getLogger("jghub.validation")

#: A validated record: canonical JSON bytes, partition key, and the record as a dict when
#: route filters need it.
Checked = tuple[bytes, str | None, dict[str, Any] | None]


def too_deep(value: Any, limit: int) -> bool:
    """True when containers nest deeper than ``limit`` (the record itself is level 1).

    Recursion is bounded: the parser (orjson) already refuses nesting beyond 1024 levels, and
    this returns as soon as ``limit`` is passed."""
    if limit <= 0:
        return True
    items = value.values() if type(value) is dict else value
    for x in items:
        t = type(x)
        if (t is dict or t is list) and too_deep(x, limit - 1):
            return True
    return False


def schema_error(exc: ValidationError, index: int | None) -> SchemaError:
    errs = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errs[0]
    fieldname = ".".join(str(p) for p in first["loc"]) or "(record)"
    where = f"record {index}: " if index is not None else ""
    return SchemaError(
        f"{where}{fieldname}: {first['msg']}",
        field=fieldname,
        errors=[
            {
                "field": ".".join(str(p) for p in e["loc"]) or "(record)",
                "message": e["msg"],
                "type": e["type"],
            }
            for e in errs[:20]
        ],
    )


def validate_line(
    model: type[BaseModel],
    raw: bytes,
    i: int,
    line: int,
    single: bool,
    max_record_bytes: int | None,
    depth: int,
) -> BaseModel:
    """Validate one record from its JSON text (an NDJSON line) without parsing it into Python
    objects first. A line that is not JSON at all raises :class:`BadRequest` (the caller refuses
    the whole body); other problems raise the record's own error."""
    if max_record_bytes is not None and len(raw) > max_record_bytes:
        raise TooLargeError(
            f"record {i} (line {line}): larger than {max_record_bytes} bytes", field="(record)"
        )
    if raw.count(b"{") + raw.count(b"[") >= depth:  # only then can it nest too deep
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(
                f"line {line} is not valid JSON: {exc}", field=f"line {line}", line=line
            ) from None
        if isinstance(parsed, (dict, list)) and too_deep(parsed, depth):
            raise TooDeep(
                f"record {i} (line {line}): nested deeper than {depth} levels", field="(record)"
            )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        bad_json = next((e for e in exc.errors() if e["type"] == "json_invalid"), None)
        if bad_json is not None:
            raise BadRequest(
                f"line {line} is not valid JSON: {bad_json['msg']}",
                field=f"line {line}",
                line=line,
            ) from None
        if any(e["type"] == "model_type" and not e["loc"] for e in exc.errors()):
            raise SchemaError(
                f"record {i} (line {line}): a record must be a JSON object", field="(record)"
            ) from None
        raise schema_error(exc, None if single else i) from None


def checked(model_obj: BaseModel, pfield: str | None, want_dict: bool) -> Checked:
    """What the hub keeps of a valid record."""
    payload: bytes = type(model_obj).__pydantic_serializer__.to_json(model_obj, exclude_none=True)
    pkey = getattr(model_obj, pfield, None) if pfield else None
    rec = model_obj.model_dump(mode="json") if want_dict else None
    return payload, None if pkey is None else str(pkey), rec


# --------------------------------------------------------------------------- worker side

_MODELS: dict[str, tuple[type[BaseModel], str]] = {}


def _init_worker() -> None:
    """Load the datasets the way the hub does (the same entry points)."""
    from hub.plugins import build_plugin_manager, load_registry

    reg = load_registry(build_plugin_manager())
    for name, spec in reg.datasets.specs.items():
        _MODELS[name] = (spec.model, spec.version)


def _validate_chunk(
    dataset: str,
    version: str,
    lines: Sequence[bytes],
    first: int,
    line_numbers: Sequence[int],
    single: bool,
    max_record_bytes: int | None,
    depth: int,
    pfield: str | None,
    want_dict: bool,
) -> tuple[str, Any]:
    """Runs in a worker: ``("ok", [Checked | HubError, ...])``, ``("body", BadRequest)`` when a
    line is not JSON, or ``("unknown", None)`` when this worker does not know the dataset."""
    known = _MODELS.get(dataset)
    if known is None or known[1] != version:
        return "unknown", None
    model = known[0]
    out: list[Checked | HubError] = []
    for k, raw in enumerate(lines):
        try:
            obj = validate_line(
                model, raw, first + k, line_numbers[k], single, max_record_bytes, depth
            )
        except BadRequest as err:
            if type(err) is BadRequest:
                return "body", err
            out.append(err)
            continue
        except HubError as err:
            out.append(err)
            continue
        out.append(checked(obj, pfield, want_dict))
    return "ok", out


def _warm() -> int:
    return len(_MODELS)


class ValidationPool:
    """Worker processes that validate big batches. Started by the hub, stopped with it."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.validated = 0  # records validated by the workers (for tests and metrics)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: the hub process has threads (SQLite, executors); forking it is unsafe.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["hub.validation", "contracts"])
        return ProcessPoolExecutor(self.processes, mp_context=ctx, initializer=_init_worker)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, _warm) for _ in range(self.processes))
        )

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self._pool.shutdown(wait=True, cancel_futures=True)
        )

    async def validate(
        self,
        dataset: str,
        version: str,
        lines: Sequence[bytes],
        line_numbers: Sequence[int],
        single: bool,
        max_record_bytes: int | None,
        depth: int,
        pfield: str | None,
        want_dict: bool,
    ) -> list[Checked | HubError] | None:
        """One result per line, in order; ``None`` when the workers do not know the dataset
        (validate in the hub process then). Raises :class:`BadRequest` for a non-JSON line."""
        loop = asyncio.get_running_loop()
        n = len(lines)
        size = -(-n // self.processes)
        try:
            parts: list[tuple[str, Any]] = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        self._pool,
                        _validate_chunk,
                        dataset,
                        version,
                        list(lines[start : start + size]),
                        start,
                        list(line_numbers[start : start + size]),
                        single,
                        max_record_bytes,
                        depth,
                        pfield,
                        want_dict,
                    )
                    for start in range(0, n, size)
                )
            )
        except BrokenProcessPool:
            # A worker died (killed, out of memory): validate this batch in the hub process
            # and start fresh workers for the next one.
            log.warning("a validation worker died; restarting the pool")
            old, self._pool = self._pool, self._new_pool()
            old.shutdown(wait=False, cancel_futures=True)
            return None
        out: list[Checked | HubError] = []
        for kind, value in parts:
            if kind == "unknown":
                return None
            if kind == "body":
                raise value
            out.extend(value)
        self.validated += len(out)
        return out
