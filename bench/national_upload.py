"""Records/s uploaded to the national simulator in batches over loopback (not a test).

Runs a hub (SQLite store) with the national connector against the simulator and measures,
in the same run, the baseline (batch_size 1: one signed request per record) and batches of
100 and 500: time from ingest to the last receipt at the nation.

    .venv/bin/python bench/national_upload.py [--records 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from adapters.national.demo import write_national_setup
from adapters.national.simulator import NationalSimulator
from contracts.samples import sample_inspection
from hub.config import load_config
from hub.peers.sink import Sink
from hub.runtime import Hub
from security.keystore import Keystore, ManagedKey


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
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5000)
    args = ap.parse_args()
    base = await run(min(args.records, 1000), 1)
    print(f"{'batch':>6} {'records/s':>10} {'x baseline':>10}")
    print(f"{1:>6} {base:>10.0f} {1.0:>10.2f}")
    for batch in (100, 500):
        rate = await run(args.records, batch)
        print(f"{batch:>6} {rate:>10.0f} {rate / base:>10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
