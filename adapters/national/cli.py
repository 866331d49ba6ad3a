"""``jghub national ...``: run the national connector's jobs by hand.

* ``jghub national reconcile --date 2024-03-01`` — 对账 for one day (re-sends what the nation
  lacks unless ``--no-resend``); exits 1 with ``E_RECONCILE`` when differences remain;
* ``jghub national resync`` — rebuild the national catalog view from ours;
* ``jghub national pull`` — pull issued items now.

Each opens the hub's store without delivering or polling (an SQLite store must not be in use
by a running node) and takes the job's lease, like the schedule does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from adapters.national.connector import NationalConnector
from adapters.national.errors import ReconcileError
from hub.errors import HubError, StateError

__all__ = ["app"]

app = typer.Typer(
    help="The national 互联网+监管 connector: reconcile, resync, pull.", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="hub config file", envvar="JGHUB_CONFIG")
]
SystemOpt = Annotated[str, typer.Option("--system", help="the national system's name")]


async def _with_connector(
    config: Path, system: str, job: Callable[[NationalConnector], Awaitable[Any]]
) -> Any:
    from adapters.national.plugin import build_connectors
    from hub.config import load_config
    from hub.runtime import Hub

    hub = Hub(load_config(config))
    await hub.start(dispatch=False, sources=False)
    try:
        conn = build_connectors(hub).get(system)
        if conn is None:
            raise StateError(f"no national system named {system!r}", field="system")
        lease = f"national:{system}:manual"
        if not await hub.store.acquire_lease(lease, hub.node_id, conn.options.lock_seconds):
            raise StateError("another run holds the lease", field="system")
        try:
            return await job(conn)
        finally:
            await hub.store.release_lease(lease, hub.node_id)
    finally:
        await hub.stop()


def _run(config: Path, system: str, job: Callable[[NationalConnector], Awaitable[Any]]) -> Any:
    try:
        return asyncio.run(_with_connector(config, system, job))
    except HubError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None


@app.command()
def reconcile(
    date: Annotated[str, typer.Option("--date", help="the day, YYYY-MM-DD (China time)")],
    config: ConfigOpt = Path("hub.yaml"),
    system: SystemOpt = "national",
    resend: Annotated[bool, typer.Option(help="re-send the missing records")] = True,
) -> None:
    """对账: compare counts and digests per dataset for one day with the national side."""

    async def job(conn: NationalConnector) -> Any:
        return await conn.reconcile(date, resend=resend)

    report = _run(config, system, job)
    typer.echo(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
    if not report.clean:
        missing = sum(len(d.missing) for d in report.datasets if not d.clean_after)
        err = ReconcileError(
            f"对账 {date}: {missing} records differ and were not repaired", field="date"
        )
        typer.echo(str(err), err=True)
        raise typer.Exit(1)


@app.command()
def resync(config: ConfigOpt = Path("hub.yaml"), system: SystemOpt = "national") -> None:
    """Rebuild the national catalog view from ours (items that differ are replaced)."""

    async def job(conn: NationalConnector) -> Any:
        return await conn.resync_catalog()

    typer.echo(orjson.dumps(_run(config, system, job)).decode())


@app.command()
def pull(config: ConfigOpt = Path("hub.yaml"), system: SystemOpt = "national") -> None:
    """Pull issued warnings, clues and tasks now."""

    async def job(conn: NationalConnector) -> Any:
        return await conn.pull_once()

    typer.echo(f"{_run(config, system, job)} issued items committed")
