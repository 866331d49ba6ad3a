"""Inbound sources run by the hub: keys make re-reads harmless, cursors are saved after the
commit, a failing source is restarted, rejected records land in the quarantine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.samples import sample_inspection
from hub.plugins import hookimpl
from hub.runtime import Hub
from hub.specs import SourceContext, SourceSpec
from tests.helpers import config


class ListOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int
    fail_once_at: int | None = None


class ListSource:
    """A department 'system' that offers numbered records; reads from the saved cursor on."""

    runs = 0

    def __init__(self, options: ListOptions) -> None:
        self.options = options
        self.failed = False

    async def run(self, ctx: SourceContext) -> None:
        ListSource.runs += 1
        while not ctx.stopping.is_set():
            cursor = int(await ctx.get_state("cursor") or 0)
            if cursor >= self.options.count:
                if await ctx.sleep(0.02):
                    return
                continue
            end = min(cursor + 3, self.options.count)
            if (
                self.options.fail_once_at is not None
                and not self.failed
                and end > self.options.fail_once_at
            ):
                self.failed = True
                raise ConnectionError("department API went away")
            records: list[Any] = [sample_inspection(i) for i in range(cursor, end)]
            if cursor == 3:
                records[1] = {**records[1], "region_code": "99"}  # one bad record
            keys = [f"row-{i}" for i in range(cursor, end)]
            await ctx.ingest(records, keys=keys, origin=f"rows {cursor}..{end - 1}")
            await ctx.put_state("cursor", str(end))


class ListPlugin:
    @hookimpl
    def hub_register_sources(self) -> list[SourceSpec]:
        return [SourceSpec("list", lambda system, opts: ListSource(opts), ListOptions)]


async def test_source_collects_everything_once_despite_a_failure(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        {},
        source_extra={"inbound": {"source": {"kind": "list", "count": 10, "fail_once_at": 7}}},
    )
    ListSource.runs = 0
    async with Hub(cfg, extra_plugins=[ListPlugin()]) as hub:
        runner = hub._sources[0]
        runner.min_backoff = 0.01

        async def done() -> bool:
            return await hub.store.get_state("source:dept-a", "cursor") == "10"

        for _ in range(200):
            if await done():
                break
            await asyncio.sleep(0.02)
        assert await done()
        counts = await hub.store.counts()
        assert counts["messages"] == 9  # ten rows, one refused
        [q] = await hub.store.quarantined("dept-a")
        assert q.key == "row-4" and q.code == "E_SCHEMA" and q.origin == "rows 3..5 record 1"
        assert ListSource.runs == 2 and "went away" in str(runner.last_error)
        assert runner.failures == 0  # it made progress since
    # started again on the same store: the cursor holds, nothing is read twice
    async with Hub(cfg, extra_plugins=[ListPlugin()]) as hub:
        await asyncio.sleep(0.1)
        assert (await hub.store.counts())["messages"] == 9


async def test_re_reading_after_a_lost_cursor_is_harmless(tmp_path: Path) -> None:
    """A crash after the commit but before the cursor was saved re-reads rows: the keys make
    them duplicates, nothing is stored or quarantined twice."""
    cfg = config(tmp_path, {}, source_extra={"inbound": {"source": {"kind": "list", "count": 6}}})
    async with Hub(cfg, extra_plugins=[ListPlugin()]) as hub:
        for _ in range(200):
            if await hub.store.get_state("source:dept-a", "cursor") == "6":
                break
            await asyncio.sleep(0.02)
        await hub.store.put_state("source:dept-a", "cursor", "0")  # the cursor was lost
        for _ in range(200):
            if await hub.store.get_state("source:dept-a", "cursor") == "6":
                break
            await asyncio.sleep(0.02)
        assert (await hub.store.counts())["messages"] == 5
        assert len(await hub.store.quarantined("dept-a")) == 1


def test_unknown_source_kind_is_refused_at_start(tmp_path: Path) -> None:
    import pytest

    from hub.errors import ConfigError, PluginError

    cfg = config(tmp_path, {}, source_extra={"inbound": {"source": {"kind": "ftp"}}})
    with pytest.raises(PluginError, match=r"unknown source .ftp."):
        Hub(cfg)
    cfg = config(tmp_path, {}, source_extra={"inbound": {"source": {"kind": "list", "cnt": 1}}})
    with pytest.raises(ConfigError, match=r"inbound\.source\.cnt: unknown key; allowed: kind"):
        Hub(cfg, extra_plugins=[ListPlugin()])
