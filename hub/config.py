"""Configuration: one hub file plus one file per connected system, as typed pydantic models.

Every model forbids unknown keys. A mistake is reported with the file, the line, the key path
and what is allowed, before anything starts::

    E_CONFIG systems/dept-a.yaml:7 outbound.timout: unknown key; allowed: url, batch, ...

Strings may use ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) so secrets never sit in YAML.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.errors import ConfigError
from hub.workdays import CalendarSettings, WorkCalendar

__all__ = [
    "CircuitPolicy",
    "CompareRule",
    "DedupeRule",
    "DispatcherSettings",
    "FilterRule",
    "GovernanceSettings",
    "HubConfig",
    "HubSection",
    "InboundSettings",
    "IngestSettings",
    "Limits",
    "ListenSettings",
    "MappingSettings",
    "RetentionSettings",
    "RetryPolicy",
    "Route",
    "RouteTarget",
    "StoreSettings",
    "SystemConfig",
    "format_validation_error",
    "load_config",
    "load_system_file",
    "load_yaml_file",
    "validate_loaded_section",
    "validate_section",
]

_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
Name = Annotated[str, Field(pattern=_NAME)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- hub file


class HubSection(_Model):
    name: str = "jghub"
    node_id: str | None = Field(None, description="defaults to host name + pid")


class StoreSettings(_Model):
    """Where the hub keeps messages: ``sqlite`` (one node, ``path``), ``postgres`` (several
    nodes on one database, ``dsn``) or ``memory`` (tests)."""

    kind: Literal["sqlite", "memory", "postgres"] = "sqlite"
    path: Path = Path("data/hub.db")
    dsn: str | None = Field(
        None,
        description="postgres: libpq connection string or URL (use ${ENV_VAR} for a password)",
    )
    db_schema: str = Field(
        "public",
        alias="schema",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="postgres: the schema holding the hub's tables",
    )
    pool_size: int = Field(10, ge=1, le=200, description="postgres: connections per node")
    timeout: float = Field(
        5.0,
        gt=0,
        description="postgres: longest wait for a connection before a request gets 503",
    )
    durability: Literal["full", "normal"] = Field(
        "full",
        description="full: fsync every group commit (survives power loss); "
        "normal: WAL sync at checkpoints (survives a process crash only)",
    )
    settle_sync: Literal["relaxed", "full"] = Field(
        "relaxed",
        description="relaxed: a delivery's outcome (delivered, retry, dead-lettered) commits "
        "without waiting for the disk (SQLite no fsync, PostgreSQL synchronous_commit off); "
        "lost in a power cut or a database crash, the delivery is only sent again with the "
        "same Idempotency-Key. full: every settle waits for the disk like ingest does "
        "(claims never do). "
        "Ingest and operator replays/discards always follow durability",
    )
    max_group: int = Field(2000, ge=1, description="most write operations in one transaction")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> StoreSettings:
        if self.kind == "postgres" and not self.dsn:
            raise ValueError("store.kind postgres needs store.dsn (a libpq connection string)")
        return self


class RetentionSettings(_Model):
    """How long finished messages are kept (every store: SQLite, PostgreSQL). Only messages
    whose every delivery is delivered or discarded are pruned, with their deliveries and trace
    events; dead letters and pending work stay. The audit log (security database) is never
    pruned: with ``archive_dir`` it is archived separately, a file per UTC day."""

    trace_days: float = Field(
        0, ge=0, description="keep delivered messages and their traces this many days (0: ever)"
    )
    archive_dir: Path | None = Field(
        None,
        description="write a summary line of each pruned message here first (NDJSON, a file "
        "per day), relative to the hub file",
    )
    audit_archive: bool = Field(
        True,
        description="with archive_dir: export each whole UTC day of the audit log to "
        "archive_dir/audit/audit-YYYY-MM-DD.jsonl (verifiable offline with jghub audit verify "
        "--export); audit entries are never deleted",
    )
    interval_seconds: float = Field(
        3600.0, gt=0, description="how often the pruning and audit archiving jobs run"
    )
    batch: int = Field(1000, ge=1, le=100_000, description="messages deleted per transaction")


class ListenSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    tls: dict[str, Any] | None = Field(
        None, description="cert, key, client_ca, client_auth (mutual TLS): see docs/security.md"
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto",
        description="the serving processes' event loop: uvloop (libuv, less CPU per request) "
        "when installed under auto, else asyncio's own",
    )
    fast_records: bool = Field(
        True,
        description="plain POST records requests take the lean HTTP path (hub/fastpath.py: "
        "the same handler without aiohttp's per-request machinery); false: aiohttp serves all",
    )


class Limits(_Model):
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_record_bytes: int = Field(1024 * 1024, ge=256)
    max_batch_records: int = Field(10_000, ge=1)
    max_json_depth: int = Field(32, ge=2, le=256)


class IngestSettings(_Model):
    validation_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="worker processes validating big NDJSON batches (0: in the hub process)",
    )
    validation_min_batch: int = Field(
        256, ge=1, description="batches at least this large go to the validation processes"
    )


class DispatcherSettings(_Model):
    enabled: bool = True
    lease_seconds: float = Field(60.0, gt=0)
    claim_batch: int = Field(1024, ge=1)
    idle_poll_seconds: float = Field(
        1.0, gt=0, description="longest sleep when idle (catches work written by other processes)"
    )


class RetryPolicy(_Model):
    """Exponential backoff with full jitter: wait = random(0, min(max_delay, base * 2**n))."""

    max_attempts: int = Field(12, ge=1)
    base_delay: float = Field(0.5, gt=0)
    max_delay: float = Field(300.0, gt=0)


class CircuitPolicy(_Model):
    """Opens after ``failure_threshold`` consecutive transient failures; probes after
    ``reset_timeout`` seconds (doubling up to ``max_reset_timeout`` while probes fail)."""

    failure_threshold: int = Field(5, ge=1)
    reset_timeout: float = Field(5.0, gt=0)
    max_reset_timeout: float = Field(120.0, gt=0)


class FilterRule(_Model):
    """A route filter on one field (dotted path). All rules of a route must hold.
    ``contains``: the field is a list holding this value (e.g. one of a project's supervising
    departments)."""

    field: str
    equals: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    not_in: list[Any] | None = None
    exists: bool | None = None
    contains: Any = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_test(self) -> FilterRule:
        given = [
            k
            for k, v in (
                ("equals", self.equals),
                ("in", self.in_),
                ("not_in", self.not_in),
                ("exists", self.exists),
                ("contains", self.contains),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a filter rule needs exactly one of equals, in, not_in, exists, contains; "
                f"got {given}"
            )
        return self


class RouteTarget(_Model):
    system: Name
    transform: str | None = Field(None, description="a registered transform function")


class Route(_Model):
    name: Name
    source: Name
    dataset: str
    targets: list[RouteTarget] = Field(min_length=1)
    filter: list[FilterRule] = Field(default_factory=list)
    ordered: bool = Field(
        False, description="deliver in order per (target, partition key); a dead letter holds"
    )

    @field_validator("targets", mode="before")
    @classmethod
    def _targets_as_names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"system": t} if isinstance(t, str) else t for t in v]
        return v


class HubConfig(_Model):
    """The hub file (``hub.yaml``) with the systems it loaded."""

    hub: HubSection = HubSection()
    store: StoreSettings = StoreSettings()
    listen: ListenSettings = ListenSettings()
    limits: Limits = Limits()
    ingest: IngestSettings = IngestSettings()
    dispatcher: DispatcherSettings = DispatcherSettings()
    retention: RetentionSettings = RetentionSettings()
    calendar: CalendarSettings = Field(
        default_factory=CalendarSettings,
        description="working-day calendar (工作日历): holidays, 调休 workdays, working hours",
    )
    systems: list[str] = Field(
        default_factory=list, description="system files or folders, relative to this file"
    )
    datasets: list[str] = Field(
        default_factory=list,
        description="dataset files or folders (datasets declared in YAML), relative to this file",
    )
    routes: list[Route] = Field(default_factory=list)
    keys: dict[str, Any] | None = Field(
        None, description="own keys (sign) and peers' keys (verify): docs/security.md"
    )
    monitoring: dict[str, Any] | None = Field(
        None, description="metrics, health probes and the ops dashboard: docs/monitoring.md"
    )
    security: dict[str, Any] | None = Field(
        None,
        description="tokens, roles, audit log, identity provider, field encryption; when "
        "present every route but the health checks needs a credential",
    )
    sharing: dict[str, Any] | None = Field(
        None,
        description="data sharing (数据共享): catalog resources, review deadline: docs/sharing.md",
    )
    #: filled by load_config, not written in YAML
    base_dir: Path = Field(Path("."), exclude=True)
    source_file: Path | None = Field(None, exclude=True)
    loaded_systems: dict[str, SystemConfig] = Field(default_factory=dict, exclude=True)

    def system(self, name: str) -> SystemConfig:
        return self.loaded_systems[name]

    def work_calendar(self) -> WorkCalendar:
        """The working-day calendar for deadlines (sharing reviews, 12345, 双公示)."""
        return self.calendar.build()

    def store_path(self) -> Path:
        p = self.store.path
        return p if p.is_absolute() else self.base_dir / p


# --------------------------------------------------------------------------- system file


class InboundSettings(_Model):
    enabled: bool = True
    datasets: list[str] = Field(min_length=1, description="datasets this system may send")
    token: str | None = Field(
        None, description="bearer token the system must present (use ${ENV_VAR})"
    )
    source: dict[str, Any] | None = Field(
        None,
        description="kind: <source type> plus its options: the hub collects the system's "
        "records itself (http_pull, file_batch, db_staging, amqp ...)",
    )
    signed: bool = Field(
        False, description="requests must carry an RFC 9421 signature by one of its keys"
    )
    tls_identity: str | None = Field(
        None, description="identity in its TLS client certificate (default: the system name)"
    )

    @field_validator("source")
    @classmethod
    def _source_names_kind(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and not isinstance(v.get("kind"), str):
            raise ValueError("inbound.source needs 'kind: <source type>' (e.g. file_batch)")
        return v


class MappingSettings(_Model):
    """Mappings by dataset: ``inbound`` turns the system's records into the canonical dataset,
    ``outbound`` turns canonical records into what the system expects (rules: docs/mapping.md)."""

    inbound: dict[str, dict[str, Any]] = Field(default_factory=dict)
    outbound: dict[str, dict[str, Any]] = Field(default_factory=dict)


class DedupeRule(_Model):
    """去重: the fields whose values together name one business record (e.g. the decision
    number 决定文书号), and optionally the field that orders its versions."""

    key: list[str] = Field(min_length=1, description="dotted paths in the canonical record")
    version: str | None = Field(
        None, description="field ordering versions (ISO time or zero-padded number)"
    )


class CompareRule(_Model):
    """比对/校核: a registered comparator checks the record against another source."""

    rule: str = Field(description="a comparator registered by a plugin")
    on_mismatch: Literal["reject", "flag"] = Field(
        "reject", description="reject: quarantine the record; flag: accept and trace the note"
    )


class GovernanceSettings(_Model):
    """Data governance of one inbound dataset (数据治理), applied in this order: clean and
    standardise (before the contract check), validate (the contract), compare, de-duplicate,
    link. Every step that changes or flags something writes a note into the trace."""

    clean: dict[str, Any] | None = Field(
        None, description="清洗/标准化 steps (trim, full-width, empty values, dates, regions)"
    )
    dedupe: DedupeRule | None = None
    compare: list[CompareRule] = Field(default_factory=list)
    link: list[str] = Field(
        default_factory=list,
        description="关联整合: fields holding the subject id (USCC, ID number), first non-empty",
    )


class SystemConfig(_Model):
    """One connected system (``systems/<name>.yaml``)."""

    name: Name
    title: str = ""
    adapter: str = "json"
    adapter_options: dict[str, Any] = Field(default_factory=dict)
    inbound: InboundSettings | None = None
    mapping: MappingSettings = MappingSettings()
    governance: dict[str, GovernanceSettings] = Field(
        default_factory=dict, description="by inbound dataset"
    )
    outbound: dict[str, Any] | None = Field(
        None, description="transport: <type> plus that transport's options"
    )
    retry: RetryPolicy = RetryPolicy()
    circuit: CircuitPolicy = CircuitPolicy()
    source_file: Path | None = Field(None, exclude=True)

    @field_validator("outbound")
    @classmethod
    def _outbound_names_transport(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and not isinstance(v.get("transport"), str):
            raise ValueError("outbound needs 'transport: <type>' (e.g. http_json)")
        return v

    @model_validator(mode="after")
    def _datasets_are_inbound(self) -> SystemConfig:
        sent = set(self.inbound.datasets) if self.inbound else set()
        for what, names in (
            ("mapping.inbound", self.mapping.inbound),
            ("governance", self.governance),
        ):
            for ds in names:
                if ds not in sent:
                    raise ValueError(
                        f"{what}.{ds}: the system does not send dataset {ds!r} "
                        f"(inbound.datasets: {sorted(sent)})"
                    )
        return self


HubConfig.model_rebuild()

# --------------------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Located:
    """YAML data plus the line of every key path, so errors can point at a line."""

    def __init__(self, data: Any, lines: dict[tuple[Any, ...], int]) -> None:
        self.data = data
        self.lines = lines

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None


def _construct(
    node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], file: Path
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise ConfigError(
                    f"{file}:{knode.start_mark.line + 1} {_dotted(path)}: "
                    "a key must be a plain name, not a list or mapping",
                    field=_dotted(path),
                )
            key = (
                knode.value if knode.tag.endswith(":str") else yaml.safe_load(yaml.serialize(knode))
            )
            if key in out:
                raise ConfigError(
                    f"{file}:{knode.start_mark.line + 1} {_dotted((*path, key))}: duplicate key",
                    field=_dotted((*path, key)),
                )
            lines[(*path, key)] = knode.start_mark.line + 1
            out[key] = _construct(vnode, (*path, key), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*path, i), lines, file) for i, v in enumerate(node.value)]
    value = yaml.safe_load(yaml.serialize(node))
    if isinstance(value, str):
        value = _expand_env(value, file, node.start_mark.line + 1, path)
    return value


def _expand_env(value: str, file: Path, line: int, path: tuple[Any, ...]) -> str:
    def repl(m: re.Match[str]) -> str:
        var, default = m.group(1), m.group(2)
        got = os.environ.get(var)
        if got is None:
            if default is not None:
                return default
            raise ConfigError(
                f"{file}:{line} {_dotted(path)}: environment variable {var} is not set",
                field=_dotted(path),
            )
        return got

    return _ENV.sub(repl, value)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


def load_yaml_file(path: Path) -> _Located:
    """Parse a YAML file safely, keeping the line of every key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", field=str(path)) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", field=str(path)) from exc
    lines: dict[tuple[Any, ...], int] = {}
    data = {} if node is None else _construct(node, (), lines, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1 the file must hold a mapping at the top", field="(top)")
    return _Located(data, lines)


def format_validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    file: Path,
    located: _Located | None,
    prefix: tuple[Any, ...] = (),
    also_allowed: tuple[str, ...] = (),
) -> str:
    """Render pydantic errors as ``file:line key.path: message`` lines, naming allowed keys
    (``also_allowed``: keys of the section the core itself reads, e.g. ``transport``)."""
    lines = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        line = located.line_of(loc) if located else None
        where = f"{file}:{line}" if line else str(file)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, err["loc"][:-1])
            if owner is not None:
                names = [(f.alias or n) for n, f in owner.model_fields.items() if not f.exclude]
                if not err["loc"][:-1]:
                    names = [*also_allowed, *names]
                allowed = ", ".join(names)
                msg = (
                    f"unknown key; allowed: {allowed}"
                    if allowed
                    else "unknown key; this section takes no keys"
                )
        lines.append(f"{where} {_dotted(loc)}: {msg}")
    return "\n".join(lines)


