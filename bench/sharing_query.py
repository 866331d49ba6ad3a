"""Governed query (受控查询) throughput against an unfiltered read of the same data, same run.

    python bench/sharing_query.py            # 100,000 records, ~1 minute
    python bench/sharing_query.py --quick    # 20,000 records
    python bench/sharing_query.py --no-write # print only

What runs (one process): 100,000 inspection records (``contracts.sample_inspection``, ~0.9 KB
of JSON each, four regions) in a SQLite file, payloads stored as UTF-8 JSON bytes (a BLOB, as
the hub's message store keeps them), read page by page (1,000 per page, keyset on the record
key, a cursor per page) and serialised as the HTTP body would be (orjson).

1. **Unfiltered read** (the baseline): ``SELECT key, payload ... WHERE key > ? ORDER BY key
   LIMIT 1000``, parse every payload, serialise the page. No checks, every field.
2. **Governed, every row granted**: the same pages through a grant of 10 of the 22 fields with
   a masked field (脱敏) and a row filter that every row passes, checked by
   :func:`hub.sharing.enforce.plan_query`: the combined filter pre-selects in SQL
   (``Plan.where_sql``), each record is checked again, projected by whitelist and masked in
   Python, and the page's cursor is an HMAC-signed token. Same rows as the baseline, so the
   ratio is the whole cost of governance. Target: >= 0.5x the baseline's records/s.
3. **Governed, selective**: a grant for two regions and a request filter on the result
   (about a fifth of the rows). Records *served* per second and rows *scanned* per second.
4. **Governed, selective, filtered in Python only** (no SQL pre-selection): what ``to_sql``
   saves.
5. **Sorted** (``sort=-inspection_time,inspection_no``, two regions), the first five pages:
   ordered and sought in SQL (``Plan.query_sql``, keyset on the sort values) against every
   matching row passing through the plan's bounded heap for each page (``Plan.page``). Rows
   scanned counts the whole dataset once per page.

Best of several interleaved passes (so a change in machine load hits every side alike). The
table is printed and written into ``docs/PERFORMANCE.md`` between the
``<!-- sharing-query:begin -->`` / ``<!-- sharing-query:end -->`` markers. Timings are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import write_section  # noqa: E402
from contracts import sample_inspection  # noqa: E402
from hub.sharing.enforce import CursorCodec, GrantScope, Plan, plan_query  # noqa: E402
from hub.sharing.filterlang import parse  # noqa: E402
from security.masking import MaskRule  # noqa: E402

TARGET_RATIO = 0.5
PAGE = 1000
REGIONS = ["330102", "330105", "330106", "330108"]
CODEC = CursorCodec(b"bench-cursor-secret-0123456789")

GRANTED = (
    "inspection_no",
    "inspection_name",
    "counterpart_name",
    "counterpart_code",
    "region_code",
    "inspection_result",
    "inspection_time",
    "implementing_body",
    "business_address",
    "inspectors",
)


def record(i: int) -> dict[str, Any]:
    r = sample_inspection(i)
    r["region_code"] = REGIONS[i % len(REGIONS)]
    return r


def build_db(path: Path, n: int) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE records (key TEXT PRIMARY KEY, dataset TEXT, payload BLOB NOT NULL)")
    db.executemany(
        "INSERT INTO records VALUES (?, 'inspection', ?)",
        ((f"r{i:09d}", orjson.dumps(record(i))) for i in range(n)),
    )
    db.commit()
    db.close()


def read_unfiltered(db: sqlite3.Connection) -> tuple[int, int]:
    """Every page of every record, as an ungoverned endpoint would serve them."""
    served = body = 0
    after = ""
    while True:
        rows = db.execute(
            "SELECT key, payload FROM records WHERE key > ? ORDER BY key LIMIT ?", (after, PAGE)
        ).fetchall()
        items = [orjson.loads(p) for _, p in rows]
        after = rows[-1][0] if len(rows) == PAGE else ""
        body += len(orjson.dumps({"items": items, "next": after or None}))
        served += len(items)
        if not after:
            return served, body


def read_governed(
    db: sqlite3.Connection, plan: Plan, *, sql_filter: bool = True
) -> tuple[int, int]:
    """Every page of the governed query: SQL pre-selection, check, projection, masks, cursor."""
    where, params = (plan.where_sql("sqlite", "payload", "bytes") if sql_filter else None) or (
        "1",
        [],
    )
    query = f"SELECT key, payload FROM records WHERE key > ? AND {where} ORDER BY key LIMIT ?"
    served = body = 0
    cursor: str | None = None
    while True:
        after = "" if cursor is None else plan.decode_cursor(CODEC, cursor)[0]
        rows = db.execute(query, [after, *params, PAGE]).fetchall()
        items = []
        for _, payload in rows:
            out = plan.apply(orjson.loads(payload))
            if out is not None:
                items.append(out)
        cursor = None
        if len(rows) == PAGE:
            cursor = plan.encode_cursor(CODEC, rows[-1][0], orjson.loads(rows[-1][1]))
        body += len(orjson.dumps({"items": items, "next": cursor}))
        served += len(items)
        if cursor is None:
            return served, body


def read_sorted(db: sqlite3.Connection, plan: Plan, pages: int, *, in_sql: bool) -> tuple[int, int]:
    """The first ``pages`` pages of a sorted governed query: ordered and sought in SQL
    (``Plan.query_sql``), or every filtered row through the plan's bounded heap
    (``Plan.page``) for each page."""
    served = body = 0
    cursor: str | None = None
    for _ in range(pages):
        if in_sql:
            position = None if cursor is None else plan.decode_cursor(CODEC, cursor)
            q = plan.query_sql("sqlite", "payload", "bytes", position=position)
            rows = db.execute(
                f"SELECT key, payload FROM records WHERE {q.where} ORDER BY {q.order_by} LIMIT ?",
                [*q.params, *q.order_params, PAGE + 1],
            ).fetchall()
            decoded = [(k, orjson.loads(p)) for k, p in rows]
            more = len(decoded) > PAGE
            decoded = decoded[:PAGE]
            items = [plan.project(r) for _, r in decoded]
            cursor = plan.encode_cursor(CODEC, *decoded[-1]) if more else None
        else:
            where, params = plan.where_sql("sqlite", "payload", "bytes") or ("1", [])
            found = db.execute(f"SELECT key, payload FROM records WHERE {where}", params)
            page = plan.page(((k, orjson.loads(p)) for k, p in found), PAGE, CODEC, cursor)
            items, cursor = page.items, page.next_cursor
        body += len(orjson.dumps({"items": items, "next": cursor}))
        served += len(items)
        if cursor is None:
            break
    return served, body


def best(fn: Callable[[], tuple[int, int]], results: dict[str, Any], name: str) -> None:
    t0 = time.perf_counter()
    served, body = fn()
    took = time.perf_counter() - t0
    prev = results.get(name)
    if prev is None or took < prev["seconds"]:
        results[name] = {"seconds": took, "served": served, "bytes": body}


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 records, fewer passes")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "PERFORMANCE.md")
    args = ap.parse_args()
    n, repeats = (20_000, 2) if args.quick else (100_000, 3)

    all_rows = GrantScope(
        "inspection",
        GRANTED,
        row_filter=parse("region_code like '33%'"),
        masks=(MaskRule("counterpart_code", "partial", keep_start=8, keep_end=2),),
        grant_id="bench-all",
    )
    selective = GrantScope(
        "inspection",
        GRANTED,
        row_filter=parse(f"region_code in ('{REGIONS[0]}', '{REGIONS[1]}')"),
        masks=all_rows.masks,
        grant_id="bench-selective",
    )
    governed_all = plan_query(all_rows)
    governed_sel = plan_query(selective, filter="inspection_result in ('1', '2')")
    governed_sorted = plan_query(selective, sort="-inspection_time,inspection_no")
    sorted_pages = 5

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.db"
        build_db(path, n)
        db = sqlite3.connect(path)
        # correctness before speed: the governed pages hold exactly the governed records
        served_all, _ = read_governed(db, governed_all)
        assert served_all == n, served_all
        want = sum(1 for i in range(n) if governed_sel.matches(record(i)))
        assert read_governed(db, governed_sel)[0] == want
        assert read_governed(db, governed_sel, sql_filter=False)[0] == want
        assert read_sorted(db, governed_sorted, 3, in_sql=True) == read_sorted(
            db, governed_sorted, 3, in_sql=False
        )
        first = governed_all.apply(record(0)) or {}
        assert (
            set(first) == set(GRANTED)
            and first["counterpart_code"] != record(0)["counterpart_code"]
        )

        results: dict[str, Any] = {}
        for _ in range(repeats):
            best(lambda: read_unfiltered(db), results, "base")
            best(lambda: read_governed(db, governed_all), results, "all")
            best(lambda: read_governed(db, governed_sel), results, "sel")
            best(lambda: read_governed(db, governed_sel, sql_filter=False), results, "py")
            best(
                lambda: read_sorted(db, governed_sorted, sorted_pages, in_sql=True), results, "ssql"
            )
            best(
                lambda: read_sorted(db, governed_sorted, sorted_pages, in_sql=False),
                results,
                "sheap",
            )
        db.close()

    base = results["base"]
    base_rps = base["served"] / base["seconds"]

    def row(label: str, key: str, note: str = "") -> str:
        r = results[key]
        served = r["served"] / r["seconds"]
        scanned = n / r["seconds"]
        return (
            f"| {label} | {fmt(served)} | {fmt(scanned)} | {r['served']:,} | "
            f"{r['bytes'] / 1e6:.1f} MB | {served / base_rps:.2f}x{note} |"
        )

    ratio = results["all"]["served"] / results["all"]["seconds"] / base_rps
    met = "met" if ratio >= TARGET_RATIO else "NOT met"
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Generated by `python bench/sharing_query.py{' --quick' if args.quick else ''}` on "
        f"{now}; CPython {platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
        f"{n:,} records in a SQLite file, pages of {PAGE:,}, best of {repeats} interleaved "
        f"passes; load average {os.getloadavg()[0]:.2f} at the end.",
        "",
        "| read | records served/s | rows scanned/s | served | body | served/s vs unfiltered |",
        "|---|---:|---:|---:|---:|---|",
        row("unfiltered read, all 22 fields (baseline)", "base"),
        row(
            "governed, every row granted: 10 fields, 1 masked, row filter, cursor",
            "all",
            f"; target >= {TARGET_RATIO}x: {met}",
        ),
        row("governed, 2 of 4 regions and `inspection_result in ('1','2')`", "sel"),
        row("the same, filtered in Python only (no SQL pre-selection)", "py"),
    ]
    for key, how in (("ssql", "ordered in SQL (`query_sql`)"), ("sheap", "heap over all rows")):
        r = results[key]
        lines.append(
            f"| sorted `-inspection_time,inspection_no`, 2 regions, first {sorted_pages} pages, "
            f"{how} | {fmt(r['served'] / r['seconds'])} | {fmt(n * sorted_pages / r['seconds'])}"
            f" | {r['served']:,} | {r['bytes'] / 1e6:.1f} MB | "
            f"{r['served'] / r['seconds'] / base_rps:.2f}x |"
        )
    lines += [
        "",
        "The governed read can beat the unfiltered one: it serialises 10 of the 22 fields "
        "(the body is about 60% of the size), which pays for the checks, the projection and "
        "the masks. Sorted pages cost a full pass over the matching rows each (no index on "
        "JSON values); ordering and seeking in SQL is faster than the in-memory heap.",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        write_section(
            args.out,
            "sharing-query",
            report,
            heading="## Governed query (data sharing)",
            intro="`python bench/sharing_query.py` (see its docstring; about a minute). "
            "A governed query checks the request against its grant once "
            "(`hub.sharing.enforce.plan_query`), pre-selects rows in SQL with the compiled "
            "filter (`to_sql`, every value bound), then checks, projects by whitelist and "
            "masks each record in Python.",
        )
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
