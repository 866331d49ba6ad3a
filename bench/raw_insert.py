"""Raw SQLite baseline: insert the rows the hub's store writes, with nothing else around it.

For every record: one ``messages`` row and one ``deliveries`` row, with the hub's own schema
and INSERT statements (``hub/store/sqlite.sql``: ``schema``, ``insert_message``,
``insert_delivery``), the same payload bytes the hub stores (the dataset model's JSON of
the same sample records), the same connection PRAGMAs as ``hub.store.sqlite._connect``, and
one ``BEGIN IMMEDIATE ... COMMIT`` per group of ``--rows-per-txn`` records (``executemany``).
Row tuples (ids, timestamps, payloads) are built outside the timed section; only the
transactions are timed.

    python bench/raw_insert.py --db /tmp/x.db --bodies DIR --count 8 --durability full \
        --rows-per-txn 1000 --duration 3

Prints ``RAW_JSON {...}``: rows, transactions, seconds (timed), rows_per_s, txn_per_s.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson


def _connect(path: Path, durability: str) -> sqlite3.Connection:
    """The hub's own connection set-up, so the PRAGMAs are the same by construction."""
    from hub.store.sqlite import _connect as hub_connect

    return hub_connect(path, durability)


def payloads(bodies: Path, count: int) -> list[bytes]:
    """The bytes the hub stores for each record of the NDJSON bodies (model JSON, no Nones)."""
    from hub.plugins import build_plugin_manager, load_registry

    model: Any = load_registry(build_plugin_manager()).datasets.get("inspection").model
    ser = model.__pydantic_serializer__
    out = []
    for n in range(count):
        for line in (bodies / str(n)).read_bytes().splitlines():
            if line.strip():
                out.append(ser.to_json(model.model_validate(orjson.loads(line)), exclude_none=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, type=Path)
    ap.add_argument("--bodies", required=True, type=Path)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--durability", choices=["full", "normal"], default="full")
    ap.add_argument("--rows-per-txn", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=3.0)
    args = ap.parse_args()

    from hub.envelope import new_message_id
    from hub.store.sql import load_queries
    from hub.tracecontext import new_traceparent

    q = load_queries("hub.store", "sqlite.sql")
    data = payloads(args.bodies, args.count)
    digests = [hashlib.sha256(d).digest() for d in data]
    conn = _connect(args.db, args.durability)
    conn.executescript(q["schema"])
    ins_msg, ins_del = q["insert_message"], q["insert_delivery"]

    seq = 0
    rows = txns = 0
    timed = 0.0
    k = args.rows_per_txn
    wall_end = time.monotonic() + args.duration
    while time.monotonic() < wall_end:
        now = time.time()
        tp = new_traceparent()
        msg_rows: list[tuple[Any, ...]] = []
        del_rows: list[tuple[Any, ...]] = []
        for _ in range(k):
            seq += 1
            msg_rows.append(
                (
                    seq,
                    new_message_id(),
                    "dept-a",
                    "inspection",
                    "1.0",
                    None,
                    None,
                    now,
                    now,
                    tp,
                    data[seq % len(data)],
                    None,  # subject
                    digests[seq % len(data)],  # the hub stores the payload's SHA-256 too
                )
            )
            del_rows.append((seq, "sink", "inspection-out", 0, None, now))
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(ins_msg, msg_rows)
        conn.executemany(ins_del, del_rows)
        conn.execute("COMMIT")
        timed += time.perf_counter() - t0
        rows += k
        txns += 1
    n_msgs = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    avg_payload = conn.execute("SELECT avg(length(payload)) FROM messages").fetchone()[0]
    conn.close()
    result = {
        "rows": rows,
        "transactions": txns,
        "seconds": timed,
        "rows_per_s": rows / timed if timed else 0.0,
        "txn_per_s": txns / timed if timed else 0.0,
        "rows_in_db": n_msgs,
        "payload_avg_bytes": avg_payload,
    }
    print("RAW_JSON " + orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
