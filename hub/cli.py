"""``jghub`` command line (typer).

Exit codes: 0 success; 1 the command ran and found a problem (invalid config, not found, demo
not fully delivered); 2 usage error; 3 the hub could not start.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from adapters.national import cli as national_cli
from hub import __version__
from hub.config import HubConfig, load_config
from hub.errors import HubError, NotFound
from hub.store import Store, store_for_config
from hub.traceview import format_ts
from security import keys_cli
from security.admin_cli import mount as mount_security_cli

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="jghub",
    help="jghub — exchange hub of the provincial 互联网+监管 (Internet + Supervision) system.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dlq_app = typer.Typer(
    help="Dead letters (死信): list, show, replay, discard.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
app.add_typer(keys_cli.app, name="keys")
mount_security_cli(app)  # jghub tokens …, jghub audit …
app.add_typer(national_cli.app, name="national")  # jghub national reconcile|resync|pull

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="hub config file", envvar="JGHUB_CONFIG")
]


def _fail(err: HubError | str, code: int = 1) -> None:
    typer.echo(str(err), err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"jghub {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print version")
    ] = False,
) -> None:
    """jghub command line."""


def _load(path: Path) -> HubConfig:
    try:
        return load_config(path)
    except HubError as err:
        _fail(err)
        raise  # unreachable: _fail exits


def _ring(cfg: HubConfig) -> None:
    """Tell a running node that work is due now (best effort; its idle poll is the fallback)."""
    from hub.doorbell import doorbell_address, ring

    ring(
        doorbell_address(cfg.store_path()),
        [name for name, sc in cfg.loaded_systems.items() if sc.outbound is not None],
    )


async def _freeze_heap(_app: Any) -> None:
    """Move what exists at startup (modules, configuration, compiled models and mappings) out
    of the cyclic garbage collector's sight (``gc.freeze``): the collections that every batch
    of new records triggers then scan only what was made since. Measured: 5–15% less CPU per
    ingested record (docs/PERFORMANCE.md). Objects frozen here live as long as the process."""
    import gc

    gc.collect()
    gc.freeze()


def _new_loop(choice: str) -> asyncio.AbstractEventLoop:
    """The serving event loop (``listen.event_loop``): uvloop when asked for or, under
    ``auto``, when installed (a dependency, except on Windows); asyncio's own otherwise.
    uvloop runs the sockets and timers in libuv: less CPU per request on the ingest and
    delivery paths (docs/PERFORMANCE.md)."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                _fail("listen.event_loop is uvloop, but uvloop is not installed", 3)
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _store_label(cfg: HubConfig) -> str:
    if cfg.store.kind == "postgres":
        return f"postgres schema {cfg.store.db_schema}"
    return str(cfg.store_path())


def _with_store(cfg: HubConfig, fn: Callable[[Store], Awaitable[T]]) -> T:
    path = cfg.store_path()
    if cfg.store.kind == "sqlite" and not path.exists():
        # opening would create an empty database: say what is wrong instead
        _fail(NotFound(f"no hub database at {path} (wrong --config, or the hub never ran)"))

    async def run() -> T:
        store = store_for_config(cfg)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(run())


# --------------------------------------------------------------------------- serve


