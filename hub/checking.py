"""``jghub check``: validate config files offline, before a system goes live.

A hub file (it has ``routes``, ``systems`` or ``store``) is loaded with every system it names
and built into a hub (plugins resolved, adapter and transport options validated, routes
compiled) without opening the store or the network. A system file alone is checked for its
keys and for its adapter's and transport's options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hub.config import load_config, load_system_file, load_yaml_file
from hub.errors import ConfigError, HubError, UnreachableError
from hub.plugins import Registry, add_declared_datasets, build_plugin_manager, load_registry

__all__ = ["SampleOutcome", "SampleReport", "check_file", "check_samples", "probe_system"]

_HUB_KEYS = {"routes", "systems", "store", "hub", "listen", "dispatcher", "limits", "datasets"}


def registry_for(hub_config: Path | None) -> Registry:
    """The plugins' registry, plus the datasets a hub file declares in YAML (if given)."""
    reg = load_registry(build_plugin_manager())
    if hub_config is not None:
        add_declared_datasets(reg, load_config(hub_config))
    return reg


def check_file(path: Path, hub_config: Path | None = None) -> list[str]:
    """Problems found in ``path`` (empty when valid), each naming file, line and key.

    ``hub_config``: the hub file whose declared datasets a system file may send."""
    try:
        located = load_yaml_file(path)
        if _HUB_KEYS & set(located.data):
            from hub.runtime import Hub
            from hub.store.memory import MemoryStore

            Hub(load_config(path), store=MemoryStore())  # builds everything, opens nothing
            return []
        if "fields" in located.data:  # a dataset file
            from contracts.declared import load_dataset_file

            load_dataset_file(path)
            return []
        from hub.governance import build_outbound_mappings, build_pipelines
        from hub.runtime import resolve_system_plugins

        sc = load_system_file(path)
        registry = registry_for(hub_config)
        resolve_system_plugins(sc, registry)
        # compile its mappings and governance too, so a typo in a rule fails here
        build_pipelines(sc, registry)
        build_outbound_mappings(sc, registry)
        return []
    except HubError as err:
        msg = err.message
        if not msg.startswith(str(path)):
            msg = f"{path}: {msg}"
        return [f"{err.code} {line}" for line in msg.splitlines()]


# --------------------------------------------------------------------------- samples

#: sample file suffix -> the Content-Type the adapter is given
SAMPLE_TYPES = {
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".xml": "text/xml",
    ".csv": "text/csv",
}


