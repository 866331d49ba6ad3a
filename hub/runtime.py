"""The running hub: plugins, systems, targets, routes, the store and the dispatcher, built from
one :class:`~hub.config.HubConfig` (no globals: tests build as many hubs as they like)."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import orjson
import pluggy
from pydantic import BaseModel, ValidationError

from hub.breaker import CircuitBreaker
from hub.config import HubConfig, RetryPolicy, SystemConfig, validate_loaded_section
from hub.dispatcher import Dispatcher
from hub.doorbell import DoorbellListener, doorbell_address, ring
from hub.envelope import Envelope, new_message_id
from hub.errors import (
    AuthError,
    BadRequest,
    ConfigError,
    DuplicateError,
    HubError,
    SchemaError,
    StateError,
    TooDeep,
    TooLargeError,
    UnknownDataset,
    UnknownSystem,
)
from hub.events import AcceptedMessage, DeliveryEvent
from hub.governance import (
    Pipeline,
    build_outbound_mappings,
    build_pipelines,
    error_for,
    raw_text,
)
from hub.guard import Guard
from hub.jobs import SingletonJob, audit_archive_job, retention_job
from hub.plugins import (
    Registry,
    acall,
    add_declared_datasets,
    build_plugin_manager,
    load_registry,
)
from hub.routing import CompiledRoute, RouteTargetRuntime, compile_route
from hub.sources import SourceRunner
from hub.specs import (
    Adapter,
    AdapterSpec,
    DatasetSpec,
    OutboundTransport,
    RawLines,
    SourceSpec,
    TransportSpec,
)
from hub.store import NewMessage, QuarantinedRecord, Store, TargetRef, store_for_config
from hub.store.base import NonceClaim, WorkNotifier
from hub.tracecontext import new_traceparent, parse_traceparent
from hub.validation import (
    Checked,
    ValidationPool,
    dict_checker,
    schema_error,
    too_deep,
    validate_line,
)
from hub.validation import checked as checked_record

__all__ = [
    "Hub",
    "IngestResult",
    "RecordError",
    "SystemPlugins",
    "SystemRuntime",
    "TargetRuntime",
    "resolve_system_plugins",
]

log = logging.getLogger("jghub.hub")


@dataclass(slots=True)
class SystemRuntime:
    config: SystemConfig
    adapter: Adapter
    datasets: dict[str, DatasetSpec]
    pipelines: dict[str, Pipeline] = field(default_factory=dict)


@dataclass(slots=True)
class TargetRuntime:
    name: str
    config: SystemConfig
    adapter: Adapter
    transport: OutboundTransport
    transport_name: str
    retry: RetryPolicy
    breaker: CircuitBreaker
    #: outbound mappings by dataset (canonical record -> the target's schema)
    mappings: dict[str, Callable[[dict[str, Any], list[str] | None], dict[str, Any]]] = field(
        default_factory=dict
    )


@dataclass(slots=True)
class RecordError:
    index: int
    error: HubError

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "code": self.error.code,
            "detail": self.error.message,
        }
        if self.error.field is not None:
            d["field"] = self.error.field
        d.update(self.error.extra)
        return d


@dataclass(slots=True)
class IngestResult:
    """What a source is told: ids of committed records (original ids for duplicates)."""

    ids: list[str] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    #: indexes of records that replaced an earlier version of their business key
    replaced: list[int] = field(default_factory=list)
    #: how many rejected records were added to the quarantine
    quarantined: int = 0


@dataclass(slots=True)
class SystemPlugins:
    """A system file's plugin references, resolved and their options validated."""

    adapter: AdapterSpec
    adapter_options: Any
    datasets: dict[str, DatasetSpec]
    transport: TransportSpec | None = None
    transport_options: Any = None
    source: SourceSpec | None = None
    source_options: Any = None