def validate_section(
    model: type[BaseModel],
    data: Any,
    file: Path,
    located: _Located | None,
    prefix: tuple[Any, ...] = (),
    also_allowed: tuple[str, ...] = (),
) -> Any:
    """Validate ``data`` with ``model``; on failure raise ConfigError naming file, line, key.
    Keys in ``also_allowed`` are read by the core and not passed to ``model``."""
    if also_allowed and isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in also_allowed}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        raise ConfigError(
            format_validation_error(exc, model, file, located, prefix, also_allowed),
            field=_dotted((*prefix, *first)),
        ) from None


def validate_loaded_section(
    model: type[BaseModel],
    data: Any,
    file: Path | None,
    prefix: tuple[Any, ...] = (),
    also_allowed: tuple[str, ...] = (),
    *,
    name: str = "<config>",
) -> Any:
    """:func:`validate_section` for a section of a file loaded already: the file is parsed
    again only when the section is invalid, to name the line of the error."""
    where = file if file is not None else Path(name)
    try:
        return validate_section(model, data, where, None, prefix, also_allowed)
    except ConfigError:
        if file is None or not file.exists():
            raise
        located = load_yaml_file(file)
        return validate_section(model, data, where, located, prefix, also_allowed)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at ``loc`` (to list its allowed keys)."""
    current: Any = model
    key_next = False  # the previous field is a mapping: this part is one of its keys
    for part in loc:
        if isinstance(part, int) or key_next:
            key_next = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        f = current.model_fields.get(str(part))
        if f is None:
            f = next((x for x in current.model_fields.values() if x.alias == part), None)
        if f is None:
            return None
        key_next = _is_mapping(f.annotation)
        current = _inner_model(f.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _is_mapping(annotation: Any) -> bool:
    """``dict[...]`` (or an optional one): its keys are names chosen by the user."""
    if get_origin(annotation) is dict:
        return True
    return any(get_origin(a) is dict for a in get_args(annotation))


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def load_system_file(path: Path) -> SystemConfig:
    located = load_yaml_file(path)
    cfg: SystemConfig = validate_section(SystemConfig, located.data, path, located)
    return cfg.model_copy(update={"source_file": path})


def _system_files(base: Path, entries: list[str]) -> list[Path]:
    files: list[Path] = []
    for entry in entries:
        p = (base / entry) if not Path(entry).is_absolute() else Path(entry)
        if p.is_dir():
            files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        elif p.exists():
            files.append(p)
        else:
            raise ConfigError(
                f"system file or folder {entry!r} does not exist ({p})", field="systems"
            )
    return files


def load_config(path: Path | str) -> HubConfig:
    """Load the hub file and every system file it names; check the routes' references."""
    path = Path(path)
    located = load_yaml_file(path)
    cfg: HubConfig = validate_section(HubConfig, located.data, path, located)
    systems: dict[str, SystemConfig] = {}
    for f in _system_files(path.parent, cfg.systems):
        sc = load_system_file(f)
        if sc.name in systems:
            raise ConfigError(
                f"{f}: system {sc.name!r} is also defined in {systems[sc.name].source_file}",
                field="name",
            )
        systems[sc.name] = sc
    cfg = cfg.model_copy(
        update={"base_dir": path.parent, "loaded_systems": systems, "source_file": path}
    )
    _check_routes(cfg, path, located)
    return cfg


