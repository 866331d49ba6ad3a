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
from pydantic_core import SchemaSerializer, SchemaValidator

from hub.errors import BadRequest, HubError, SchemaError, TooDeep, TooLargeError

__all__ = [
    "Checked",
    "DictChecker",
    "ValidationPool",
    "dict_checker",
    "schema_error",
    "too_deep",
    "validate_line",
]

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


# --------------------------------------------------------------------------- fast path


class PlainSchema(Exception):
    """The model's schema has something the dict fast path does not reproduce exactly."""


def _as_dict_schema(node: Any, for_serializer: bool) -> Any:
    """A copy of a model's core schema in which every model validates into a plain ``dict``
    (``typed-dict``) instead of a model instance, with the same fields, validators, defaults,
    aliases and config. ``for_serializer``: string enums also serialise as their string (the
    same text, without the Python ``Enum.value`` call per field).

    Raises :class:`PlainSchema` for what a dict cannot stand in for: model validators and
    serialisers, ``model_post_init``, computed fields, ``extra="allow"``, custom ``__init__``,
    root models, unions (which choose between models and dicts differently), references."""
    if isinstance(node, list):
        return [_as_dict_schema(x, for_serializer) for x in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind in ("union", "tagged-union", "definitions", "definition-ref"):
        raise PlainSchema(kind)
    if kind in ("function-before", "function-after", "function-wrap", "function-plain"):
        inner = node.get("schema")
        if isinstance(inner, dict) and inner.get("type") == "model":
            raise PlainSchema("model validator")
    ser = node.get("serialization")
    if isinstance(ser, dict) and ser.get("type") != "format" and "function" in ser:
        raise PlainSchema("serialiser function")
    if kind == "model":
        return _model_as_typed_dict(node, for_serializer)
    if kind == "model-fields":
        raise PlainSchema("model fields outside a model")
    if kind == "enum" and for_serializer:
        members = node.get("members", ())
        if node.get("sub_type") == "str" and all(
            type(m.value) is str and str.__str__(m) == m.value for m in members
        ):
            return {"type": "str"}
    return {k: _as_dict_schema(v, for_serializer) for k, v in node.items()}


def _model_as_typed_dict(node: dict[str, Any], for_serializer: bool) -> dict[str, Any]:
    inner = node.get("schema")
    config = node.get("config") or {}
    if (
        node.get("custom_init")
        or node.get("root_model")
        or node.get("post_init")
        or "serialization" in node
        or not isinstance(inner, dict)
        or inner.get("type") != "model-fields"
        or inner.get("computed_fields")
        or inner.get("extras_schema") is not None
        or inner.get("extras_keys_schema") is not None
        or "serialization" in inner
        or config.get("extra_fields_behavior", "ignore") not in ("ignore", "forbid")
        or inner.get("extra_behavior", "ignore") not in ("ignore", "forbid")
    ):
        raise PlainSchema("model")
    fields: dict[str, Any] = {}
    for name, field in inner["fields"].items():
        if field.get("type") != "model-field" or field.get("frozen"):
            raise PlainSchema("field")
        converted = {k: _as_dict_schema(v, for_serializer) for k, v in field.items() if k != "type"}
        converted["type"] = "typed-dict-field"
        converted["required"] = field["schema"].get("type") != "default"
        fields[name] = converted
    out: dict[str, Any] = {
        "type": "typed-dict",
        "fields": fields,
        "extra_behavior": inner.get("extra_behavior")
        or config.get("extra_fields_behavior", "ignore"),
        "config": config,
    }
    if inner.get("strict") is not None:
        out["strict"] = inner["strict"]
    return out


class DictChecker:
    """Validates a model's NDJSON lines into plain dicts and serialises them, skipping the model
    instances (for a batch of records with nested models that is about half of what
    ``model_validate_json`` costs). Built from the model's own core schema, so the same
    validators run; :func:`dict_checker` builds one only for schemas it reproduces exactly (see
    :func:`_as_dict_schema`), and every refusal is produced by the reference path
    (:func:`validate_line`), so the errors are the reference's. Tested to agree with the
    reference, record for record, valid and invalid."""

    def __init__(self, model: type[BaseModel]) -> None:
        schema = model.__pydantic_core_schema__
        if schema.get("type") != "model":
            raise PlainSchema("not a model")
        config = schema.get("config")
        self.model = model
        validator = SchemaValidator(_as_dict_schema(schema, False), config)
        self._validate_json = validator.validate_json
        self._validate_python = validator.validate_python
        serializer = SchemaSerializer(_as_dict_schema(schema, True), config)
        self._to_json = serializer.to_json
        self._to_python = serializer.to_python

    def check(
        self,
        raw: bytes,
        i: int,
        line: int,
        single: bool,
        max_record_bytes: int | None,
        depth: int,
        pfield: str | None,
        want_dict: bool,
    ) -> Checked:
        """:func:`validate_line` then :func:`checked`, with the same result and errors."""
        if (max_record_bytes is not None and len(raw) > max_record_bytes) or (
            raw.count(b"{") + raw.count(b"[") >= depth
        ):  # a size or depth check to make: the reference path does it
            return checked(
                validate_line(self.model, raw, i, line, single, max_record_bytes, depth),
                pfield,
                want_dict,
            )
        try:
            rec = self._validate_json(raw)
        except ValidationError:  # the reference path raises the refusal (or agrees after all)
            return checked(
                validate_line(self.model, raw, i, line, single, max_record_bytes, depth),
                pfield,
                want_dict,
            )
        got = self._checked(rec, pfield, want_dict)
        if got is None:
            return checked(self.model.model_validate_json(raw), pfield, want_dict)
        return got

    def check_value(
        self,
        value: dict[str, Any],
        max_record_bytes: int | None,
        depth: int,
        pfield: str | None,
        want_dict: bool,
    ) -> Checked | None:
        """A record already parsed from JSON (a single ``application/json`` record): the
        :class:`Checked` of a valid one, or None whenever the reference path
        (``Hub._validate_value`` + ``checked``) must decide: a size or depth check to make, or
        any refusal (whose error the reference raises)."""
        if max_record_bytes is not None or too_deep(value, depth):
            return None
        try:
            rec = self._validate_python(value)
        except ValidationError:
            return None
        return self._checked(rec, pfield, want_dict)

    def _checked(self, rec: dict[str, Any], pfield: str | None, want_dict: bool) -> Checked | None:
        """:func:`checked` of a record validated into a dict; None when the partition key is
        an object or a list (the key is ``str()`` of a model then, not of a dict)."""
        pkey = rec.get(pfield) if pfield else None
        if type(pkey) is dict or type(pkey) is list:
            return None
        return (
            self._to_json(rec, exclude_none=True),
            None if pkey is None else str(pkey),
            self._to_python(rec, mode="json") if want_dict else None,
        )


_CHECKERS: dict[type[BaseModel], DictChecker | None] = {}


def dict_checker(model: type[BaseModel]) -> DictChecker | None:
    """The model's :class:`DictChecker`, or ``None`` when its schema needs model instances."""
    try:
        return _CHECKERS[model]
    except KeyError:
        pass
    try:
        got: DictChecker | None = DictChecker(model)
    except PlainSchema:
        got = None
    except Exception:  # a schema pydantic-core will not build as dicts: keep the reference
        log.debug("no dict fast path for %s", model.__qualname__, exc_info=True)
        got = None
    if len(_CHECKERS) >= 256:  # declared datasets get new model classes with every Hub built
        _CHECKERS.clear()
    _CHECKERS[model] = got
    return got


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
    fast = dict_checker(model)
    out: list[Checked | HubError] = []
    for k, raw in enumerate(lines):
        try:
            if fast is not None:
                out.append(
                    fast.check(
                        raw,
                        first + k,
                        line_numbers[k],
                        single,
                        max_record_bytes,
                        depth,
                        pfield,
                        want_dict,
                    )
                )
                continue
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