@app.command()
def serve(
    config: ConfigOpt = Path("hub.yaml"),
    host: Annotated[str | None, typer.Option(help="override listen.host")] = None,
    port: Annotated[int | None, typer.Option(help="override listen.port")] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="processes accepting on the port (one per core)")
    ] = 1,
    separate_dispatcher: Annotated[
        bool,
        typer.Option(
            "--separate-dispatcher",
            help="the node process only delivers (dispatcher, sources, jobs) and the --workers "
            "processes accept: ingest latency no longer waits behind delivery work",
        ),
    ] = False,
    ingest_only: Annotated[
        bool, typer.Option("--ingest-only", hidden=True, help="an extra ingest process")
    ] = False,
) -> None:
    """Run the hub: HTTP API and dispatcher, until SIGINT/SIGTERM.

    With ``--workers N`` the node process and N-1 ingest processes accept on the port. With
    ``--separate-dispatcher`` N ingest processes accept and the node process does not: it
    delivers, runs the inbound sources and jobs, and answers the workers' metrics relay; its
    own API listens on a private loopback port (logged). One event loop then never serves
    both an ingest request and a delivery burst."""
    from aiohttp import web

    from hub.api import create_app
    from hub.logs import configure_logging
    from hub.runtime import Hub

    cfg = _load(config)
    configure_logging()
    h = host or cfg.listen.host
    p = cfg.listen.port if port is None else port
    if (workers > 1 or separate_dispatcher) and p == 0:
        _fail("--workers needs a fixed port (listen.port or --port), not 0", 2)
    try:
        hub = Hub(cfg, role="ingest" if ingest_only else "node")
        application = create_app(cfg, hub=hub)
    except HubError as err:
        _fail(err, 3)
    application.on_startup.append(_freeze_heap)
    accepting = workers - 1 if not separate_dispatcher else workers  # besides the node
    if accepting:
        from hub.workers import IngestWorkers

        extra = IngestWorkers(config, h, p, accepting)

        async def run_workers(app: web.Application) -> AsyncIterator[None]:
            await extra.start()
            yield
            await extra.stop()

        application.cleanup_ctx.append(run_workers)
    ssl_context = None
    if cfg.listen.tls is not None:
        try:
            ssl_context = hub.guard.server_ssl_context()
        except HubError as err:
            _fail(err, 3)
    private = None
    if separate_dispatcher:
        import socket

        private = socket.create_server(("127.0.0.1", 0))  # the node's own API, not the port
    if not ingest_only:
        scheme = "https" if ssl_context is not None else "http"
        typer.echo(
            f"jghub {__version__} serving on {scheme}://{h}:{p} with {workers} process(es) "
            f"(store: {_store_label(cfg)})"
            + (
                f"; the node process delivers apart (its API on 127.0.0.1:"
                f"{private.getsockname()[1]})"
                if private is not None
                else ""
            )
        )
    from hub.fastpath import run_app

    run_app(
        application,
        loop=_new_loop(cfg.listen.event_loop),
        host=None if private is not None else h,
        port=None if private is not None else p,
        sock=private,
        ssl_context=ssl_context,
        shutdown_timeout=5,
        reuse_port=workers > 1 or ingest_only,
        fast=cfg.listen.fast_records,
    )


# --------------------------------------------------------------------------- check


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="hub or system YAML files")],
    samples: Annotated[
        Path | None,
        typer.Option(
            "--samples",
            help="folder of sample payloads: run each through decode, mapping, contract and "
            "governance (one system file only)",
        ),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="also check that the endpoints are reachable")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the sample report as JSON")
    ] = False,
    hub_config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="hub file whose declared datasets the system files may send"
        ),
    ] = None,
) -> None:
    """Validate config files offline: keys, types, plugins, routes, mappings; with --samples,
    show per sample record the canonical record or the exact errors. Exit 1 on any error."""
    from hub.checking import check_file, check_samples

    failed = 0
    for f in files:
        problems = check_file(f, hub_config)
        if problems:
            failed += 1
            for p in problems:
                typer.echo(f"FAIL {p}", err=True)
        else:
            typer.echo(f"ok   {f}")
    if failed:
        typer.echo(f"{failed} of {len(files)} files invalid", err=True)
        raise typer.Exit(1)
    if samples is None:
        if live:
            _fail("--live needs --samples (and one system file)", 2)
        return
    if len(files) != 1:
        _fail("--samples checks one system file at a time", 2)
    report = asyncio.run(check_samples(files[0], samples, live=live, hub_config=hub_config))
    if as_json:
        doc = {
            "ok": report.ok,
            "problems": report.problems,
            "records": [o.__dict__ for o in report.outcomes],
        }
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2, default=str))
    else:
        for o in report.outcomes:
            where = f"{o.sample} #{o.index} ({o.dataset})"
            if o.errors:
                for e in o.errors:
                    typer.echo(f"FAIL {where}: {e}")
                continue
            typer.echo(f"ok   {where}")
            typer.echo(
                "     " + json.dumps(o.canonical, ensure_ascii=False, sort_keys=True, default=str)
            )
            for n in o.notes:
                typer.echo(f"     note: {n}")
        for p in report.problems:
            typer.echo(f"FAIL {p}")
        bad = sum(1 for o in report.outcomes if o.errors)
        typer.echo(
            f"{len(report.outcomes) - bad} of {len(report.outcomes)} sample records ok"
            + (f"; {len(report.problems)} problems" if report.problems else "")
        )
    if not report.ok:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- migrate


