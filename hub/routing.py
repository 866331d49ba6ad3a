"""Routes compiled once at start: which targets get a record, through which transform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.config import FilterRule, Route
from hub.specs import TransformFunctionSpec

__all__ = ["CompiledRoute", "RouteTargetRuntime", "compile_filter", "compile_route", "get_path"]

Record = dict[str, Any]
_MISSING = object()


def get_path(record: Any, path: str) -> Any:
    """Value at a dotted path (``a.b.0.c``), or a private sentinel when absent."""
    cur = record
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part, _MISSING)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def _rule(rule: FilterRule) -> Callable[[Record], bool]:
    path = rule.field
    if rule.exists is not None:
        want = rule.exists
        return lambda r: (get_path(r, path) is not _MISSING) == want
    if rule.in_ is not None:
        allowed = list(rule.in_)
        return lambda r: get_path(r, path) in allowed
    if rule.contains is not None:
        member = rule.contains
        return lambda r: _holds(get_path(r, path), member)
    if rule.not_in is not None:
        banned = list(rule.not_in)
        return lambda r: get_path(r, path) not in banned
    expected = rule.equals
    return lambda r: get_path(r, path) == expected


def _holds(value: Any, member: Any) -> bool:
    """``contains``: a list (or tuple) holding ``member``; anything else holds nothing."""
    return isinstance(value, (list, tuple)) and member in value


def compile_filter(rules: list[FilterRule]) -> Callable[[Record], bool] | None:
    """One predicate for all rules (``None`` when the route has no filter)."""
    if not rules:
        return None
    preds = [_rule(r) for r in rules]
    if len(preds) == 1:
        return preds[0]
    return lambda r: all(p(r) for p in preds)


@dataclass(frozen=True, slots=True)
class RouteTargetRuntime:
    route: str
    target: str
    transform_name: str
    transform: Callable[[Record], Record]
    ordered: bool


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    source: str
    dataset: str
    ordered: bool
    predicate: Callable[[Record], bool] | None
    targets: tuple[RouteTargetRuntime, ...]


def compile_route(route: Route, transforms: dict[str, TransformFunctionSpec]) -> CompiledRoute:
    targets = []
    for t in route.targets:
        name = t.transform or "identity"
        spec = transforms.get(name)
        if spec is None:
            from hub.errors import ConfigError

            raise ConfigError(
                f"route {route.name!r} target {t.system!r}: unknown transform {name!r}; "
                f"registered: {', '.join(sorted(transforms))}",
                field=f"routes.{route.name}.targets.{t.system}.transform",
            )
        if spec.kind != "record":
            from hub.errors import ConfigError

            raise ConfigError(
                f"route {route.name!r} target {t.system!r}: {name!r} is a value function "
                "(for mapping rules), not a record transform",
                field=f"routes.{route.name}.targets.{t.system}.transform",
            )
        targets.append(RouteTargetRuntime(route.name, t.system, name, spec.func, route.ordered))
    return CompiledRoute(
        route.name,
        route.source,
        route.dataset,
        route.ordered,
        compile_filter(route.filter),
        tuple(targets),
    )
