"""The mapping language: a department's schema to the canonical contract and back.

A mapping is a list of rules written in YAML (see ``docs/mapping.md``). :func:`compile_mapping`
checks every rule once, when the configuration is loaded, and generates one Python function
for the whole mapping: simple renames become inline ``out["x"] = rec.get("y")`` lines, and
every conversion (dates, code tables, masks ...) is a closure built once. Per record only the
mapping itself runs.

Per rule the value goes through fixed steps, in this order::

    read (from / value / concat) → split → fn → code_table → type → mask → hash → each
    → default (when absent) → required → write (to)

A value is *absent* when the source field is missing or ``None``; for the converting steps
(``type``, ``code_table``) an empty or blank string is absent too. An absent value skips the
steps and the target is not written unless ``default`` gives one.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import orjson

from hub.errors import ConfigError, HubError, MappingError
from hub.specs import TransformFunctionSpec
from transforms.dates import (
    DateFormatError,
    compile_date_matchers,
    compile_date_parser,
    iso_date,
    iso_datetime,
    parse_tz,
)
from transforms.masking import MASKS, keep_ends, salted_sha256

__all__ = [
    "RULE_KEYS",
    "SPEC_KEYS",
    "TYPES",
    "WHEN_KEYS",
    "CompiledMapping",
    "compile_mapping",
]

#: Keys of one mapping rule.
RULE_KEYS: tuple[str, ...] = (
    "to",
    "from",
    "value",
    "concat",
    "sep",
    "split",
    "fn",
    "code_table",
    "unmapped",
    "type",
    "formats",
    "tz",
    "scale",
    "mask",
    "hash",
    "salt",
    "each",
    "default",
    "required",
    "note",
)
#: Keys of a conditional rule.
WHEN_KEYS: tuple[str, ...] = ("when", "rules", "else", "note")
#: Keys of the mapping itself.
SPEC_KEYS: tuple[str, ...] = ("rules", "code_tables", "unmapped_fields", "salt")
#: Values of a rule's ``type``.
TYPES: tuple[str, ...] = ("str", "int", "float", "decimal", "bool", "date", "datetime")
_CONDITION_KEYS = ("field", "equals", "not_equals", "in", "not_in", "exists")

_TRUE = frozenset(["1", "是", "y", "yes", "true", "t"])
_FALSE = frozenset(["0", "否", "n", "no", "false", "f"])
_INT = re.compile(r"[+-]?\d+")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SEGMENT = re.compile(r"([^.\[\]\s]+)((?:\[-?\d*\])*)")
_INDEX = re.compile(r"\[(-?\d*)\]")
_MIN_SALT = 8

Step = Callable[[Any, "list[str] | None"], Any]
Key = str | int | None  # None stands for [] (every element)


# --------------------------------------------------------------------------- the result


class CompiledMapping:
    """A compiled mapping: call it with one record (a dict), get the mapped record.

    ``source`` holds the generated Python code (for ``jghub check`` and debugging).
    """

    __slots__ = ("_fn", "source", "where")

    def __init__(
        self,
        fn: Callable[[dict[str, Any], list[str] | None], dict[str, Any]],
        source: str,
        where: str,
    ) -> None:
        self._fn = fn
        self.source = source
        self.where = where

    def __call__(self, record: dict[str, Any], warnings: list[str] | None = None) -> dict[str, Any]:
        """Map one record; raise hub.errors.MappingError (code E_MAPPING, field= the source or
        target field path) for a value it cannot map; append human warnings (e.g. unmapped code
        passed through) to ``warnings`` when given."""
        if not isinstance(record, dict):
            raise MappingError(
                f"a record must be an object, got {type(record).__name__}", field="(record)"
            )
        return self._fn(record, warnings)

    def __repr__(self) -> str:
        return f"<CompiledMapping {self.where}>"


# --------------------------------------------------------------------------- paths


def _parse_path(text: str) -> list[Key]:
    """``a.b[0].c`` → ``["a", "b", 0, "c"]``; ``items[].code`` → ``["items", None, "code"]``
    (``None`` marks every element). Raises ValueError for bad syntax."""
    out: list[Any] = []
    for part in text.split("."):
        m = _SEGMENT.fullmatch(part)
        if m is None:
            raise ValueError(
                f"bad path {text!r}: write names joined by '.', with [N] or [] for arrays "
                "(e.g. items[].code, a.b[0].c)"
            )
        out.append(m.group(1))
        for idx in _INDEX.findall(m.group(2)):
            out.append(int(idx) if idx else None)
    if out.count(None) > 1:
        raise ValueError(f"bad path {text!r}: at most one [] per path (use each: for deeper lists)")
    return out


def _getter(keys: Sequence[Key]) -> Callable[[Any], Any]:
    """A reader for a path without ``[]``; a missing step gives ``None``."""
    keys = tuple(keys)
    if len(keys) == 1:
        (k,) = keys

        def get1(obj: Any) -> Any:
            return obj.get(k) if isinstance(obj, dict) else None

        return get1

    def get(obj: Any) -> Any:
        for k in keys:
            if isinstance(k, str):
                if not isinstance(obj, dict):
                    return None
                obj = obj.get(k)
            elif isinstance(k, int):
                if not isinstance(obj, list) or not -len(obj) <= k < len(obj):
                    return None
                obj = obj[k]
        return obj

    return get


def _setter(keys: Sequence[Key]) -> Callable[[Any, Any], None]:
    """A writer for a path without ``[]``; missing objects and list slots are created."""
    keys = tuple(keys)

    def put(obj: Any, v: Any) -> None:
        for k, nxt in itertools.pairwise(keys):
            want: type = list if isinstance(nxt, int) else dict
            if isinstance(k, str):
                child = obj.get(k)
                if not isinstance(child, want):
                    child = want()
                    obj[k] = child
            elif isinstance(k, int):
                while len(obj) <= k:
                    obj.append(None)
                child = obj[k]
                if not isinstance(child, want):
                    child = want()
                    obj[k] = child
            obj = child
        last = keys[-1]
        if isinstance(last, int):
            while len(obj) <= last:
                obj.append(None)
        obj[last] = v

    return put


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


# --------------------------------------------------------------------------- compiling


class _Compiler:
    """State of one :func:`compile_mapping` call (shared by nested ``each`` mappings)."""

    def __init__(
        self,
        functions: Mapping[str, TransformFunctionSpec],
        where: str,
        line_of: Callable[[tuple[Any, ...]], int | None] | None,
    ) -> None:
        self.functions = functions
        self.where = where
        self.line_of = line_of
        self.code_tables: dict[str, dict[str, Any]] = {}
        self.salt: str | None = None
        self.keep_unmapped = False
        self.names: dict[str, Any] = {
            "_MappingError": MappingError,
            "_deepcopy": copy.deepcopy,
        }
        # Steps with an inline fast path: generated lines, "{f}" standing for the step itself.
        self.inline: dict[Step, list[str]] = {}

    # ----------------------------------------------------------------- errors

    def fail(self, loc: tuple[Any, ...], msg: str, field: str | None = None) -> ConfigError:
        line = self.line_of(loc) if self.line_of else None
        # ``where`` is "<file> <key path of the mapping>" (or just a name): the line goes
        # after the file, the rule's path after the mapping's, as config errors read elsewhere
        file, _, prefix = self.where.partition(" ")
        place = f"{file}:{line}" if line else file
        rule = _dotted(loc)
        full = f"{prefix}.{rule}" if prefix and rule else (prefix or rule)
        about = f" (field {field})" if field else ""
        return ConfigError(f"{place} {full}{about}: {msg}", field=full or "(top)")

    def name(self, obj: Any) -> str:
        n = f"_n{len(self.names)}"
        self.names[n] = obj
        return n

    # ----------------------------------------------------------------- the spec

    def spec(self, spec: Mapping[str, Any]) -> tuple[list[str], set[str]]:
        if not isinstance(spec, Mapping):
            raise self.fail((), "a mapping must be a mapping with rules:")
        for key in spec:
            if key not in SPEC_KEYS:
                raise self.fail((key,), f"unknown key {key!r}; allowed: {', '.join(SPEC_KEYS)}")
        tables = spec.get("code_tables") or {}
        if not isinstance(tables, Mapping):
            raise self.fail(("code_tables",), "code_tables must map names to {code: value}")
        for tname, table in tables.items():
            self.code_tables[str(tname)] = self.table(table, ("code_tables", tname))
        policy = spec.get("unmapped_fields", "drop")
        if policy not in ("drop", "keep"):
            raise self.fail(("unmapped_fields",), f"must be drop or keep, not {policy!r}")
        self.keep_unmapped = policy == "keep"
        if "salt" in spec:
            self.salt = self.salt_text(spec["salt"], ("salt",), None)
        rules = spec.get("rules")
        if not isinstance(rules, list):
            raise self.fail(("rules",), "rules must be a list of rules")
        consumed: set[str] = set()
        lines = self.rules(rules, ("rules",), consumed)
        return lines, consumed

    def table(self, table: Any, loc: tuple[Any, ...]) -> dict[str, Any]:
        if not isinstance(table, Mapping) or not table:
            raise self.fail(loc, "a code table must be a non-empty mapping {code: value}")
        # YAML reads an unquoted 01 as the number 1: codes are compared as text.
        return {str(k): v for k, v in table.items()}

    def salt_text(self, raw: Any, loc: tuple[Any, ...], field: str | None) -> str:
        if not isinstance(raw, str):
            raise self.fail(loc, "salt must be a string (use ${ENV_VAR})", field)

        # The config loader expands ${VAR} already; a spec compiled on its own is expanded here.
        def repl(m: re.Match[str]) -> str:
            got = os.environ.get(m.group(1))
            if got is None:
                if m.group(2) is not None:
                    return m.group(2)
                raise self.fail(loc, f"environment variable {m.group(1)} is not set", field)
            return got

        salt = _ENV.sub(repl, raw)
        if len(salt) < _MIN_SALT:
            raise self.fail(loc, f"salt must be at least {_MIN_SALT} characters", field)
        return salt

    # ----------------------------------------------------------------- rules

    def rules(self, rules: list[Any], loc: tuple[Any, ...], consumed: set[str]) -> list[str]:
        lines: list[str] = []
        for i, rule in enumerate(rules):
            rloc = (*loc, i)
            if not isinstance(rule, Mapping):
                raise self.fail(rloc, "a rule must be a mapping (e.g. {to: x, from: y})")
            if "when" in rule:
                lines += self.when(rule, rloc, consumed)
            else:
                lines += self.rule(rule, rloc, consumed)
        return lines

    def when(self, rule: Mapping[str, Any], loc: tuple[Any, ...], consumed: set[str]) -> list[str]:
        for key in rule:
            if key not in WHEN_KEYS:
                raise self.fail(
                    (*loc, key),
                    f"unknown key {key!r} in a conditional rule; allowed: {', '.join(WHEN_KEYS)}",
                )
        cond = rule["when"]
        conds = cond if isinstance(cond, list) else [cond]
        tests = [
            self.condition(c, (*loc, "when", j) if isinstance(cond, list) else (*loc, "when"))
            for j, c in enumerate(conds)
        ]
        if not tests:
            raise self.fail((*loc, "when"), "when needs at least one condition")
        test = tests[0] if len(tests) == 1 else _all_of(tuple(tests))
        then_rules = rule.get("rules", [])
        else_rules = rule.get("else", [])
        for key, sub in (("rules", then_rules), ("else", else_rules)):
            if not isinstance(sub, list):
                raise self.fail((*loc, key), f"{key} must be a list of rules")
        if not then_rules and not else_rules:
            raise self.fail(loc, "a conditional rule needs rules: (and/or else:)")
        body = self.rules(then_rules, (*loc, "rules"), consumed) or ["pass"]
        other = self.rules(else_rules, (*loc, "else"), consumed)
        lines = [f"if {self.name(test)}(rec):", *("    " + x for x in body)]
        if other:
            lines += ["else:", *("    " + x for x in other)]
        return lines

    def condition(self, cond: Any, loc: tuple[Any, ...]) -> Callable[[Any], bool]:
        if not isinstance(cond, Mapping):
            raise self.fail(loc, "a condition is {field: X, equals: V} (or in / not_in / exists)")
        for key in cond:
            if key not in _CONDITION_KEYS:
                raise self.fail(
                    (*loc, key), f"unknown key {key!r}; allowed: {', '.join(_CONDITION_KEYS)}"
                )
        field = cond.get("field")
        get = self.source_getter(field, (*loc, "field"), None)
        tests = [k for k in _CONDITION_KEYS[1:] if k in cond]
        if len(tests) != 1:
            raise self.fail(
                loc, "a condition needs exactly one of equals, not_equals, in, not_in, exists"
            )
        kind, want = tests[0], cond[tests[0]]
        if kind == "equals":
            return lambda rec: bool(get(rec) == want)
        if kind == "not_equals":
            return lambda rec: bool(get(rec) != want)
        if kind == "exists":
            if not isinstance(want, bool):
                raise self.fail((*loc, "exists"), "exists must be true or false")
            return lambda rec: (get(rec) is not None) is want
        if not isinstance(want, list):
            raise self.fail((*loc, kind), f"{kind} must be a list of values")
        try:
            options: frozenset[Any] | tuple[Any, ...] = frozenset(want)
        except TypeError:
            options = tuple(want)
        if kind == "in":
            return lambda rec: get(rec) in options
        return lambda rec: get(rec) not in options

    def source_getter(
        self, path: Any, loc: tuple[Any, ...], field: str | None
    ) -> Callable[[Any], Any]:
        keys = self.path(path, loc, field)
        if None in keys:
            raise self.fail(loc, f"{path!r}: [] is not allowed here", field)
        return _getter(keys)

    def path(self, path: Any, loc: tuple[Any, ...], field: str | None) -> list[Key]:
        if not isinstance(path, str) or not path:
            raise self.fail(loc, f"a field path must be a non-empty string, not {path!r}", field)
        try:
            return _parse_path(path)
        except ValueError as exc:
            raise self.fail(loc, str(exc), field) from None

    def rule(self, rule: Mapping[str, Any], loc: tuple[Any, ...], consumed: set[str]) -> list[str]:
        to = rule.get("to")
        field = (", ".join(map(str, to)) if isinstance(to, list) else str(to) if to else None) or (
            str(rule["from"]) if "from" in rule else None
        )
        for key in rule:
            if key not in RULE_KEYS:
                raise self.fail(
                    (*loc, key),
                    f"unknown rule key {key!r}; allowed: {', '.join(RULE_KEYS)} "
                    "(or when/rules/else for a conditional rule)",
                    field,
                )
        if to is None:
            raise self.fail(loc, "a rule needs to: (the target field)", field)
        sources = [k for k in ("from", "value", "concat") if k in rule]
        if len(sources) > 1:
            raise self.fail(loc, f"use one of from, value, concat; got {', '.join(sources)}", field)
        if not sources and "default" not in rule:
            raise self.fail(loc, "a rule needs from:, value:, concat: or default:", field)

        # ------------------------------------------------------- targets
        if isinstance(to, list):
            if "split" not in rule:
                raise self.fail((*loc, "to"), "a list of targets needs split:", field)
            targets = [self.path(t, (*loc, "to", j), field) for j, t in enumerate(to)]
            if any(None in t for t in targets):
                raise self.fail((*loc, "to"), "split targets cannot use []", field)
        else:
            targets = [self.path(to, (*loc, "to"), field)]
        if any(isinstance(k, int) and k < 0 for t in targets for k in t):
            raise self.fail((*loc, "to"), "a target index must be 0 or more", field)
        label = field or "?"

        # ------------------------------------------------------- source
        src_keys: list[Key] | None = None
        if "from" in rule:
            src_keys = self.path(rule["from"], (*loc, "from"), field)
            consumed.add(str(src_keys[0]))
        src_label = str(rule.get("from", "value"))

        # ------------------------------------------------------- steps
        steps = self.steps(rule, loc, label, src_label)
        has_each = "each" in rule
        if has_each:
            if steps:
                raise self.fail(
                    (*loc, "each"),
                    "each cannot be combined with fn, type, code_table, mask, hash",
                    field,
                )
            steps = [self.each(rule["each"], (*loc, "each"), label)]
        split_step: Step | None = None
        if "split" in rule:
            split_step = self.split(rule, loc, label, len(targets) > 1)

        default = rule.get("default")
        required = rule.get("required", False)
        if not isinstance(required, bool):
            raise self.fail((*loc, "required"), "required must be true or false", field)

        # array rule: from/to with []
        if (src_keys is not None and None in src_keys) or None in targets[0]:
            if src_keys is None or None not in src_keys:
                raise self.fail(
                    (*loc, "to"), f"target {to!r} has [] but the source has none", field
                )
            if split_step is not None or len(targets) > 1:
                raise self.fail(loc, "split cannot be used with [] paths", field)
            fn = self.array_rule(src_keys, targets[0], steps, default, required, label, src_label)
            return [f"{self.name(fn)}(rec, out, w)"]

        lines: list[str] = []
        if src_keys is not None:
            if all(isinstance(k, str) for k in src_keys) and len(src_keys) == 1:
                lines.append(f"v = rec.get({src_keys[0]!r})")
            elif all(isinstance(k, str) for k in src_keys):
                # the parent object is read once per record, in the function's prologue
                parent = _parent_marker(tuple(str(k) for k in src_keys[:-1]))
                lines.append(
                    f"v = {parent}.get({src_keys[-1]!r}) if {parent} is not None else None"
                )
            else:
                lines.append(f"v = {self.name(_getter(src_keys))}(rec)")
        elif "value" in rule:
            lines.append(self.constant(rule["value"]))
        elif "concat" in rule:
            lines.append(f"v = {self.name(self.concat(rule, loc, field, consumed))}(rec)")
        else:
            lines.append("v = None")
        if split_step is not None:
            pipeline = self.pipeline(steps, split_step)
            lines += ["if v is not None:", f"    v = {self.name(pipeline)}(v, w)"]
        else:
            lines += self.step_lines(steps)
        if default is not None:
            lines += ["if v is None:", "    " + self.constant(default)]
        if required:
            msg = f"required field {label} is missing (from {src_label})"
            lines += ["if v is None:", f"    raise _MappingError({msg!r}, field={label!r})"]
        if len(targets) > 1:
            lines += ["if v is not None:", f"    {self.name(self.split_setter(targets))}(out, v)"]
        elif len(targets[0]) == 1:
            lines += ["if v is not None:", f"    out[{targets[0][0]!r}] = v"]
        else:
            lines += ["if v is not None:", f"    {self.name(_setter(targets[0]))}(out, v)"]
        return lines

    def step_lines(self, steps: list[Step]) -> list[str]:
        """Each step as generated code, nested under ``if v is not None`` (a step may make the
        value absent); steps with a fast path are inlined."""
        lines: list[str] = []
        indent = ""
        for step in steps:
            f = self.name(step)
            lines.append(f"{indent}if v is not None:")
            indent += "    "
            for t in self.inline.get(step, ["v = {f}(v, w)"]):
                lines.append(indent + t.replace("{f}", f))
        return lines

    def constant(self, value: Any) -> str:
        if isinstance(value, (dict, list)):
            return f"v = _deepcopy({self.name(value)})"
        return f"v = {self.name(value)}"

    # ----------------------------------------------------------------- steps

    def steps(
        self, rule: Mapping[str, Any], loc: tuple[Any, ...], label: str, src: str
    ) -> list[Step]:
        steps: list[Step] = []
        if "fn" in rule:
            steps += self.functions_of(rule["fn"], (*loc, "fn"), label)
        if "code_table" in rule:
            steps.append(self.code_table(rule, loc, label, src))
        elif "unmapped" in rule:
            raise self.fail((*loc, "unmapped"), "unmapped: needs code_table:", label)
        if "type" in rule:
            steps.append(self.coerce(rule, loc, label, src))
        else:
            for key in ("formats", "tz", "scale"):
                if key in rule:
                    raise self.fail((*loc, key), f"{key}: needs a type: that uses it", label)
        if "mask" in rule:
            steps.append(self.mask(rule["mask"], (*loc, "mask"), label))
        if "hash" in rule:
            steps.append(self.hash(rule, loc, label))
        elif "salt" in rule:
            raise self.fail((*loc, "salt"), "salt: needs hash: sha256", label)
        if "sep" in rule and "concat" not in rule:
            raise self.fail((*loc, "sep"), "sep: belongs to concat:", label)
        return steps

    def pipeline(self, steps: list[Step], split_step: Step | None) -> Step | None:
        if split_step is not None:
            inner = self.pipeline(steps, None)
            if inner is None:
                return split_step

            def split_then(v: Any, w: list[str] | None) -> Any:
                parts = split_step(v, w)
                if parts is None:
                    return None
                return [inner(p, w) if p is not None else None for p in parts]

            return split_then
        if not steps:
            return None
        if len(steps) == 1:
            return steps[0]
        chain = tuple(steps)

        def run(v: Any, w: list[str] | None) -> Any:
            for step in chain:
                v = step(v, w)
                if v is None:
                    return None
            return v

        return run

    def functions_of(self, spec: Any, loc: tuple[Any, ...], label: str) -> list[Step]:
        items = spec if isinstance(spec, list) else [spec]
        out: list[Step] = []
        values = sorted(n for n, s in self.functions.items() if s.kind == "value")
        for j, item in enumerate(items):
            iloc = (*loc, j) if isinstance(spec, list) else loc
            if isinstance(item, str):
                fname, args = item, []
            elif isinstance(item, Mapping) and set(item) <= {"name", "args"} and "name" in item:
                fname, args = item["name"], item.get("args", [])
                if not isinstance(args, list):
                    raise self.fail((*iloc, "args"), "args must be a list", label)
            else:
                raise self.fail(iloc, "fn is a name or {name: f, args: [...]}, or a list", label)
            fspec = self.functions.get(fname)
            if fspec is None or fspec.kind != "value":
                what = "unknown function" if fspec is None else "a record function, not a value one"
                raise self.fail(
                    iloc, f"{what} {fname!r}; value functions: {', '.join(values) or 'none'}", label
                )
            out.append(_call_function(fspec.func, fname, tuple(args), label))
        return out

    def code_table(
        self, rule: Mapping[str, Any], loc: tuple[Any, ...], label: str, src: str
    ) -> Step:
        step, table = self._code_table(rule, loc, label, src)
        # the common case (a known text code) runs inline; everything else calls the step
        t = self.name(table)
        self.inline[step] = [
            f"x = {t}.get(v) if v.__class__ is str else None",
            "v = x if x is not None else {f}(v, w)",
        ]
        return step

    def _code_table(
        self, rule: Mapping[str, Any], loc: tuple[Any, ...], label: str, src: str
    ) -> tuple[Step, dict[str, Any]]:
        ref = rule["code_table"]
        if isinstance(ref, str):
            if ref not in self.code_tables:
                known = ", ".join(sorted(self.code_tables)) or "none"
                raise self.fail(
                    (*loc, "code_table"), f"unknown code table {ref!r}; defined: {known}", label
                )
            table, tname = self.code_tables[ref], ref
        else:
            table, tname = self.table(ref, (*loc, "code_table")), "(inline)"
        policy = rule.get("unmapped", "reject")
        if isinstance(policy, Mapping) and set(policy) == {"default"}:
            fallback = policy["default"]

            def lookup_default(v: Any, w: list[str] | None) -> Any:
                key = v if isinstance(v, str) else str(v)
                if not key.strip():
                    return None
                return table.get(key, fallback)

            return lookup_default, table
        if policy == "pass":

            def lookup_pass(v: Any, w: list[str] | None) -> Any:
                key = v if isinstance(v, str) else str(v)
                if not key.strip():
                    return None
                got = table.get(key, _NO)
                if got is _NO:
                    if w is not None:
                        w.append(
                            f"{label}: code {key!r} (from {src}) is not in code table "
                            f"{tname}; passed through unchanged"
                        )
                    return v
                return got

            return lookup_pass, table
        if policy == "reject":

            def lookup_reject(v: Any, w: list[str] | None) -> Any:
                key = v if isinstance(v, str) else str(v)
                if not key.strip():
                    return None
                got = table.get(key, _NO)
                if got is _NO:
                    raise MappingError(
                        f"code {key!r} (from {src}) is not in code table {tname}", field=label
                    )
                return got

            return lookup_reject, table
        raise self.fail(
            (*loc, "unmapped"),
            f"unmapped must be reject, pass or {{default: X}}, not {policy!r}",
            label,
        )

    def coerce(self, rule: Mapping[str, Any], loc: tuple[Any, ...], label: str, src: str) -> Step:
        kind = rule["type"]
        if kind not in TYPES:
            raise self.fail(
                (*loc, "type"), f"unknown type {kind!r}; allowed: {', '.join(TYPES)}", label
            )
        for key, allowed in (
            ("formats", ("date", "datetime")),
            ("tz", ("date", "datetime")),
            ("scale", ("decimal",)),
        ):
            if key in rule and kind not in allowed:
                raise self.fail((*loc, key), f"{key}: applies to type {' / '.join(allowed)}", label)
        if kind in ("date", "datetime"):
            formats = rule.get("formats")
            if formats is not None and (not isinstance(formats, list) or not formats):
                raise self.fail((*loc, "formats"), "formats must be a non-empty list", label)
            tz = rule.get("tz", "+08:00")
            try:
                parse = compile_date_parser(formats, tz=str(tz), naive_in_tz=True)
                zone = parse_tz(str(tz))
            except DateFormatError as exc:
                raise self.fail((*loc, "formats" if formats else "tz"), str(exc), label) from None
            first = compile_date_matchers(formats, tz=str(tz), naive_in_tz=True)[0]
            if kind == "date":
                return _date_step(first, parse, iso_date, zone, label, src)
            return _datetime_step(first, parse, zone, label, src)
        if kind == "decimal":
            scale = rule.get("scale")
            if scale is not None and (
                not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= 18
            ):
                raise self.fail((*loc, "scale"), "scale must be a whole number 0..18", label)
            return _decimal_step(scale, label, src)
        step = _COERCERS[kind](label, src)
        if kind == "str":
            self.inline[step] = [
                "if v.__class__ is not str:",
                "    v = str(v) if v.__class__ is int else {f}(v, w)",
            ]
        return step

    def mask(self, spec: Any, loc: tuple[Any, ...], label: str) -> Step:
        if isinstance(spec, str):
            if spec not in MASKS:
                raise self.fail(loc, f"unknown mask {spec!r}; allowed: {', '.join(MASKS)}", label)
            masker = MASKS[spec]
        elif isinstance(spec, Mapping) and set(spec) <= {"keep_first", "keep_last", "char"}:
            first, last = spec.get("keep_first", 0), spec.get("keep_last", 0)
            char = spec.get("char", "*")
            if not all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in (first, last)
            ):
                raise self.fail(loc, "keep_first and keep_last must be whole numbers >= 0", label)
            if not isinstance(char, str) or len(char) != 1:
                raise self.fail(loc, "char must be one character", label)

            def masker(s: str) -> str:
                return keep_ends(s, first, last, char)
        else:
            raise self.fail(
                loc,
                f"mask is one of {', '.join(MASKS)} or {{keep_first: N, keep_last: N, char: '*'}}",
                label,
            )

        def mask(v: Any, w: list[str] | None) -> Any:
            return masker(v if isinstance(v, str) else str(v))

        return mask

    def hash(self, rule: Mapping[str, Any], loc: tuple[Any, ...], label: str) -> Step:
        if rule["hash"] != "sha256":
            raise self.fail((*loc, "hash"), "hash must be sha256", label)
        if "salt" in rule:
            salt = self.salt_text(rule["salt"], (*loc, "salt"), label)
        elif self.salt is not None:
            salt = self.salt
        else:
            raise self.fail(
                (*loc, "hash"),
                "hash needs a salt: (on the rule or the mapping; use ${ENV_VAR})",
                label,
            )
        salt_b = salt.encode("utf-8")

        def hash_(v: Any, w: list[str] | None) -> Any:
            return salted_sha256(v if isinstance(v, str) else str(v), salt_b)

        return hash_

    def split(self, rule: Mapping[str, Any], loc: tuple[Any, ...], label: str, multi: bool) -> Step:
        sep = rule["split"]
        if not isinstance(sep, str) or not sep:
            raise self.fail((*loc, "split"), "split must be a non-empty separator string", label)
        if "from" not in rule:
            raise self.fail((*loc, "split"), "split needs from:", label)

        def split_(v: Any, w: list[str] | None) -> Any:
            if not isinstance(v, str):
                raise MappingError(f"cannot split a {type(v).__name__}: {v!r}", field=label)
            return [p.strip() for p in v.split(sep)]

        return split_

    def split_setter(self, targets: list[list[Key]]) -> Callable[[Any, Any], None]:
        puts = [_setter(t) for t in targets]

        def put(out: Any, parts: Any) -> None:
            for p, part in zip(puts, parts, strict=False):
                if part is not None and part != "":
                    p(out, part)

        return put

    def concat(
        self, rule: Mapping[str, Any], loc: tuple[Any, ...], field: str | None, consumed: set[str]
    ) -> Callable[[Any], Any]:
        parts = rule["concat"]
        sep = rule.get("sep", "")
        if not isinstance(parts, list) or not parts:
            raise self.fail((*loc, "concat"), "concat must be a list of fields", field)
        if not isinstance(sep, str):
            raise self.fail((*loc, "sep"), "sep must be a string", field)
        readers: list[Callable[[Any], Any]] = []
        for j, part in enumerate(parts):
            if isinstance(part, Mapping) and set(part) == {"value"}:
                text = str(part["value"])
                readers.append(_const_reader(text))
            else:
                keys = self.path(part, (*loc, "concat", j), field)
                if None in keys:
                    raise self.fail((*loc, "concat", j), "concat parts cannot use []", field)
                consumed.add(str(keys[0]))
                readers.append(_getter(keys))
        fields = tuple(readers)

        def concat(rec: Any) -> Any:
            got = [str(x) for x in (r(rec) for r in fields) if x is not None and x != ""]
            return sep.join(got) if got else None

        return concat

    def each(self, rules: Any, loc: tuple[Any, ...], label: str) -> Step:
        if not isinstance(rules, list):
            raise self.fail(loc, "each must be a list of rules for one element", label)
        consumed: set[str] = set()
        lines = self.rules(rules, loc, consumed)
        sub = self.function(lines, consumed, f"{self.where} {_dotted(loc)}")

        def each(v: Any, w: list[str] | None) -> Any:
            if not isinstance(v, list):
                raise MappingError(f"expected a list, got {type(v).__name__}", field=label)
            out: list[Any] = []
            append = out.append
            try:
                for el in v:
                    if el.__class__ is not dict and not isinstance(el, dict):
                        raise MappingError(
                            f"element {len(out)} must be an object, got {type(el).__name__}",
                            field="",
                        )
                    append(sub(el, w))
            except MappingError as exc:  # the element that failed is the next one, len(out)
                where = f"{label}[{len(out)}]" + (f".{exc.field}" if exc.field else "")
                raise MappingError(exc.message, field=where) from None
            return out

        return each

    def array_rule(
        self,
        src: list[Key],
        dst: list[Key],
        steps: list[Step],
        default: Any,
        required: bool,
        label: str,
        src_label: str,
    ) -> Callable[[Any, Any, list[str] | None], None]:
        star = src.index(None)
        get_list, get_el = _getter(src[:star]), src[star + 1 :]
        read = _getter(get_el) if get_el else (lambda x: x)
        pipeline = self.pipeline(steps, None)
        many = None in dst
        if many:
            dstar = dst.index(None)
            out_list = dst[:dstar]
            el_keys = dst[dstar + 1 :]
            put = _setter(el_keys) if el_keys else None
            list_put = _setter(out_list)
            list_get = _getter(out_list)
        else:
            whole_put = _setter(dst)
        dflt = copy.deepcopy

        def apply(rec: Any, out: Any, w: list[str] | None) -> None:
            items = get_list(rec)
            if items is None:
                return
            if not isinstance(items, list):
                raise MappingError(
                    f"{src_label}: expected a list, got {type(items).__name__}", field=label
                )
            values = []
            for i, el in enumerate(items):
                v = read(el)
                try:
                    if v is not None and pipeline is not None:
                        v = pipeline(v, w)
                except MappingError as exc:
                    raise MappingError(exc.message, field=label.replace("[]", f"[{i}]")) from None
                if v is None and default is not None:
                    v = dflt(default)
                if v is None and required:
                    raise MappingError(
                        f"required field is missing (from {src_label.replace('[]', f'[{i}]')})",
                        field=label.replace("[]", f"[{i}]"),
                    )
                values.append(v)
            if not many:
                whole_put(out, [v for v in values if v is not None])
                return
            target = list_get(out)
            if not isinstance(target, list):
                target = []
                list_put(out, target)
            for i, v in enumerate(values):
                while len(target) <= i:
                    target.append({} if put is not None else None)
                if put is None:
                    target[i] = v
                elif v is not None:
                    if not isinstance(target[i], dict):
                        target[i] = {}
                    put(target[i], v)

        return apply

    # ----------------------------------------------------------------- code generation

    def function(
        self, lines: list[str], consumed: set[str], where: str
    ) -> Callable[[dict[str, Any], list[str] | None], dict[str, Any]]:
        fn, _ = self.generate(lines, consumed, where)
        return fn

    def generate(
        self, lines: list[str], consumed: set[str], where: str
    ) -> tuple[Callable[[dict[str, Any], list[str] | None], dict[str, Any]], str]:
        parents: dict[tuple[str, ...], str] = {}

        def local(m: re.Match[str]) -> str:
            key = tuple(orjson.loads(m.group(1)))
            return parents.setdefault(key, f"_p{len(parents)}")

        lines = [_PARENT.sub(local, x) for x in lines]
        prologue: list[str] = []
        for key, name in parents.items():
            prologue.append(f"{name} = rec.get({key[0]!r})")
            prologue += [
                f"{name} = {name}.get({k!r}) if {name}.__class__ is dict else None" for k in key[1:]
            ]
            prologue.append(f"{name} = {name} if {name}.__class__ is dict else None")
        body = ["out = {}", *prologue, *lines]
        if self.keep_unmapped:
            used = self.name(frozenset(consumed))
            body += [
                "for k, x in rec.items():",
                f"    if k not in {used} and k not in out:",
                "        out[k] = x",
            ]
        body.append("return out")
        source = "def _mapping(rec, w):\n" + "".join(f"    {x}\n" for x in body)
        namespace = dict(self.names)
        exec(compile(source, f"<mapping {where}>", "exec"), namespace)
        fn: Callable[[dict[str, Any], list[str] | None], dict[str, Any]] = namespace["_mapping"]
        return fn, source


_NO = object()

#: a nested source path's parent object, replaced by a local of the generated function
_PARENT = re.compile(r"\x00P(\[[^\x00]*\])\x00")


def _parent_marker(keys: tuple[str, ...]) -> str:
    return "\x00P" + orjson.dumps(list(keys)).decode() + "\x00"


def _all_of(tests: tuple[Callable[[Any], bool], ...]) -> Callable[[Any], bool]:
    def all_hold(rec: Any) -> bool:
        return all(t(rec) for t in tests)

    return all_hold


def _const_reader(text: str) -> Callable[[Any], Any]:
    def const(rec: Any) -> Any:
        return text

    return const


# --------------------------------------------------------------------------- conversions


def _bad(label: str, src: str, v: Any, what: str) -> MappingError:
    return MappingError(f"{v!r} (from {src}) is not {what}", field=label)


def _blank(v: Any) -> bool:
    return isinstance(v, str) and not v.strip()


def _call_function(func: Callable[..., Any], fname: str, args: tuple[Any, ...], label: str) -> Step:
    def call(v: Any, w: list[str] | None) -> Any:
        try:
            return func(v, *args)
        except HubError:
            raise
        except Exception as exc:
            raise MappingError(
                f"function {fname} failed on {v!r}: {type(exc).__name__}: {exc}", field=label
            ) from exc

    return call


def _str_step(label: str, src: str) -> Step:
    def to_str(v: Any, w: list[str] | None) -> Any:
        if isinstance(v, str):
            return v
        if isinstance(v, (dict, list)):
            raise _bad(label, src, v, "a text value")
        return str(v)

    return to_str


def _int_step(label: str, src: str) -> Step:
    def to_int(v: Any, w: list[str] | None) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str):
            s = v.strip()
            if not s:
                return None
            if _INT.fullmatch(s):
                return int(s)
            try:
                d = Decimal(s)
            except InvalidOperation:
                raise _bad(label, src, v, "a whole number") from None
            if d.is_finite() and d == d.to_integral_value():
                return int(d)
            raise _bad(label, src, v, "a whole number")
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise _bad(label, src, v, "a whole number")

    return to_int


def _float_step(label: str, src: str) -> Step:
    def to_float(v: Any, w: list[str] | None) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal)):
            raise _bad(label, src, v, "a number")
        if _blank(v):
            return None
        try:
            f = float(v)
        except ValueError:
            raise _bad(label, src, v, "a number") from None
        if not math.isfinite(f):
            raise _bad(label, src, v, "a finite number")
        return f

    return to_float


def _decimal_step(scale: int | None, label: str, src: str) -> Step:
    quantum = Decimal(1).scaleb(-scale) if scale is not None else None

    def to_decimal(v: Any, w: list[str] | None) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal)):
            raise _bad(label, src, v, "a decimal number")
        if _blank(v):
            return None
        try:
            d = Decimal(v.strip() if isinstance(v, str) else str(v))
        except InvalidOperation:
            raise _bad(label, src, v, "a decimal number") from None
        if not d.is_finite():
            raise _bad(label, src, v, "a finite decimal number")
        if quantum is not None:
            d = d.quantize(quantum, rounding=ROUND_HALF_UP)
        # a string keeps every digit; a JSON number would go through a binary float
        return str(d)

    return to_decimal


def _bool_step(label: str, src: str) -> Step:
    def to_bool(v: Any, w: list[str] | None) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and v in (0, 1):
            return v == 1
        if isinstance(v, str):
            s = v.strip().lower()
            if not s:
                return None
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
        raise _bad(label, src, v, "a yes/no value (1/0, 是/否, Y/N, true/false)")

    return to_bool


def _date_step(
    first: Callable[[Any], date | datetime | None],
    parse: Callable[[Any], date | datetime],
    out: Callable[[Any, Any], str],
    zone: Any,
    label: str,
    src: str,
) -> Step:
    def to_date(v: Any, w: list[str] | None) -> Any:
        got = first(v)
        if got is None:
            if _blank(v):
                return None
            try:
                got = parse(v)
            except ValueError as exc:
                raise MappingError(f"{exc} (from {src})", field=label) from None
        return out(got, zone)

    return to_date


def _datetime_step(
    first: Callable[[Any], date | datetime | None],
    parse: Callable[[Any], date | datetime],
    zone: Any,
    label: str,
    src: str,
) -> Step:
    def to_datetime(v: Any, w: list[str] | None) -> Any:
        got = first(v)  # the first format is the department's usual one: no loop, no call
        if got is None:
            if _blank(v):
                return None
            try:
                got = parse(v)
            except ValueError as exc:
                raise MappingError(f"{exc} (from {src})", field=label) from None
        if got.__class__ is datetime and got.tzinfo is zone:  # type: ignore[union-attr]
            return got.isoformat()
        return iso_datetime(got, zone)

    return to_datetime


_COERCERS: dict[str, Callable[[str, str], Step]] = {
    "str": _str_step,
    "int": _int_step,
    "float": _float_step,
    "bool": _bool_step,
}


# --------------------------------------------------------------------------- entry point


def compile_mapping(
    spec: Mapping[str, Any],
    *,
    functions: Mapping[str, TransformFunctionSpec],
    where: str = "mapping",
    line_of: Callable[[tuple[Any, ...]], int | None] | None = None,
) -> CompiledMapping:
    """Compile once at config load; raise hub.errors.ConfigError whose message names the
    file/where, the line (via line_of on the key path relative to the spec, if given), the rule
    (rules[3]) and the field."""
    c = _Compiler(functions, where, line_of)
    lines, consumed = c.spec(spec)
    fn, source = c.generate(lines, consumed, where)
    return CompiledMapping(fn, source, where)
