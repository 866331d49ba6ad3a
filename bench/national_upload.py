"""Records/s uploaded to the national simulator in batches over loopback (not a test).

Runs a hub (SQLite store) with the national connector against the simulator and measures,
in the same run, the baseline (batch_size 1: one signed request per record) and batches of
100 and 500: time from ingest to the last receipt at the nation.

    .venv/bin/python bench/national_upload.py [--records 5000] [--no-write]

The table is printed and written into ``docs/PERFORMANCE.md`` and ``docs/national.md``
between the ``<!-- national:begin -->`` / ``<!-- national:end -->`` markers (text outside them
is kept; a missing section is added at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

from common import write_section  # bench/ is the script's folder, first on sys.path

from adapters.national.demo import write_national_setup
from adapters.national.simulator import NationalSimulator
from contracts.samples import sample_inspection
from hub.config import load_config
from hub.peers.sink import Sink
from hub.runtime import Hub
from security.keystore import Keystore, ManagedKey

REPO = Path(__file__).resolve().parent.parent
#: the section added to a document that lacks the markers: (heading, introduction)
SECTIONS = {
    "PERFORMANCE.md": (
        "## National upload: 监管行为 batches to the national system",
        "`python bench/national_upload.py` (see its docstring; about 10 s). Records/s from "
        "ingest to the national receipt, signed (Ed25519, RFC 9421), SQLite store, against the "
        "national simulator over loopback; the baseline is one request per record, measured "
        "in the same run.",
    ),
    "national.md": ("## Benchmark", "`bench/national_upload.py`, same run:"),
}


async def run(records: int, batch: int) -> float:
    sim = NationalSimulator(keys=Keystore())
    sink = Sink("dept")
    await sim.start()
    await sink.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path, hub_key, _ = write_national_setup(
                Path(tmp),
                national_url=sim.base_url,
                dept_urls={"dept-a": sink.url, "dept-b": sink.url},
                batch_size=batch,
            )
            sim.keys = Keystore([ManagedKey(hub_key, owner="hub")])
            recs = [sample_inspection(i) for i in range(records)]
            async with Hub(load_config(path)) as hub:
                t0 = time.perf_counter()
                for i in range(0, records, 1000):
                    await hub.ingest_records("dept-a", recs[i : i + 1000], dataset="inspection")
                while len(sim.behaviour_records.get("jcxw", {})) < records:
                    await asyncio.sleep(0.01)
                return records / (time.perf_counter() - t0)
    finally:
        await sim.stop()
        await sink.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    base_n = min(args.records, 1000)
    base = await run(base_n, 1)
    rows = [f"| 1 | {base:,.0f} | 1.00 |"]
    for batch in (100, 500):
        rate = await run(args.records, batch)
        rows.append(f"| {batch} | {rate:,.0f} | {rate / base:.1f} |")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = "\n".join(
        [
            f"Run {now}, CPython {platform.python_version()}, {os.cpu_count()} cores, "
            f"{args.records:,} records per batch size ({base_n:,} for batch 1); load average "
            f"{os.getloadavg()[0]:.2f} at the end.",
            "",
            "| batch | records/s | x per-record |",
            "|---|---:|---:|",
            *rows,
        ]
    )
    print(report)
    if not args.no_write:
        for name in SECTIONS:
            heading, intro = SECTIONS[name]
            write_section(REPO / "docs" / name, "national", report, heading=heading, intro=intro)
            print(f"written to docs/{name}")


if __name__ == "__main__":
    asyncio.run(main())