def resolve_system_plugins(sc: SystemConfig, registry: Registry) -> SystemPlugins:
    """Look up a system's adapter, transport and datasets and validate the options it gives
    them. Errors name the file, line and key (the file is parsed again only to find lines)."""

    def options(
        model: type[BaseModel], data: Mapping[str, Any], key: str, core: tuple[str, ...] = ()
    ) -> Any:
        return validate_loaded_section(
            model, dict(data), sc.source_file, (key,), core, name=f"<system {sc.name}>"
        )

    aspec = registry.adapters.get(sc.adapter, wanted_by=f"system {sc.name}")
    plug = SystemPlugins(
        aspec, options(aspec.config_model, sc.adapter_options, "adapter_options"), {}
    )
    if sc.inbound is not None:
        for ds in sc.inbound.datasets:
            plug.datasets[ds] = registry.datasets.get(ds, wanted_by=f"system {sc.name} inbound")
        if sc.inbound.source is not None:
            sspec = registry.sources.get(
                str(sc.inbound.source["kind"]), wanted_by=f"system {sc.name} inbound.source"
            )
            plug.source = sspec
            plug.source_options = options(
                sspec.config_model, sc.inbound.source, "inbound.source", ("kind",)
            )
    if sc.outbound is not None:
        tspec = registry.transports.get(
            str(sc.outbound["transport"]), wanted_by=f"system {sc.name} outbound"
        )
        plug.transport = tspec
        plug.transport_options = options(
            tspec.config_model, sc.outbound, "outbound", ("transport",)
        )
    return plug


