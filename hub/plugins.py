"""The plugin manager: loads built-in and third-party plugins the same way and collects what
they register.

Load order is fixed: the built-in entry points (``core``, then ``contracts``), then every other
entry point of the ``jghub.plugins`` group sorted by name, then plugin objects passed in by the
caller (tests). ``JGHUB_PLUGINS=name,name`` limits which entry points load (``core`` always
does). A misspelled hook implementation or a duplicate spec name fails at start.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from hub import hookspecs
from hub.errors import PluginError
from hub.specs import (
    AdapterSpec,
    ComparatorSpec,
    DatasetSpec,
    SignerSpec,
    SourceSpec,
    TransformFunctionSpec,
    TransportSpec,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Registry",
    "SpecTable",
    "acall",
    "add_declared_datasets",
    "build_plugin_manager",
    "hookimpl",
    "load_registry",
]

ENTRY_POINT_GROUP = "jghub.plugins"
_BUILTIN_ORDER = ("core", "contracts")

hookimpl = pluggy.HookimplMarker("jghub")

S = TypeVar(
    "S",
    AdapterSpec,
    TransportSpec,
    SignerSpec,
    TransformFunctionSpec,
    DatasetSpec,
    SourceSpec,
    ComparatorSpec,
)


@dataclass
class SpecTable(Generic[S]):
    """Specs of one kind by name, remembering which plugin registered each."""

    kind: str
    specs: dict[str, S] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, spec: S, owner: str) -> None:
        if spec.name in self.specs:
            raise PluginError(
                f"{self.kind} {spec.name!r} is registered twice: by {self.owners[spec.name]!r} "
                f"and by {owner!r}; plugin names must be unique",
                field=f"{self.kind}.{spec.name}",
            )
        self.specs[spec.name] = spec
        self.owners[spec.name] = owner

    def get(self, name: str, *, wanted_by: str = "") -> S:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(sorted(self.specs)) or "none"
            where = f" (wanted by {wanted_by})" if wanted_by else ""
            raise PluginError(
                f"unknown {self.kind} {name!r}{where}; registered: {known}",
                field=self.kind,
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def names(self) -> list[str]:
        return sorted(self.specs)


@dataclass
class Registry:
    """Everything the loaded plugins registered."""

    adapters: SpecTable[AdapterSpec] = field(default_factory=lambda: SpecTable("adapter"))
    transports: SpecTable[TransportSpec] = field(default_factory=lambda: SpecTable("transport"))
    signers: SpecTable[SignerSpec] = field(default_factory=lambda: SpecTable("signer"))
    transform_functions: SpecTable[TransformFunctionSpec] = field(
        default_factory=lambda: SpecTable("transform function")
    )
    datasets: SpecTable[DatasetSpec] = field(default_factory=lambda: SpecTable("dataset"))
    sources: SpecTable[SourceSpec] = field(default_factory=lambda: SpecTable("source"))
    comparators: SpecTable[ComparatorSpec] = field(default_factory=lambda: SpecTable("comparator"))


def _entry_point_plugins() -> list[tuple[str, Any]]:
    eps = list(entry_points(group=ENTRY_POINT_GROUP))
    only = os.environ.get("JGHUB_PLUGINS")
    allowed = None if not only else {n.strip() for n in only.split(",")} | {"core"}
    rank = {name: i for i, name in enumerate(_BUILTIN_ORDER)}
    eps.sort(key=lambda ep: (rank.get(ep.name, len(rank)), ep.name))
    loaded: list[tuple[str, Any]] = []
    for ep in eps:
        if allowed is not None and ep.name not in allowed:
            continue
        try:
            loaded.append((ep.name, ep.load()))
        except Exception as exc:  # a broken plugin must stop the start, loudly
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}", field=ep.name
            ) from exc
    return loaded


def build_plugin_manager(
    extra_plugins: Iterable[object] = (), *, load_entry_points: bool = True
) -> pluggy.PluginManager:
    """Build a fresh plugin manager (no globals: every hub and test builds its own)."""
    pm = pluggy.PluginManager("jghub")
    pm.add_hookspecs(hookspecs)
    plugins: list[tuple[str, Any]] = _entry_point_plugins() if load_entry_points else []
    for i, plugin in enumerate(extra_plugins):
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{i}"
        plugins.append((name, plugin))
    for name, plugin in plugins:
        try:
            pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} registered twice: {exc}", field=name) from exc
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} is invalid: {exc}", field=name) from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(
            f"plugin {name!r} implements an unknown hook: {exc} "
            "(hooks are listed in hub/hookspecs.py)",
            field=name,
        ) from exc
    return pm


def _collect(
    pm: pluggy.PluginManager, hook_name: str, table: SpecTable[Any], spec_type: type
) -> None:
    hook = getattr(pm.hook, hook_name)
    # get_hookimpls() is in registration order (pluggy *calls* them last-registered first);
    # keep that order so the built-ins own their names and a later duplicate is the one blamed
    for impl in hook.get_hookimpls():
        result = impl.function()
        if result is None:
            continue
        # a str is a Sequence too, and a spec returned bare is a common slip
        if not isinstance(result, Sequence) or isinstance(result, (str, bytes)):
            raise PluginError(
                f"{hook_name} of plugin {impl.plugin_name!r} must return a list of specs, "
                f"got {type(result).__name__}",
                field=impl.plugin_name,
            )
        for spec in result:
            if not isinstance(spec, spec_type):
                raise PluginError(
                    f"{hook_name} of plugin {impl.plugin_name!r} returned a value of type "
                    f"{type(spec).__name__}; expected {spec_type.__name__} objects",
                    field=impl.plugin_name,
                )
            table.add(spec, impl.plugin_name)


def add_declared_datasets(reg: Registry, config: Any) -> set[str]:
    """Add the datasets a hub file declares in YAML (``datasets:``) to the registry, owned by
    ``config``; a name a plugin registered already fails. Returns their names."""
    from contracts.declared import load_dataset_files

    names: set[str] = set()
    for spec in load_dataset_files(config.base_dir, config.datasets):
        reg.datasets.add(spec, "config")
        names.add(spec.name)
    return names


def load_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every registration hook once and collect the specs, rejecting duplicate names."""
    reg = Registry()
    _collect(pm, "hub_register_adapters", reg.adapters, AdapterSpec)
    _collect(pm, "hub_register_transports", reg.transports, TransportSpec)
    _collect(pm, "hub_register_signers", reg.signers, SignerSpec)
    _collect(pm, "hub_register_transform_functions", reg.transform_functions, TransformFunctionSpec)
    _collect(pm, "hub_register_datasets", reg.datasets, DatasetSpec)
    _collect(pm, "hub_register_sources", reg.sources, SourceSpec)
    _collect(pm, "hub_register_comparators", reg.comparators, ComparatorSpec)
    return reg


async def acall(hook: pluggy.HookCaller, **kwargs: Any) -> list[Any]:
    """Call a hook and await every implementation that returned an awaitable, in order.

    pluggy itself is synchronous; this is the one place the core bridges to async plugins.
    """
    results = hook(**kwargs)
    out: list[Any] = []
    for r in results:
        out.append(await r if inspect.isawaitable(r) else r)
    return out