@app.command()
def migrate(config: ConfigOpt = Path("hub.yaml")) -> None:
    """Create or upgrade the store's schema. PostgreSQL: run once before the first node starts
    and after each jghub upgrade (a node refuses a schema version it does not know). SQLite
    files are upgraded when the node opens them."""
    cfg = _load(config)
    st = cfg.store
    if st.kind != "postgres":
        _with_store(cfg, lambda s: s.counts())  # opening creates or upgrades the file
        typer.echo(f"{st.kind} store ready ({cfg.store_path()})")
        return
    from hub.store.postgres import migrate as pg_migrate

    assert st.dsn is not None  # the config model requires it for postgres
    try:
        before, after = asyncio.run(pg_migrate(st.dsn, st.db_schema, timeout=st.timeout))
    except HubError as err:
        _fail(err)
        return
    if before == after:
        typer.echo(f"schema {st.db_schema!r} is at version {after}; nothing to do")
    else:
        typer.echo(f"schema {st.db_schema!r} migrated from version {before} to {after}")


# --------------------------------------------------------------------------- trace


@app.command()
def trace(
    message_id: Annotated[str, typer.Argument(help="message id")],
    config: ConfigOpt = Path("hub.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the whole life of a message (全程留痕)."""
    from hub.traceview import render_trace, trace_to_dict

    cfg = _load(config)
    tr = _with_store(cfg, lambda s: s.trace(message_id))
    if tr is None:
        _fail(NotFound(f"no message with id {message_id!r}", field="id"))
        return
    doc = trace_to_dict(tr)
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        typer.echo(render_trace(doc))


# --------------------------------------------------------------------------- dlq


@dlq_app.command("list")
def dlq_list(
    config: ConfigOpt = Path("hub.yaml"),
    target: Annotated[str | None, typer.Option(help="only this target")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List dead letters, oldest first."""
    cfg = _load(config)
    items = _with_store(cfg, lambda s: s.dead_letters(target, limit))
    if as_json:
        typer.echo(
            json.dumps(
                [{k: getattr(d, k) for k in d.__slots__} for d in items],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    if not items:
        typer.echo("no dead letters")
        return
    typer.echo(
        f"{'id':>8}  {'dead at':<23}  {'target':<14}  {'att':>3}  {'status':>6}  message / reason"
    )
    for d in items:
        typer.echo(
            f"{d.delivery_id:>8}  {format_ts(d.dead_at):<23}  {d.target:<14}  {d.attempts:>3}  "
            f"{d.last_status if d.last_status is not None else '-':>6}  {d.message_id}"
        )
        typer.echo(f"{'':>8}  {d.reason[:160]}")


@dlq_app.command("show")
def dlq_show(
    delivery_id: Annotated[int, typer.Argument(help="dead letter (delivery) id")],
    config: ConfigOpt = Path("hub.yaml"),
) -> None:
    """Show one dead letter with its payload and trace."""
    cfg = _load(config)

    async def find(s: Store) -> Any:
        offset = 0
        while True:
            page = await s.dead_letters(None, 1000, offset)
            for d in page:
                if d.delivery_id == delivery_id:
                    return d, await s.trace(d.message_id)
            if len(page) < 1000:
                return None
            offset += 1000

    found = _with_store(cfg, find)
    if found is None:
        _fail(NotFound(f"no dead letter with id {delivery_id}", field="id"))
        return
    d, tr = found
    typer.echo(
        f"dead letter {d.delivery_id}: {d.message_id} → {d.target} after {d.attempts} "
        f"attempt(s)\nreason: {d.reason}\npayload:"
    )
    typer.echo(json.dumps(orjson.loads(tr.payload), ensure_ascii=False, indent=2))


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="dead letter ids")] = None,
    config: ConfigOpt = Path("hub.yaml"),
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
    target: Annotated[str | None, typer.Option(help="with --all: only this target")] = None,
) -> None:
    """Send dead letters again (attempts start over). A running hub picks them up."""
    import time

    if bool(ids) == all_:  # usage first: exit 2 whatever the config says
        _fail("give dead letter ids or --all (not both)", 2)
    cfg = _load(config)

    async def run(s: Store) -> int:
        now = time.time()
        if not all_:
            return await s.replay(list(ids or []), now)
        # Snapshot first: a running node may dead-letter replayed ones again meanwhile, and
        # they must not be replayed twice by this command.
        chosen: list[int] = []
        while page := await s.dead_letters(target, 1000, len(chosen)):
            chosen += [d.delivery_id for d in page]
        return await s.replay(chosen, now)

    n = _with_store(cfg, run)
    _ring(cfg)
    typer.echo(f"replayed {n} dead letter(s)")
    if ids and n < len(ids):
        _fail(f"{len(ids) - n} id(s) were not dead letters")


@dlq_app.command("discard")
def dlq_discard(
    ids: Annotated[list[int], typer.Argument(help="dead letter ids")],
    reason: Annotated[str, typer.Option(help="why (kept in the trace)")],
    config: ConfigOpt = Path("hub.yaml"),
) -> None:
    """Give up on dead letters for good (releases a held ordered partition)."""
    import time

    cfg = _load(config)
    n = _with_store(cfg, lambda s: s.discard(ids, time.time(), reason))
    _ring(cfg)
    typer.echo(f"discarded {n} dead letter(s)")
    if n < len(ids):
        _fail(f"{len(ids) - n} id(s) were not dead letters")


# --------------------------------------------------------------------------- top


@app.command()
def top(
    url: Annotated[
        str | None,
        typer.Option(help="the hub's base URL (default: listen.host/port of --config)"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="hub config file", envvar="JGHUB_CONFIG")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="bearer token of role ops", envvar="JGHUB_TOKEN")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="print one frame and exit")] = False,
    interval: Annotated[float, typer.Option(min=0.2, max=60, help="seconds per frame")] = 1.0,
    cafile: Annotated[str | None, typer.Option(help="CA file for an https hub")] = None,
) -> None:
    """Live terminal view of a running hub (targets, queues, rates, dead letters) from its
    /metrics, every second until Ctrl-C."""
    from monitoring.top import run_top

    if url is None:
        if config is None:
            url = "http://127.0.0.1:8080"
        else:
            cfg = _load(config)
            scheme = "https" if cfg.listen.tls else "http"
            host = "127.0.0.1" if cfg.listen.host in ("0.0.0.0", "::", "") else cfg.listen.host
            url = f"{scheme}://{host}:{cfg.listen.port}"
    try:
        run_top(url, token, once=once, interval=interval, cafile=cafile, out=typer.echo)
    except KeyboardInterrupt:
        return
    except HubError as err:
        _fail(err)


# --------------------------------------------------------------------------- demo


@app.command()
def demo(
    once: Annotated[
        bool, typer.Option("--once", help="exit when every record is delivered")
    ] = False,
    records: Annotated[int, typer.Option(min=10, max=1_000_000, help="records to send")] = 3000,
    workdir: Annotated[Path, typer.Option(help="work folder")] = Path(".jghub-demo"),
    port: Annotated[int, typer.Option(help="hub port (0 = any free port)")] = 0,
) -> None:
    """Run the hub on SQLite with simulated department and target systems, then summarise."""
    from hub.demo import run_demo

    code = asyncio.run(run_demo(workdir=workdir, records=records, once=once, port=port))
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except HubError as err:
        typer.echo(str(err), err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
