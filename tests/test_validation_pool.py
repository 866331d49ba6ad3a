"""Validation in worker processes gives the same answers as in the hub process."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest

from contracts.samples import sample_inspection
from hub.errors import BadRequest, SchemaError
from hub.runtime import Hub
from hub.specs import RawLines
from tests.helpers import config, deep_record


def _lines(records: list[bytes]) -> RawLines:
    out = RawLines()
    for n, line in enumerate(records, start=1):
        out.append(line)
        out.line_numbers.append(n)
    return out


MIXED = [
    orjson.dumps(sample_inspection(1)),
    orjson.dumps(deep_record(40)),
    b"[1, 2]",
    orjson.dumps({**sample_inspection(4), "inspection_no": ""}),
    orjson.dumps({**sample_inspection(5), "business_address": "路" * 4000}),
    *(orjson.dumps(sample_inspection(i)) for i in range(10, 40)),
]


async def _ingest(tmp: Path, pool: int, lines: list[bytes], **kw: Any) -> tuple[Any, int]:
    """Ingest through a hub; returns its result and how many records its workers validated."""
    cfg = config(
        tmp,
        {"t": {"url": "http://127.0.0.1:9/x"}},
        dispatcher={"enabled": False},
        limits={"max_record_bytes": 4096},
        ingest={"validation_processes": pool, "validation_min_batch": 2},
        **kw,
    )
    hub = Hub(cfg)
    await hub.start()
    try:
        body_size = sum(len(x) + 1 for x in lines)
        res = await hub.ingest_records("dept-a", _lines(lines), body_size=body_size, single=False)
        vp = hub._validation_pool
        return res, vp.validated if vp is not None else 0
    finally:
        await hub.stop()


def _summary(res: Any) -> tuple[Any, ...]:
    return (
        res.indexes,
        [(e.index, e.error.code, e.error.field, e.error.message) for e in res.errors],
    )


@pytest.mark.slow
async def test_pool_answers_like_the_hub_process(tmp_path: Path) -> None:
    alone, none = await _ingest(tmp_path / "a", 0, MIXED)
    pooled, in_workers = await _ingest(tmp_path / "b", 2, MIXED)
    assert none == 0 and in_workers == len(MIXED)  # the second hub really used its workers
    assert _summary(pooled) == _summary(alone)
    assert [(e.index, e.error.code) for e in pooled.errors] == [
        (1, "E_TOO_DEEP"),
        (2, "E_SCHEMA"),
        (3, "E_SCHEMA"),
        (4, "E_TOO_LARGE"),
    ]
    assert len(pooled.ids) == len(MIXED) - 4
    # the committed payloads are the same canonical bytes
    import sqlite3

    def payloads(db: Path) -> list[bytes]:
        conn = sqlite3.connect(db)
        try:
            return [r[0] for r in conn.execute("SELECT payload FROM messages ORDER BY seq")]
        finally:
            conn.close()

    assert payloads(tmp_path / "a" / "data" / "hub.db") == payloads(
        tmp_path / "b" / "data" / "hub.db"
    )


@pytest.mark.slow
async def test_pool_refuses_a_body_with_a_line_that_is_not_json(tmp_path: Path) -> None:
    with pytest.raises(BadRequest) as exc:
        await _ingest(tmp_path, 2, [*MIXED[:3], b"{oops", *MIXED[5:]])
    assert exc.value.field == "line 4" and exc.value.extra["line"] == 4


@pytest.mark.slow
async def test_pool_feeds_route_filters(tmp_path: Path) -> None:
    lines = [orjson.dumps(sample_inspection(i)) for i in range(40)]
    flt = [{"field": "inspection_result", "in": ["2", "3"]}]
    await _ingest(tmp_path / "a", 0, lines, route_filter=flt)
    _, in_workers = await _ingest(tmp_path / "b", 2, lines, route_filter=flt)
    assert in_workers == 40
    import sqlite3

    def routed(db: Path) -> int:
        conn = sqlite3.connect(db)
        try:
            return int(conn.execute("SELECT count(*) FROM deliveries").fetchone()[0])
        finally:
            conn.close()

    n = routed(tmp_path / "b" / "data" / "hub.db")
    assert 0 < n < 40 and n == routed(tmp_path / "a" / "data" / "hub.db")


def test_errors_cross_processes_with_field_and_extras() -> None:
    err = SchemaError("record 3: x: bad", field="x", errors=[{"field": "x"}])
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is SchemaError and back.field == "x" and back.extra == err.extra
    assert back.to_problem() == err.to_problem()


@pytest.mark.slow
async def test_a_dead_worker_costs_nothing_but_speed(tmp_path: Path) -> None:
    """A validation worker killed between batches: the next batch is validated in the hub
    process (nothing lost, nothing refused), and fresh workers take the one after."""
    import asyncio
    import os
    import signal

    cfg = config(
        tmp_path,
        {"t": {"url": "http://127.0.0.1:9/x"}},
        dispatcher={"enabled": False},
        ingest={"validation_processes": 2, "validation_min_batch": 2},
    )
    lines = [orjson.dumps(sample_inspection(i)) for i in range(20)]
    async with Hub(cfg) as hub:
        pool = hub._validation_pool
        assert pool is not None
        first = await hub.ingest_records("dept-a", _lines(lines), single=False)
        assert len(first.ids) == 20 and pool.validated == 20
        victim = next(iter(pool._pool._processes))  # type: ignore[attr-defined]
        os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(0.3)
        second = await hub.ingest_records("dept-a", _lines(lines), single=False)
        assert len(second.ids) == 20 and not second.errors
        assert pool.validated == 20  # this batch was validated in the hub process
        third = await hub.ingest_records("dept-a", _lines(lines), single=False)
        assert len(third.ids) == 20 and hub._validation_pool is pool
        assert pool.validated == 40  # the new workers validated the third batch