def _check_routes(cfg: HubConfig, path: Path, located: _Located) -> None:
    seen: set[str] = set()
    for i, route in enumerate(cfg.routes):

        def fail(msg: str, key: tuple[Any, ...], i: int = i) -> None:
            loc = ("routes", i, *key)
            line = located.line_of(loc)
            raise ConfigError(f"{path}:{line} {_dotted(loc)}: {msg}", field=_dotted(loc))

        if route.name in seen:
            fail(f"route name {route.name!r} is used twice", ("name",))
        seen.add(route.name)
        src = cfg.loaded_systems.get(route.source)
        if src is None:
            fail(
                f"unknown system {route.source!r}; known: {sorted(cfg.loaded_systems)}", ("source",)
            )
        elif src.inbound is None or route.dataset not in src.inbound.datasets:
            fail(
                f"system {route.source!r} does not send dataset {route.dataset!r} "
                f"(its inbound.datasets)",
                ("dataset",),
            )
        for j, t in enumerate(route.targets):
            tgt = cfg.loaded_systems.get(t.system)
            if tgt is None:
                fail(
                    f"unknown system {t.system!r}; known: {sorted(cfg.loaded_systems)}",
                    ("targets", j),
                )
            elif tgt.outbound is None:
                fail(
                    f"system {t.system!r} has no outbound section, so it cannot be a target",
                    ("targets", j),
                )
