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
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import orjson  # noqa: E402

from bench.common import (  # noqa: E402
    Server,
    free_port,
    jghub_command,
    machine_info,
    write_section,
)

KEY_ID = "dept-a-bench"


def _config(tmp: Path, port: int, dead_port: int, signed: bool, loop: str = "auto") -> Path:
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
        f"listen: {{host: 127.0.0.1, port: {port}, event_loop: {loop}}}\n"
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
) -> dict[str, Any]:
    """One wrk run against the hub (unsigned or signed), or with ``bare`` against
    ``bench/baseline_app.py`` (the issue's baseline: parse the JSON, answer 202)."""
    port, dead = free_port(), free_port()
    hub = _config(tmp, port, dead, signed, loop)
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
        name = f"profile-{'signed' if signed else 'unsigned'}-ingest-wall.txt"
        cmd = [str(pyspy), "record", "-p", str(server.pid), "-d", str(max(1, seconds - 1))]
        spy = subprocess.Popen(
            [*cmd, "-r", "250", "--threads", "-f", "raw", "-o", str(out / name)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        cpu0 = server.cpu_seconds()
        res = _wrk(script, url, args, conns, seconds)
        cpu = server.cpu_seconds() - cpu0
    finally:
        if spy is not None:
            spy.wait(timeout=60)
        server.stop()
    ok = int(res["statuses"].get("202", 0))
    res["ok_per_s"] = ok / float(res["duration_s"])
    # the server's CPU (all threads, all processes) per accepted request: steadier than the
    # rate on a shared machine, and what an optimisation changes
    res["cpu_us"] = cpu / max(ok, 1) * 1e6
    return res


def _row(name: str, res: dict[str, Any], ratio: str, target: str = "", met: str = "") -> str:
    lat = res["latency_ms"]
    return (
        f"| {name} | {res['ok_per_s']:,.0f} | {res['cpu_us']:,.0f} | {lat['p50']:.1f} | "
        f"{lat['p99']:.1f} | {ratio} | {target} | {met} |\n"
    )


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
    p.add_argument("--workers", type=int, default=1, help="jghub serve --workers N")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--doc", type=Path, default=BENCH_DIR.parent / "docs" / "PERFORMANCE.md")
    a = p.parse_args()
    if a.quick:
        a.seconds, a.rounds = 3, 1
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
    kinds = ["bare", *(["bare-uvloop"] if have_uvloop else []), "unsigned", "signed"]
    best: dict[str, dict[str, Any]] = {}
    with multiprocessing.Pool(2) as pool:
        for r in range(a.rounds):
            for kind in kinds:
                signed = kind == "signed"
                bare = kind.startswith("bare")
                loop = "uvloop" if kind == "bare-uvloop" else "asyncio" if bare else hub_loop
                with tempfile.TemporaryDirectory(prefix="jghub-bench-") as d:
                    res = _run(
                        Path(d), signed, a.seconds, a.conns, pool, bare, a.profile, loop, a.workers
                    )
                print(
                    f"round {r + 1} {kind:>11}: "
                    f"{res['ok_per_s']:,.0f} accepted/s, {res['cpu_us']:,.0f} us CPU/request, "
                    f"statuses {res['statuses']}, p99 {res['latency_ms']['p99']:.1f} ms",
                    flush=True,
                )
                if kind not in best or res["ok_per_s"] > best[kind]["ok_per_s"]:
                    best[kind] = res
    bare, plain, signed_ = best["bare"], best["unsigned"], best["signed"]
    ratio = signed_["ok_per_s"] / plain["ok_per_s"]
    to_bare = signed_["ok_per_s"] / bare["ok_per_s"]
    info = machine_info()
    procs = (
        f"{a.workers} hub processes (`--workers {a.workers}`)"
        if a.workers > 1
        else ("one hub process")
    )
    same = f" in {a.workers} processes like the hub" if a.workers > 1 else " in one process"
    table = (
        f"Generated by `python bench/signed_ingest.py` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {info.get('cpu', '?')}, "
        f"{os.cpu_count()} cores; wrk 1 thread, {a.conns} connections, {a.seconds} s per run, "
        f"best of {a.rounds} alternating rounds; {procs} on the `{hub_loop}` event loop, "
        f"SQLite durability full. The bare handlers run{same}. CPU: the server's processes "
        "and threads, per accepted request.\n\n"
        "| one record per request | accepted/s | CPU µs/request | p50 ms | p99 ms | ratio | "
        "target | met |\n"
        "|---|---:|---:|---:|---:|---|---|---|\n"
        + _row(
            "bare aiohttp handler (`bench/baseline_app.py`: orjson parse, 202), asyncio's "
            "loop: **the issue's baseline**",
            bare,
            "1.00x",
        )
        + (
            _row(
                "bare aiohttp handler on uvloop (for comparison)",
                best["bare-uvloop"],
                f"{best['bare-uvloop']['ok_per_s'] / bare['ok_per_s']:.2f}x bare",
            )
            if "bare-uvloop" in best
            else ""
        )
        + _row("jghub unsigned", plain, f"{plain['ok_per_s'] / bare['ok_per_s']:.2f}x bare")
        + _row(
            "jghub signed: RFC 9421 Ed25519 + Content-Digest + nonce",
            signed_,
            f"{to_bare:.2f}x bare; {ratio:.2f}x unsigned"
            + (
                f"; {signed_['ok_per_s'] / best['bare-uvloop']['ok_per_s']:.2f}x bare on uvloop"
                if "bare-uvloop" in best
                else ""
            ),
            ">= 0.5x bare",
            "yes" if to_bare >= 0.5 else "**NO**",
        )
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