class Hub:
    """Everything one hub node runs. ``start()`` opens the store and starts delivering."""

    def __init__(
        self,
        config: HubConfig,
        *,
        pm: pluggy.PluginManager | None = None,
        store: Store | None = None,
        extra_plugins: Iterable[object] = (),
        clock: Callable[[], float] = time.time,
        role: Literal["node", "ingest"] = "node",
    ) -> None:
        """``role="ingest"``: an extra ingest process of a node (``serve --workers``): it
        accepts and commits, and rings the node's doorbell instead of delivering."""
        self.config = config
        self.role = role
        self.clock = clock
        self.pm = pm if pm is not None else build_plugin_manager(extra_plugins)
        self.registry: Registry = load_registry(self.pm)
        #: datasets declared in YAML (validated in this process, not in the validation pool)
        self.declared = add_declared_datasets(self.registry, config)
        self.node_id = config.hub.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self._validation_pool: ValidationPool | None = None
        self._owns_store = store is None
        self._doorbell: DoorbellListener | None = None
        self._doorbell_address = doorbell_address(config.store_path())
        self._lock_file: IO[str] | None = None
        self.store: Store = store if store is not None else store_for_config(config)
        self.guard = Guard(config, self.registry, self.store, clock)
        self.systems: dict[str, SystemRuntime] = {}
        self.targets: dict[str, TargetRuntime] = {}
        self._sources: list[SourceRunner] = []
        self._jobs: list[SingletonJob] = []
        self._build_systems()
        signer = self.guard.outbound_signer()
        for t in self.targets.values():
            set_signer = getattr(t.transport, "set_signer", None)
            if callable(set_signer):
                set_signer(signer)
        self.routes: dict[tuple[str, str], list[CompiledRoute]] = {}
        self._outbound: dict[tuple[str, str], RouteTargetRuntime] = {}
        self._route_plan: dict[
            tuple[str, str], tuple[dict[str, tuple[TargetRef, ...]], tuple[TargetRef, ...] | None]
        ] = {}
        self._build_routes()
        #: targets chosen per record at ingest besides the configured routes, by dataset
        #: (data-sharing subscriptions, :mod:`hub.sharing`): each returns the extra targets
        #: of one canonical record; their deliveries commit in the same transaction
        self.record_targets: dict[str, Callable[[dict[str, Any]], Sequence[TargetRef]]] = {}
        self.dispatcher = Dispatcher(self)
        self.started = False
        #: the data-sharing service (hub.sharing.plugin), set by that plugin when it is loaded
        self.sharing: Any = None
        hooks = self.pm.hook
        for objs in hooks.hub_instance_plugins(hub=self):  # per-hub plugins (monitoring)
            for obj in objs or ():
                self.pm.register(obj)
        self._observe_accepted = bool(hooks.hub_messages_accepted.get_hookimpls())
        # per-delivery observers get one call per delivery; batch observers (the monitor) one
        # per settled unit: a batch of 500 is one call through the plugin manager, not 500
        self._observe_delivery = any(
            getattr(hooks, h).get_hookimpls()
            for h in (
                "hub_delivery_succeeded",
                "hub_delivery_retried",
                "hub_delivery_dead_lettered",
            )
        )
        self._observe_settled = bool(hooks.hub_deliveries_settled.get_hookimpls())

    # ------------------------------------------------------------------ building

    def _build_systems(self) -> None:
        lease = self.config.dispatcher.lease_seconds
        for name, sc in self.config.loaded_systems.items():
            plug = resolve_system_plugins(sc, self.registry)
            adapter = plug.adapter.factory(name, plug.adapter_options)
            self.systems[name] = SystemRuntime(
                sc, adapter, plug.datasets, build_pipelines(sc, self.registry)
            )
            if plug.source is not None:
                source = plug.source.factory(name, plug.source_options)
                self._sources.append(SourceRunner(self, name, plug.source.name, source))
            if plug.transport is None:
                continue
            timeout = getattr(plug.transport_options, "timeout", None)
            if isinstance(timeout, (int, float)) and lease <= timeout:
                raise ConfigError(
                    f"{sc.source_file or name}: outbound.timeout ({timeout} s) must be "
                    f"shorter than dispatcher.lease_seconds ({lease} s), or a slow request "
                    "outlives its lease and is sent again meanwhile",
                    field="outbound.timeout",
                )
            self.targets[name] = TargetRuntime(
                name,
                sc,
                adapter,
                plug.transport.factory(name, plug.transport_options),
                plug.transport.name,
                sc.retry,
                CircuitBreaker(sc.circuit),
                build_outbound_mappings(sc, self.registry),
            )

    def _build_routes(self) -> None:
        transforms = self.registry.transform_functions.specs
        for route in self.config.routes:
            if route.dataset not in self.registry.datasets:
                raise ConfigError(
                    f"route {route.name!r}: unknown dataset {route.dataset!r}; registered: "
                    f"{', '.join(self.registry.datasets.names())}",
                    field=f"routes.{route.name}.dataset",
                )
            compiled = compile_route(route, transforms)
            self.routes.setdefault((route.source, route.dataset), []).append(compiled)
            for t in compiled.targets:
                self._outbound[(route.name, t.target)] = t
        for key, routes in self.routes.items():
            refs = {
                r.name: tuple(TargetRef(t.target, t.route, t.ordered) for t in r.targets)
                for r in routes
            }
            # Without filters every record goes to the same targets: one tuple serves all.
            static: tuple[TargetRef, ...] | None = None
            if all(r.predicate is None for r in routes):
                static = tuple(ref for rs in refs.values() for ref in rs)
            self._route_plan[key] = (refs, static)

    def outbound_route(self, route: str, target: str) -> RouteTargetRuntime:
        """The transform for (route, target); a route removed from config still delivers its
        queued messages unchanged."""
        rt = self._outbound.get((route, target))
        if rt is None:
            ident = self.registry.transform_functions.get("identity")
            rt = RouteTargetRuntime(route, target, "identity", ident.func, False)
            self._outbound[(route, target)] = rt
        return rt

    def add_outbound_route(self, route: RouteTargetRuntime) -> None:
        """Set the transform of (route, target) for targets added at run time."""
        self._outbound[(route.route, route.target)] = route

    async def add_target(self, sc: SystemConfig) -> TargetRuntime:
        """Add a delivery target while the hub runs (a data-sharing subscriber): its
        transport is started and, on a running node, its dispatcher worker too. A target of
        that name already there is returned as it is."""
        have = self.targets.get(sc.name)
        if have is not None:
            return have
        plug = resolve_system_plugins(sc, self.registry)
        assert plug.transport is not None, "a target needs an outbound section"
        t = TargetRuntime(
            sc.name,
            sc,
            plug.adapter.factory(sc.name, plug.adapter_options),
            plug.transport.factory(sc.name, plug.transport_options),
            plug.transport.name,
            sc.retry,
            CircuitBreaker(sc.circuit),
        )
        set_signer = getattr(t.transport, "set_signer", None)
        if callable(set_signer):
            set_signer(self.guard.outbound_signer())
        self.targets[sc.name] = t
        await t.transport.start()  # called from hub_startup on, after the others started
        self.dispatcher.add_worker(t)
        return t

    # ------------------------------------------------------------------ lifecycle

    def _lock_sqlite_file(self) -> None:
        """One node owns an SQLite store: a second ``serve`` on the same file is refused
        (CLI commands such as ``dlq`` and ``trace`` may still open it)."""
        path = self.config.store_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path = path.resolve()  # one lock per file, however the configs spell its path
        fh = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise StateError(
                f"another jghub node is running on {path}; SQLite serves one node "
                "(use the PostgreSQL store for several)",
                field="store.path",
            ) from None
        self._lock_file = fh

    async def start(self, *, dispatch: bool | None = None, sources: bool = True) -> None:
        """Open the store and start delivering; ``sources=False`` leaves the inbound sources
        (pollers, folder watchers ...) stopped (tests, one-off commands)."""
        sqlite_node = self.config.store.kind == "sqlite" and self._owns_store
        if self.config.ingest.validation_processes:
            self._validation_pool = ValidationPool(self.config.ingest.validation_processes)
            await self._validation_pool.start()
        if self.role == "ingest":
            await self.store.open()
            await self.guard.start(record_changes=False)
            self.started = True
            return
        if sqlite_node:
            self._lock_sqlite_file()
        await self.store.open()
        if isinstance(self.store, WorkNotifier):  # shared store: commits of every node wake us
            self.store.on_work(
                lambda names: self.wake_targets(self.targets if names is None else names)
            )
        await self.guard.start()
        if sqlite_node:
            # One node owns an SQLite file: leases of a previous (crashed) run are void.
            released = await self.store.release_leases()
            if released:
                log.warning("released %d deliveries leased by a previous run", released)
            self._doorbell = DoorbellListener(self._doorbell_address, self.wake_targets)
            await self._doorbell.start()
        for t in self.targets.values():
            await t.transport.start()
        await acall(self.pm.hook.hub_startup, hub=self)
        if self.config.dispatcher.enabled if dispatch is None else dispatch:
            self.dispatcher.start()
        if sources:
            for src in self._sources:
                src.start()
        retention = retention_job(
            self.store, self.config.retention, self.config.base_dir, self.node_id, self.clock
        )
        audit_archive = audit_archive_job(
            self.guard.audit, self.config.retention, self.config.base_dir, self.node_id, self.clock
        )
        self._jobs = [job for job in (retention, audit_archive) if job is not None]
        for job in self._jobs:
            job.start()
        self.started = True

    def wake_targets(self, targets: Iterable[str]) -> None:
        """New work for these targets: wake their workers here, or ring the node's doorbell
        from an ingest process (SQLite; on PostgreSQL the commit's NOTIFY wakes the node)."""
        if self.role == "ingest":
            # a shared store (PostgreSQL) already woke every node: the commit sent NOTIFY
            if not isinstance(self.store, WorkNotifier):
                ring(self._doorbell_address, targets)
            return
        for t in targets:
            self.dispatcher.wake(t)

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        if self._validation_pool is not None:
            await self._validation_pool.close()
            self._validation_pool = None
        if self.role == "ingest":
            await self.guard.stop()
            await self.store.close()
            return
        for job in self._jobs:
            await job.stop()
        for src in self._sources:
            await src.stop()
        if self._doorbell is not None:
            await self._doorbell.close()
            self._doorbell = None
        await self.dispatcher.stop()
        for t in self.targets.values():
            await t.transport.close()
        await acall(self.pm.hook.hub_shutdown, hub=self)
        await self.guard.stop()
        await self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ ingest

    def system(self, name: str) -> SystemRuntime:
        rt = self.systems.get(name)
        if rt is None or rt.config.inbound is None or not rt.config.inbound.enabled:
            raise UnknownSystem(f"no inbound system named {name!r} is configured", field="system")
        return rt

    def authenticate(self, rt: SystemRuntime, authorization: str | None) -> None:
        inbound = rt.config.inbound
        token = inbound.token if inbound else None
        if token is None:
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise AuthError(
                f"system {rt.config.name!r} must send its bearer token", field="Authorization"
            )

    def pick_dataset(self, rt: SystemRuntime, dataset: str | None) -> DatasetSpec:
        if dataset is None:
            if len(rt.datasets) == 1:
                return next(iter(rt.datasets.values()))
            raise UnknownDataset(
                f"system {rt.config.name!r} sends several datasets "
                f"({', '.join(rt.datasets)}); name one with ?dataset=",
                field="dataset",
            )
        spec = rt.datasets.get(dataset)
        if spec is None:
            raise UnknownDataset(
                f"system {rt.config.name!r} may not send dataset {dataset!r}; allowed: "
                f"{', '.join(rt.datasets)}",
                field="dataset",
            )
        return spec

    async def _check_records(
        self,
        spec: DatasetSpec,
        records: Sequence[Any],
        single: bool,
        body_size: int,
        *,
        want_dict: bool,
    ) -> list[Checked | HubError]:
        """Validate every record: one result per record, a :class:`Checked` or the record's
        error. A body that is not JSON raises :class:`BadRequest` (nothing is accepted)."""
        limits = self.config.limits
        max_bytes = limits.max_record_bytes if body_size > limits.max_record_bytes else None
        depth = limits.max_json_depth
        pfield = spec.partition_field
        lines = records.line_numbers if isinstance(records, RawLines) else None
        pool = self._validation_pool if spec.name not in self.declared else None
        if (
            pool is not None
            and lines is not None
            and len(records) >= self.config.ingest.validation_min_batch
        ):
            got = await pool.validate(
                spec.name,
                spec.version,
                records,
                lines,
                single,
                max_bytes,
                depth,
                pfield,
                want_dict,
            )
            if got is not None:
                return got
        model = spec.model
        fast = dict_checker(model)  # validates lines into dicts: no model instances
        out: list[Checked | HubError] = []
        for i, raw in enumerate(records):
            try:
                if type(raw) is bytes:
                    line = lines[i] if lines is not None else i + 1
                    if fast is not None:
                        out.append(
                            fast.check(raw, i, line, single, max_bytes, depth, pfield, want_dict)
                        )
                        continue
                    obj = validate_line(model, raw, i, line, single, max_bytes, depth)
                else:
                    if fast is not None and type(raw) is dict:
                        done = fast.check_value(raw, max_bytes, depth, pfield, want_dict)
                        if done is not None:
                            out.append(done)
                            continue
                    obj = self._validate_value(model, raw, i, single, max_bytes, depth)
            except HubError as err:
                if type(err) is BadRequest:
                    raise  # the body itself is malformed (not JSON): refuse all of it
                out.append(err)
                continue
            out.append(checked_record(obj, pfield, want_dict))
        return out

    @staticmethod
    def _validate_value(
        model: type[BaseModel],
        raw: Any,
        i: int,
        single: bool,
        max_bytes: int | None,
        depth: int,
    ) -> BaseModel:
        """Validate one record already parsed from JSON."""
        if not isinstance(raw, dict):
            raise SchemaError(
                f"record {i}: a record must be a JSON object, got {type(raw).__name__}",
                field="(record)",
            )
        if too_deep(raw, depth):
            raise TooDeep(f"record {i}: nested deeper than {depth} levels", field="(record)")
        if max_bytes is not None and len(orjson.dumps(raw)) > max_bytes:
            raise TooLargeError(f"record {i}: larger than {max_bytes} bytes", field="(record)")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise schema_error(exc, None if single else i) from None

    async def ingest_records(
        self,
        system: str,
        records: Sequence[Any],
        *,
        dataset: str | None = None,
        idempotency_key: str | None = None,
        keys: Sequence[str] | None = None,
        origin: str = "api",
        traceparent: str | None = None,
        body_size: int = 0,
        single: bool | None = None,
        nonce: NonceClaim | None = None,
    ) -> IngestResult:
        """Map, govern, validate, route and durably commit decoded records; return only after
        the commit.

        Bad records are rejected one by one (index + reason) and kept in the quarantine;
        good ones are committed. ``idempotency_key`` applies to a single record as is and to
        record *i* of a batch as ``key:i``; ``keys`` gives each record its own key instead
        (inbound sources: a staging row id, a file digest and line). ``single`` says the body
        was one record, not a batch (default: one record given); a one-element batch is still a
        batch. ``origin`` names where the records came from, for the quarantine. ``nonce``:
        the signed request's nonce, committed with its records (``E_REPLAY``: nothing stored),
        or remembered alone when no record is stored."""
        rt = self.system(system)
        spec = self.pick_dataset(rt, dataset)
        limits = self.config.limits
        if len(records) > limits.max_batch_records:
            raise TooLargeError(
                f"{len(records)} records in one request; at most {limits.max_batch_records}",
                field="body",
            )
        if keys is not None and len(keys) != len(records):
            raise ValueError(f"{len(keys)} keys for {len(records)} records")
        routes = self.routes.get((system, spec.name), ())
        if single is None:
            single = len(records) == 1
        tp = parse_traceparent(traceparent) or new_traceparent()
        now = self.clock()
        result = IngestResult()
        route_refs, static_targets = self._route_plan.get((system, spec.name), ({}, ()))
        extra_targets = self.record_targets.get(spec.name)
        pipe = rt.pipelines.get(spec.name)
        checked: list[Checked | HubError]
        notes: list[list[str]] | None = None
        if pipe is not None and pipe.before:
            checked, notes = await self._prepare_and_check(pipe, spec, records, single, body_size)
        else:
            checked = await self._check_records(
                spec,
                records,
                single,
                body_size,
                want_dict=static_targets is None
                or extra_targets is not None
                or (pipe is not None and pipe.after),
            )
        messages: list[NewMessage] = []
        indexes: list[int] = []
        cipher = self.guard.ciphers.get(spec.name)
        for i, outcome in enumerate(checked):
            if isinstance(outcome, HubError):
                result.errors.append(RecordError(i, outcome))
                continue
            payload, pkey, rec = outcome
            governed = None
            if pipe is not None and pipe.after:
                try:
                    governed = await pipe.govern(rec or {}, notes[i] if notes else [])
                except HubError as err:
                    result.errors.append(RecordError(i, err))
                    continue
            targets: Sequence[TargetRef]
            if static_targets is not None:
                targets = static_targets
            else:
                targets = [
                    ref
                    for route in routes
                    if route.predicate is None or route.predicate(rec or {})
                    for ref in route_refs[route.name]
                ]
            if extra_targets is not None:
                targets = [*targets, *extra_targets(rec or {})]
            digest = None
            if cipher is not None:  # field encryption at rest; duplicates compare clear text
                digest = hashlib.sha256(payload).digest()
                payload = orjson.dumps(cipher.encrypt_fields(orjson.loads(payload)))
            if keys is not None:
                key: str | None = keys[i]
            else:
                key = (
                    idempotency_key
                    if single or idempotency_key is None
                    else f"{idempotency_key}:{i}"
                )
            envelope = Envelope(
                new_message_id(), system, spec.name, spec.version, now, payload, key, pkey, tp
            )
            if governed is not None:
                bkey, version, gnotes, subject = (
                    governed.business_key,
                    governed.version,
                    governed.notes,
                    governed.subject,
                )
            else:
                bkey = version = subject = None
                gnotes = tuple(notes[i]) if notes is not None else ()
            messages.append(NewMessage(envelope, targets, bkey, version, gnotes, subject, digest))
            indexes.append(i)
        if messages:
            committed = await self.store.enqueue(messages, nonce=nonce)
        else:
            committed = []
            if nonce is not None:  # a replay of a refused request is refused as a replay
                await self.guard.settle_nonce(nonce)
        woken: set[str] = set()
        # the target names of the static routes, once per request instead of once per record
        static_names = tuple(t.target for t in static_targets) if static_targets is not None else ()
        static_woken = False
        for m, res, i in zip(messages, committed, indexes, strict=True):
            if res.conflict:
                env = m.envelope
                result.errors.append(
                    RecordError(
                        i,
                        DuplicateError(
                            f"Idempotency-Key {env.idempotency_key!r} was already used by "
                            f"{system} for message {res.message_id} with a different "
                            "payload; use a new key for a new or corrected record",
                            field="Idempotency-Key",
                            original_id=res.message_id,
                        ),
                    )
                )
                continue
            result.ids.append(res.message_id)
            result.indexes.append(i)
            if res.duplicate:
                result.duplicates.append(i)
            else:
                if res.replaces is not None:
                    result.replaced.append(i)
                if m.targets is static_targets:
                    static_woken = True
                else:
                    woken.update(t.target for t in m.targets)
        if static_woken:
            woken.update(static_names)
        if result.errors:
            result.errors.sort(key=lambda e: e.index)
            result.quarantined = await self._quarantine(
                system, spec.name, records, result.errors, keys, idempotency_key, single, origin
            )
            self.notify_rejected(system, spec.name, result)
        if not messages:
            return result
        # Committed: from here on nothing may turn the answer into an error (the source would
        # resend what is already stored), so wake-ups and observers only log their failures.
        try:
            if woken:
                self.wake_targets(woken)
            if self._observe_accepted:
                self.pm.hook.hub_messages_accepted(
                    messages=[
                        AcceptedMessage(
                            res.message_id,
                            system,
                            spec.name,
                            static_names
                            if m.targets is static_targets
                            else tuple(t.target for t in m.targets),
                            res.duplicate,
                            m.envelope.traceparent,
                        )
                        for m, res in zip(messages, committed, strict=True)
                        if not res.conflict
                    ]
                )
        except Exception:
            log.exception("after-commit step failed; the records are committed and acknowledged")
        return result

    async def _prepare_and_check(
        self,
        pipe: Pipeline,
        spec: DatasetSpec,
        records: Sequence[Any],
        single: bool,
        body_size: int,
    ) -> tuple[list[Checked | HubError], list[list[str]]]:
        """Map and clean each record, then check the contract of those that survived."""
        limits = self.config.limits
        max_bytes = limits.max_record_bytes if body_size > limits.max_record_bytes else None
        lines = records.line_numbers if isinstance(records, RawLines) else None
        out: list[Checked | HubError | None] = [None] * len(records)
        notes: list[list[str]] = [[] for _ in records]
        good: list[dict[str, Any]] = []
        where: list[int] = []
        for i, raw in enumerate(records):
            try:
                rec, notes[i] = pipe.prepare(
                    raw,
                    i,
                    lines[i] if lines is not None else None,
                    max_bytes=max_bytes,
                    depth=limits.max_json_depth,
                )
            except BadRequest as err:
                if type(err) is BadRequest:
                    raise  # the body itself is malformed (not JSON): refuse all of it
                out[i] = err
                continue
            except Exception as exc:  # a mapping rule that cannot apply to this record
                out[i] = error_for(exc)
                continue
            good.append(rec)
            where.append(i)
        if good:
            checked = await self._check_records(spec, good, single, 0, want_dict=True)
            for i, c in zip(where, checked, strict=True):
                out[i] = c
        return [c for c in out if c is not None], notes

    async def _quarantine(
        self,
        system: str,
        dataset: str,
        records: Sequence[Any],
        errors: Sequence[RecordError],
        keys: Sequence[str] | None,
        idempotency_key: str | None,
        single: bool,
        origin: str,
    ) -> int:
        """Keep rejected records with their reasons (never silently dropped). A record sent
        again is kept once: its key is its idempotency key, else a digest of its text."""
        now = self.clock()
        items = []
        for e in errors:
            raw = raw_text(records[e.index]) if e.index < len(records) else ""
            if keys is not None:
                qkey = keys[e.index]
            elif idempotency_key is not None:
                qkey = idempotency_key if single else f"{idempotency_key}:{e.index}"
            else:
                qkey = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
            items.append(
                QuarantinedRecord(
                    system,
                    dataset,
                    qkey,
                    f"{origin} record {e.index}",
                    e.error.code,
                    e.error.field,
                    e.error.message,
                    raw,
                    now,
                )
            )
        try:
            return await self.store.quarantine(items)
        except Exception:  # the source is told the reasons anyway; a store fault is logged
            log.exception("could not quarantine %d rejected records of %s", len(items), system)
            return 0

    # ------------------------------------------------------------------ observers

    def notify_rejected(self, system: str, dataset: str | None, result: IngestResult) -> None:
        """Tell observers (metrics) which records were refused; never raises."""
        try:
            self.pm.hook.hub_records_rejected(
                system=system,
                dataset=dataset,
                codes=[e.error.code for e in result.errors],
                quarantined=result.quarantined,
            )
        except Exception:
            log.exception("hub_records_rejected observer failed")

    def notify_deliveries(self, events: Sequence[tuple[str, DeliveryEvent, float | str]]) -> None:
        """Tell observers how deliveries settled together ended: once for them all
        (``hub_deliveries_settled``) and once per delivery (the per-delivery hooks)."""
        if not events:
            return
        if self._observe_settled:
            self.pm.hook.hub_deliveries_settled(events=events)
        if not self._observe_delivery:
            return
        hook = self.pm.hook
        for kind, ev, extra in events:
            if kind == "ok":
                hook.hub_delivery_succeeded(event=ev)
            elif kind == "retry":
                hook.hub_delivery_retried(event=ev, next_attempt_at=float(extra))
            else:
                hook.hub_delivery_dead_lettered(event=ev, reason=str(extra))
