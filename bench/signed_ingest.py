"""Signed single-record ingest next to unsigned ingest, measured in the same run.

    python bench/signed_ingest.py [--seconds 8] [--conns 32]

Two ``jghub serve`` processes in turn on the embedded SQLite store (durability ``full``, the
dispatcher off so only ingest is measured): the first takes plain JSON records from ``dept-a``;
the second requires ``dept-a`` to sign every request (``inbound.signed: true``: RFC 9421 with
Content-Digest, Ed25519, nonce checked against the hub store). wrk sends the same records to
both with ``bench/wrk_post.lua`` (the second from a file of requests this script signed
beforehand, each sent once: a nonce cannot be reused), so the load generator does not pay for
signing. A third run sends the plain records to ``bench/baseline_app.py`` (a bare aiohttp
handler: orjson parse, 202), the issue's baseline: signed ingest >= 0.5x its requests/s. The
ratio signed/unsigned shows what verification itself costs.
Writes its section of docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import orjson  # noqa: E402

from bench.common import (  # noqa: E402
    Server,
    connections_by_process,
    free_port,
    jghub_command,
    machine_info,
    thread_cpu,
    write_section,
)

KEY_ID = "dept-a-bench"


def _config(
    tmp: Path, port: int, dead_port: int, signed: bool, loop: str = "auto", fast: bool = True
) -> Path:
    (tmp / "systems").mkdir(parents=True)
    inbound = "inbound:\n  datasets: [inspection]\n" + ("  signed: true\n" if signed else "")
    (tmp / "systems" / "dept-a.yaml").write_text(f"name: dept-a\nadapter: json\n{inbound}")
    (tmp / "systems" / "sink.yaml").write_text(
        f"name: sink\noutbound:\n  transport: http_json\n  url: http://127.0.0.1:{dead_port}/in\n"
    )
    keys = (
        "keys:\n  peers:\n    dept-a:\n"
        f"      - {{id: {KEY_ID}, algorithm: ed25519, public_key: dept-a.pub.pem}}\n"
        if signed
        else ""
    )
    hub = tmp / "hub.yaml"
    hub.write_text(
        "hub: {name: bench, node_id: bench}\n"
        "store: {kind: sqlite, path: data/hub.db, durability: full}\n"
        f"listen: {{host: 127.0.0.1, port: {port}, event_loop: {loop}, "
        f"fast_records: {'true' if fast else 'false'}}}\n"
        "dispatcher: {enabled: false}\n"
        "systems: [systems]\n" + keys + "routes:\n  - {name: r, source: dept-a, "
        "dataset: inspection, targets: [sink]}\n"
    )
    return hub


def _sign_chunk(args: tuple[bytes, str, int, int]) -> list[str]:
    pem, url, start, n = args
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from contracts.samples import sample_inspection
    from security.httpsig import sign_request
    from security.signing import Ed25519Signer

    key = load_pem_private_key(pem, None)
    signer = Ed25519Signer(KEY_ID, private_key=key)  # type: ignore[arg-type]
    out = []
    for i in range(start, start + n):
        body = orjson.dumps(sample_inspection(i % 5000))
        h: dict[str, str] = {}
        sign_request("POST", url, h, body, signer=signer)
        out.append(
            "\t".join((h["Signature-Input"], h["Signature"], h["Content-Digest"], body.decode()))
        )
    return out


def _wrk(script: str, url: str, args: list[str], conns: int, seconds: int) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "30s", "-s", script, url]
    out = subprocess.run([*cmd, "--", *args], capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return dict(orjson.loads(line[9:]))
    raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")


def _run(
    tmp: Path,
    signed: bool,
    seconds: int,
    conns: int,
    pool: multiprocessing.pool.Pool,
    bare: bool = False,
    profile: bool = False,
    loop: str = "auto",
    workers: int = 1,
    fast: bool = True,
) -> dict[str, Any]:
    """One wrk run against the hub (unsigned or signed), or with ``bare`` against
    ``bench/baseline_app.py`` (the issue's baseline: parse the JSON, answer 202)."""
    port, dead = free_port(), free_port()
    hub = _config(tmp, port, dead, signed, loop, fast)
    url = f"http://127.0.0.1:{port}/v1/systems/dept-a/records"
    if signed:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = ed25519.Ed25519PrivateKey.generate()
        (tmp / "dept-a.pub.pem").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        total = 6000 * seconds  # more than a run can send
        chunks = pool.map(_sign_chunk, [(pem, url, i, 2000) for i in range(0, total, 2000)])
        tsv = tmp / "signed.tsv"
        tsv.write_text("\n".join(line for c in chunks for line in c) + "\n")
        script, args = str(BENCH_DIR / "wrk_post.lua"), [str(tsv), "application/json"]
    else:
        from contracts.samples import sample_inspection

        bodies = tmp / "bodies"
        bodies.mkdir()
        for i in range(5000):
            (bodies / str(i)).write_bytes(orjson.dumps(sample_inspection(i)))
        script = str(BENCH_DIR / "wrk_post.lua")
        args = [str(bodies), "5000", "application/json"]
    cmd = [*jghub_command(), "serve", "-c", str(hub), "--workers", str(workers)]
    if bare:
        cmd = [sys.executable, str(BENCH_DIR / "baseline_app.py"), "--port", str(port)]
        cmd += ["--event-loop", "uvloop" if loop == "uvloop" else "asyncio"]
        cmd += ["--processes", str(workers)]
    server = Server(
        "bare" if bare else "signed" if signed else "unsigned",
        cmd,
        port,
        tmp,
        tmp / "serve.log",
        processes=workers,
    )
    server.start()
    spy = None
    if profile and not bare:
        out = BENCH_DIR / "out"
        out.mkdir(exist_ok=True)
        pyspy = Path(sys.executable).parent / "py-spy"
        kind = ("signed" if signed else "unsigned") + ("" if fast else "-aiohttp")
        name = f"profile-{kind}-ingest-wall.txt"
        cmd = [str(pyspy), "record", "-p", str(server.pid), "-d", str(max(1, seconds - 1))]
        spy = subprocess.Popen(
            [*cmd, "-r", "250", "--threads", "-f", "raw", "-o", str(out / name)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        cpu0 = server.cpu_seconds()
        threads0 = thread_cpu(server.pid) if workers == 1 else {}
        split: list[int] = []
        if workers > 1:  # how the kernel spread the connections, read mid-run (wrk's
            # script first reads its file of signed requests, which takes a while)
            timer = threading.Timer(
                seconds / 2,
                lambda: split.extend(connections_by_process(server.pids(), port).values()),
            )
            timer.start()
        res = _wrk(script, url, args, conns, seconds)
        cpu = server.cpu_seconds() - cpu0
        threads1 = thread_cpu(server.pid) if workers == 1 else {}
        res["conns"] = " + ".join(str(c) for c in split)
    finally:
        if spy is not None:
            spy.wait(timeout=60)
        server.stop()
    ok = int(res["statuses"].get("202", 0))
    res["ok_per_s"] = ok / float(res["duration_s"])
    # the server's CPU (all threads, all processes) per accepted request: steadier than the
    # rate on a shared machine, and what an optimisation changes
    res["cpu_us"] = cpu / max(ok, 1) * 1e6
    res["thread_us"] = {
        k: round((v - threads0.get(k, 0.0)) / max(ok, 1) * 1e6)
        for k, v in threads1.items()
        if v - threads0.get(k, 0.0) > 0
    }
    return res


def _row(name: str, res: dict[str, Any], ratio: str, target: str = "", met: str = "") -> str:
    lat = res["latency_ms"]
    conns = res.get("conns") or ""
    return (
        f"| {name} | {conns} | {res['ok_per_s']:,.0f} | {res['cpu_us']:,.0f} | {lat['p50']:.1f} | "
        f"{lat['p99']:.1f} | {ratio} | {target} | {met} |\n"
    )


def _kinds(workers: list[int], have_uvloop: bool) -> list[tuple[str, int]]:
    """(kind, processes) of every run: the bare handler in one process (the issue's
    baseline), on uvloop and in as many processes as the hub (for comparison), then the hub
    unsigned and signed in each process count."""
    out = [("bare", 1)] + ([("bare-uvloop", 1)] if have_uvloop else [])
    out += [("bare", n) for n in workers if n > 1]
    for n in workers:
        out += [("unsigned", n), ("signed", n)]
        if n == 1:  # the same without the fast records path (listen.fast_records: false)
            out += [("unsigned-aiohttp", 1), ("signed-aiohttp", 1)]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="3 s per run, one round")
    p.add_argument("--profile", action="store_true", help="py-spy the hub runs (bench/out/)")
    p.add_argument("--conns", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds; best of each")
    p.add_argument(
        "--event-loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="the hub's listen.event_loop (auto: uvloop when installed)",
    )
    p.add_argument(
        "--workers",
        default="1,2",
        help="process counts of the hub runs (jghub serve --workers N), comma-separated",
    )
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--doc", type=Path, default=BENCH_DIR.parent / "docs" / "PERFORMANCE.md")
    a = p.parse_args()
    if a.quick:
        a.seconds, a.rounds = 3, 1
    workers = sorted({int(w) for w in a.workers.split(",")})
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    try:
        import uvloop  # noqa: F401

        have_uvloop = True
    except ImportError:
        have_uvloop = False
    hub_loop = a.event_loop
    if hub_loop == "auto":
        hub_loop = "uvloop" if have_uvloop else "asyncio"
    best: dict[tuple[str, int], dict[str, Any]] = {}
    with multiprocessing.Pool(2) as pool:
        for r in range(a.rounds):
            for kind, n in _kinds(workers, have_uvloop):
                signed = kind.startswith("signed")
                fast = not kind.endswith("-aiohttp")
                bare = kind.startswith("bare")
                loop = "uvloop" if kind == "bare-uvloop" else "asyncio" if bare else hub_loop
                with tempfile.TemporaryDirectory(prefix="jghub-bench-") as d:
                    res = _run(
                        Path(d), signed, a.seconds, a.conns, pool, bare, a.profile, loop, n, fast
                    )
                print(
                    f"round {r + 1} {kind:>11} x{n}: "
                    f"{res['ok_per_s']:,.0f} accepted/s, {res['cpu_us']:,.0f} us CPU/request, "
                    f"statuses {res['statuses']}, p99 {res['latency_ms']['p99']:.1f} ms "
                    f"{res.get('conns') or ''} {res.get('thread_us') or ''}",
                    flush=True,
                )
                if (kind, n) not in best or res["ok_per_s"] > best[kind, n]["ok_per_s"]:
                    best[kind, n] = res
    base = best["bare", 1]

    def x(res: dict[str, Any], of: dict[str, Any]) -> float:
        return float(res["ok_per_s"] / of["ok_per_s"])

    info = machine_info()
    rows = _row(
        "bare aiohttp handler (`bench/baseline_app.py`: orjson parse, 202), asyncio's loop, "
        "1 process: **the issue's baseline**",
        base,
        "1.00x",
    )
    if ("bare-uvloop", 1) in best:
        uv = best["bare-uvloop", 1]
        rows += _row("bare handler on uvloop, 1 process (comparison)", uv, f"{x(uv, base):.2f}x")
    for n in workers:
        if n > 1:
            rows += _row(
                f"bare handler, {n} processes (comparison)",
                best["bare", n],
                f"{x(best['bare', n], base):.2f}x",
            )
    verdicts = []
    for n in workers:
        plain, signed_ = best["unsigned", n], best["signed", n]
        procs = "1 process" if n == 1 else f"`--workers {n}`"
        rows += _row(f"jghub unsigned, {procs}", plain, f"{x(plain, base):.2f}x")
        if n == 1 and ("unsigned-aiohttp", 1) in best:
            for kind in ("unsigned-aiohttp", "signed-aiohttp"):
                res = best[kind, 1]
                rows += _row(
                    f"jghub {kind.split('-')[0]}, 1 process, `listen.fast_records: false` "
                    "(aiohttp for every request; comparison)",
                    res,
                    f"{x(res, base):.2f}x",
                )
        extra = f"; {x(signed_, plain):.2f}x unsigned"
        if n > 1:
            extra += f"; {x(signed_, best['bare', n]):.2f}x the {n}-process bare handler"
        met = x(signed_, base) >= 0.5
        verdicts.append(f"{procs}: {x(signed_, base):.2f}x ({'met' if met else 'not met'})")
        rows += _row(
            f"jghub **signed** (RFC 9421 Ed25519 + Content-Digest + nonce), {procs}",
            signed_,
            f"**{x(signed_, base):.2f}x**{extra}",
            ">= 0.5x the baseline",
            "yes" if met else "**NO**",
        )
    table = (
        f"Generated by `python bench/signed_ingest.py{' --quick' if a.quick else ''}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {info.get('cpu', '?')}, "
        f"{os.cpu_count()} cores; wrk 1 thread, {a.conns} connections, {a.seconds} s per run, "
        f"best of {a.rounds} alternating rounds; the hub on the `{hub_loop}` event loop, "
        "SQLite durability full, dispatcher off. Conns: how the kernel spread wrk's "
        "connections over the processes (`SO_REUSEPORT`). CPU: the server's processes and "
        "threads, per accepted request. Signed requests were signed beforehand (each nonce "
        "once), so wrk does not pay for signing.\n\n"
        "| one record per request | Conns | accepted/s | CPU µs/request | p50 ms | p99 ms | "
        "ratio to the baseline | target | met |\n"
        "|---|---|---:|---:|---:|---:|---|---|---|\n" + rows + "\n"
        f"Signed single-record ingest against the issue's baseline: {'; '.join(verdicts)}.\n"
    )
    print("\n" + table)
    if not a.no_write:
        write_section(
            a.doc,
            "signed-ingest",
            table,
            heading="## Signed ingest: what verifying a signature costs",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