@dataclass
class SampleOutcome:
    """One record of one sample file: its canonical form, or the exact errors."""

    sample: str
    index: int
    dataset: str
    canonical: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class SampleReport:
    outcomes: list[SampleOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(not o.errors for o in self.outcomes)


def _sample_files(samples: Path, datasets: list[str]) -> list[tuple[Path, str]]:
    """(file, dataset) pairs: files in a sub-folder named after a dataset are that dataset's;
    files directly in ``samples`` belong to the system's only dataset."""
    out: list[tuple[Path, str]] = []
    for p in sorted(samples.iterdir()):
        if p.is_dir() and p.name in datasets:
            out += [(f, p.name) for f in sorted(p.iterdir()) if f.suffix in SAMPLE_TYPES]
        elif p.is_file() and p.suffix in SAMPLE_TYPES:
            if len(datasets) != 1:
                raise ConfigError(
                    f"{p}: the system sends several datasets ({', '.join(datasets)}); put "
                    "samples in a sub-folder named after their dataset",
                    field="samples",
                )
            out.append((p, datasets[0]))
    return out


def _decode_sample(path: Path, adapter: Any, source: Any) -> list[Any]:
    """Decode a sample the way its records arrive: through the inbound source when it reads
    files itself (``decode_file``), else through the system's adapter."""
    decode_file = getattr(source, "decode_file", None)
    if callable(decode_file):
        return list(decode_file(path))
    body = path.read_bytes()
    return list(adapter.decode(body, SAMPLE_TYPES[path.suffix], {}))


async def check_samples(
    system_file: Path, samples: Path, *, live: bool = False, hub_config: Path | None = None
) -> SampleReport:
    """Run every sample through decode -> mapping -> cleaning -> contract -> governance and
    say, per record, what the hub would commit or exactly why it would refuse it.

    Nothing is stored. Comparators (they consult other systems) run only with ``live``."""
    from hub.governance import Pipeline, build_pipelines, error_for
    from hub.runtime import resolve_system_plugins
    from hub.validation import checked

    report = SampleReport()
    try:
        sc = load_system_file(system_file)
        registry = registry_for(hub_config)
        plug = resolve_system_plugins(sc, registry)
        adapter = plug.adapter.factory(sc.name, plug.adapter_options)
        pipelines = build_pipelines(sc, registry)
        source = (
            plug.source.factory(sc.name, plug.source_options) if plug.source is not None else None
        )
        if not samples.is_dir():
            raise ConfigError(f"{samples}: no such folder of samples", field="samples")
        files = _sample_files(samples, list(plug.datasets))
    except HubError as err:
        report.problems.append(f"{err.code} {err.message}")
        return report
    if not files:
        report.problems.append(
            f"E_CONFIG {samples}: no sample files (*.json, *.ndjson, *.xml, *.csv)"
        )
    for path, ds in files:
        spec = plug.datasets[ds]
        pipe = pipelines.get(ds) or Pipeline(sc.name, ds)
        if not live:  # comparators consult other systems: only with --live
            pipe = dataclasses.replace(pipe, comparators=[])
        try:
            records = _decode_sample(path, adapter, source)
        except HubError as err:
            report.outcomes.append(
                SampleOutcome(str(path), 0, ds, errors=[f"{err.code} {_field(err)}{err.message}"])
            )
            continue
        for i, raw in enumerate(records):
            out = SampleOutcome(str(path), i, ds)
            report.outcomes.append(out)
            try:
                rec, notes = pipe.prepare(raw, i, None, max_bytes=None, depth=64)
                out.notes = notes
                try:
                    model = spec.model.model_validate(rec)
                except ValidationError as exc:
                    from hub.validation import schema_error

                    raise schema_error(exc, None) from None
                _payload, _pkey, canonical = checked(model, spec.partition_field, True)
                out.canonical = canonical
                if pipe.after:
                    governed = await pipe.govern(canonical or {}, out.notes)
                    out.notes = list(governed.notes)
                    if governed.business_key is not None:
                        out.notes.append(f"business key {governed.business_key!r}")
            except HubError as err:
                out.errors.append(f"{err.code} {_field(err)}{err.message}")
            except Exception as exc:
                wrapped = error_for(exc)
                out.errors.append(f"{wrapped.code} {_field(wrapped)}{wrapped.message}")
    if live:
        report.problems += await probe_system(sc, plug)
        report.problems += check_keys(sc, hub_config, registry)
    return report


def check_keys(sc: Any, hub_config: Path | None, registry: Registry) -> list[str]:
    """``--live``: the keys the system needs load (PEM files readable, passphrases set):
    its peer keys when it must sign, the hub's own key when deliveries to it are signed."""
    needs_peer = bool(sc.inbound is not None and sc.inbound.signed)
    needs_own = bool(sc.outbound is not None and sc.outbound.get("sign"))
    if not (needs_peer or needs_own):
        return []
    if hub_config is None:
        return [f"E_CONFIG {sc.name}: its keys are in the hub file; pass it with -c hub.yaml"]
    try:
        from hub.guard import Guard
        from hub.store.memory import MemoryStore

        cfg = load_config(hub_config)
        guard = Guard(cfg, registry, MemoryStore(), lambda: 0.0)  # loads every key it names
    except HubError as err:
        return [f"{err.code} {err.message}"]
    ks = guard.keystore
    out = []
    if needs_peer and (ks is None or not any(k.owner == sc.name for k in ks.entries())):
        out.append(f"E_CONFIG {sc.name}: inbound.signed, but keys.peers.{sc.name} has no key")
    if needs_own and guard.outbound_signer() is None:
        out.append(f"E_CONFIG {sc.name}: outbound.sign, but keys.own has no key")
    return out


def _field(err: HubError) -> str:
    return f"[{err.field}] " if err.field else ""


async def probe_system(sc: Any, plug: Any) -> list[str]:
    """``--live``: is the system's endpoint reachable? Transports and sources may offer
    ``async probe() -> str``; otherwise an outbound ``url`` is tried with one HTTP request."""
    import aiohttp

    problems: list[str] = []
    objs: list[tuple[str, Any]] = []
    if plug.transport is not None:
        objs.append(("outbound", plug.transport.factory(sc.name, plug.transport_options)))
    if plug.source is not None:
        objs.append(("inbound.source", plug.source.factory(sc.name, plug.source_options)))
    for where, obj in objs:
        probe = getattr(obj, "probe", None)
        try:
            if callable(probe):
                await probe()
                continue
            url = getattr(getattr(obj, "options", None), "url", None) or getattr(obj, "url", None)
            if url is None:
                continue
            timeout = aiohttp.ClientTimeout(total=5)
            async with aiohttp.ClientSession(timeout=timeout) as s, s.head(str(url)) as r:
                _ = r.status  # any HTTP answer means the endpoint is there
        except Exception as exc:
            problems.append(
                f"{UnreachableError.code} {sc.name} {where}: not reachable: "
                f"{type(exc).__name__}: {exc}"
            )
    return problems
