"""``file_batch`` (批量交换): batch files with manifests in a real drop folder, taken by a real
hub; batch files written by the outbound transport. Hostile files get one test each."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from contracts.samples import sample_inspection
from hub.config import HubConfig
from hub.runtime import Hub
from hub.specs import OutboundItem
from hub.transports.file_batch import (
    FileBatchOutOptions,
    FileBatchSourceOptions,
    FileBatchTransport,
    check_file_name,
    parse_batch,
)
from tests.helpers import config, wait_until

SOURCE = "dept-a"
FLAT = [
    "catalog_code",
    "implementation_code",
    "inspection_name",
    "inspection_no",
    "supervised_object",
    "counterpart_name",
    "counterpart_nature",
    "counterpart_cert_type",
    "counterpart_code",
    "region_code",
    "inspection_form",
    "inspection_category",
    "inspection_result",
    "inspection_time",
    "inspectors",
    "business_address",
    "registered_address",
]


def hub_config(
    tmp: Path, drop: Path, targets: dict[str, Any] | None = None, **opts: Any
) -> HubConfig:
    source = {"kind": "file_batch", "directory": str(drop), "poll_interval": 0.02, **opts}
    return config(tmp, targets or {}, source_extra={"inbound": {"source": source}})


def put_file(drop: Path, name: str, data: bytes, records: int, **manifest: Any) -> dict[str, Any]:
    """Drop a data file, then its manifest (the order a careful sender uses)."""
    drop.mkdir(parents=True, exist_ok=True)
    (drop / name).write_bytes(data)
    doc = {"file": name, "records": records, "sha256": hashlib.sha256(data).hexdigest()}
    doc.update(manifest)
    (drop / f"{name}.manifest.json").write_bytes(orjson.dumps(doc))
    return doc


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def csv_bytes(records: list[dict[str, Any]], encoding: str, delimiter: str = ",") -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delimiter)
    w.writerow(FLAT)
    for r in records:
        w.writerow(
            [orjson.dumps(r[c]).decode() if c == "inspectors" else r.get(c, "") or "" for c in FLAT]
        )
    return buf.getvalue().encode(encoding)


async def stored(hub: Hub, key: str) -> dict[str, Any]:
    mid = await hub.store.lookup_idempotency(SOURCE, key)
    assert mid is not None, f"nothing stored under {key}"
    trace = await hub.store.trace(mid)
    assert trace is not None
    payload: dict[str, Any] = orjson.loads(trace.payload)
    return payload


def settled(drop: Path, name: str, folder: str = "done") -> Callable[[], bool]:
    return lambda: (drop / folder / name).exists() and not (drop / f"{name}.manifest.json").exists()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Hub, Path]]:
    drop = tmp_path / "drop"
    drop.mkdir()
    async with Hub(hub_config(tmp_path, drop, json_columns=["inspectors"])) as hub:
        yield hub, drop


# --------------------------------------------------------------------------- good files


@pytest.mark.parametrize("encoding", ["utf-8", "gbk", "gb18030"])
async def test_csv_in_a_declared_encoding_is_committed_whole(tmp_path: Path, encoding: str) -> None:
    drop = tmp_path / "drop"
    recs = [sample_inspection(i) for i in range(5)]
    recs[0]["business_address"] = "杭州市西湖区文三路 1 号"
    data = csv_bytes(recs, encoding, delimiter=";")
    doc = put_file(drop, "day1.csv", data, 5, encoding=encoding)
    cfg = hub_config(tmp_path, drop, delimiter=";", json_columns=["inspectors"])
    async with Hub(cfg) as hub:
        await wait_until(settled(drop, "day1.csv"), what="file moved to done/")
        assert (await hub.store.counts())["messages"] == 5
        got = await stored(hub, f"sha256:{doc['sha256']}:1")
        assert got["business_address"] == "杭州市西湖区文三路 1 号"
        assert got["inspectors"] == recs[0]["inspectors"]
    report = orjson.loads((drop / "done" / "day1.csv.report.json").read_bytes())
    assert report["committed"] == 5 and report["rejected"] == [] and report["records"] == 5
    assert (drop / "done" / "day1.csv.manifest.json").exists()


async def test_jsonl_rejected_records_are_quarantined_and_reported(
    running: tuple[Hub, Path],
) -> None:
    hub, drop = running
    recs = [sample_inspection(i) for i in range(3)]
    recs[1]["region_code"] = "99"
    doc = put_file(drop, "b.jsonl", jsonl(recs) + b"\n", 3)
    await wait_until(settled(drop, "b.jsonl"), what="file moved")
    report = orjson.loads((drop / "done" / "b.jsonl.report.json").read_bytes())
    assert report["committed"] == 2
    [rej] = report["rejected"]
    assert rej["record"] == 2 and rej["code"] == "E_SCHEMA" and rej["field"] == "region_code"
    assert rej["key"] == f"sha256:{doc['sha256']}:2"
    [q] = await hub.store.quarantined(SOURCE)
    assert q.key == rej["key"] and q.code == "E_SCHEMA" and "b.jsonl" in q.origin
    assert (await hub.store.counts())["messages"] == 2


async def test_xml_records_are_parsed_under_the_record_tag(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    recs = [sample_inspection(i) for i in range(2)]
    parts = []
    for r in recs:
        fields = "".join(
            f"<{k}>{v}</{k}>" for k, v in r.items() if k != "inspectors" and v is not None
        )
        people = "".join(
            f"<inspector><name>{p['name']}</name>"
            f"<law_enforcement_cert_no>{p['law_enforcement_cert_no']}</law_enforcement_cert_no>"
            "</inspector>"
            for p in r["inspectors"]
        )
        parts.append(f"<inspection>{fields}<inspectors>{people}</inspectors></inspection>")
    xml = '<?xml version="1.0" encoding="GB18030"?><batch>' + "".join(parts) + "</batch>"
    doc = put_file(drop, "t.xml", xml.encode("gb18030"), 2, encoding="gb18030")
    cfg = hub_config(tmp_path, drop, record_tag="inspection", xml_lists=["inspectors"])
    async with Hub(cfg) as hub:
        await wait_until(settled(drop, "t.xml"), what="xml moved")
        got = await stored(hub, f"sha256:{doc['sha256']}:2")
        assert got["inspection_no"] == recs[1]["inspection_no"]
        assert got["inspectors"] == recs[1]["inspectors"]
        assert (await hub.store.counts())["messages"] == 2


async def test_a_redelivered_file_is_a_duplicate_under_any_name(
    running: tuple[Hub, Path],
) -> None:
    hub, drop = running
    data = jsonl([sample_inspection(i) for i in range(4)])
    put_file(drop, "first.jsonl", data, 4)
    await wait_until(settled(drop, "first.jsonl"), what="first taken")
    put_file(drop, "again.jsonl", data, 4)
    await wait_until(settled(drop, "again.jsonl"), what="duplicate moved")
    put_file(drop, "first.jsonl", data, 4)  # the same name once more: kept beside the first
    await wait_until(settled(drop, "first.jsonl.1"), what="same-name duplicate moved")
    assert (await hub.store.counts())["messages"] == 4
    report = orjson.loads((drop / "done" / "again.jsonl.report.json").read_bytes())
    assert report["duplicate_of"] == "first.jsonl" and report["committed"] == 0
    same = orjson.loads((drop / "done" / "first.jsonl.1.report.json").read_bytes())
    assert same["duplicate_of"] == "first.jsonl"


async def test_commit_then_crash_before_the_move_reads_the_file_again_as_duplicates(
    tmp_path: Path,
) -> None:
    """The records were committed (as by a run that died before the move): taking the file
    finds every key already stored, adds nothing and moves the file."""
    drop = tmp_path / "drop"
    recs = [sample_inspection(i) for i in range(6)]
    data = jsonl(recs)
    digest = hashlib.sha256(data).hexdigest()
    cfg = hub_config(tmp_path, drop)
    async with Hub(cfg) as hub:
        await hub.stop()
    hub = Hub(cfg)
    await hub.start(sources=False)
    try:
        ctx = hub._sources[0].ctx
        keys = [f"sha256:{digest}:{n}" for n in range(1, 7)]
        first = await ctx.ingest(recs, keys=keys)
        assert len(first.ids) == 6 and not first.duplicates
    finally:
        await hub.stop()
    put_file(drop, "c.jsonl", data, 6)
    async with Hub(cfg) as hub:
        await wait_until(settled(drop, "c.jsonl"), what="moved after re-read")
        assert (await hub.store.counts())["messages"] == 6
    report = orjson.loads((drop / "done" / "c.jsonl.report.json").read_bytes())
    assert report["committed"] == 0 and report["duplicates"] == 6


async def test_a_manifest_left_behind_by_a_crash_mid_move_is_moved(
    running: tuple[Hub, Path],
) -> None:
    hub, drop = running
    put_file(drop, "m.jsonl", jsonl([sample_inspection(1)]), 1)
    await wait_until(settled(drop, "m.jsonl"), what="taken")
    # as if the process died between moving the data file and moving its manifest
    os.replace(drop / "done" / "m.jsonl.manifest.json", drop / "m.jsonl.manifest.json")
    await wait_until(
        lambda: (drop / "done" / "m.jsonl.manifest.json").exists(), what="manifest moved"
    )
    assert not (drop / "failed").joinpath("m.jsonl.error.json").exists()
    assert (await hub.store.counts())["messages"] == 1


# --------------------------------------------------------------------------- hostile files


def failed_code(drop: Path, name: str) -> str:
    doc = orjson.loads((drop / "failed" / f"{name}.error.json").read_bytes())
    return str(doc["code"])


async def wait_failed(drop: Path, name: str) -> None:
    await wait_until(
        lambda: (drop / "failed" / f"{name}.error.json").exists(), what=f"{name} failed"
    )


@pytest.mark.parametrize(
    "evil", ["../../etc/passwd", "/etc/passwd", "a\x00b.jsonl", "sub/x.jsonl", "..", ".hidden"]
)
async def test_unsafe_file_names_in_a_manifest_are_refused(
    running: tuple[Hub, Path], evil: str
) -> None:
    hub, drop = running
    doc = {"file": evil, "records": 1, "sha256": "0" * 64}
    (drop / "x.jsonl.manifest.json").write_bytes(orjson.dumps(doc))
    await wait_failed(drop, "x.jsonl")
    assert failed_code(drop, "x.jsonl") == "E_PATH"
    assert (await hub.store.counts())["messages"] == 0
    with pytest.raises(Exception, match="E_PATH"):
        check_file_name(evil)


async def test_a_symlink_in_the_drop_folder_is_not_followed(
    running: tuple[Hub, Path], tmp_path: Path
) -> None:
    hub, drop = running
    secret = tmp_path / "outside.jsonl"
    data = jsonl([sample_inspection(1)])
    secret.write_bytes(data)
    (drop / "link.jsonl").symlink_to(secret)
    doc = {"file": "link.jsonl", "records": 1, "sha256": hashlib.sha256(data).hexdigest()}
    (drop / "link.jsonl.manifest.json").write_bytes(orjson.dumps(doc))
    await wait_failed(drop, "link.jsonl")
    assert failed_code(drop, "link.jsonl") == "E_PATH"
    assert (await hub.store.counts())["messages"] == 0
    assert (drop / "failed" / "link.jsonl").is_symlink()  # the link moved, not its target
    assert secret.read_bytes() == data


async def test_formula_injection_is_stored_as_text_and_escaped_outbound(tmp_path: Path) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    rec = sample_inspection(3)
    rec["inspection_name"] = "=cmd|' /C calc'!A0"
    rec["supervised_object"] = "+1+1"
    rec["business_address"] = "-2+3"
    rec["registered_address"] = "@SUM(1,2)"
    doc = put_file(drop, "f.csv", csv_bytes([rec], "utf-8"), 1)
    targets = {"archive": {"transport": "file_batch", "directory": str(out), "format": "csv"}}
    cfg = hub_config(tmp_path, drop, targets, json_columns=["inspectors"])
    async with Hub(cfg) as hub:
        await wait_until(settled(drop, "f.csv"), what="csv taken")
        got = await stored(hub, f"sha256:{doc['sha256']}:1")
        assert got["inspection_name"] == "=cmd|' /C calc'!A0"
        assert got["supervised_object"] == "+1+1"
        assert got["registered_address"] == "@SUM(1,2)"
        await wait_until(lambda: any(out.glob("*.csv.manifest.json")), what="file written")
    [written] = list(out.glob("*.csv"))
    rows = list(csv.DictReader(io.StringIO(written.read_text("utf-8"), newline="")))
    assert rows[0]["inspection_name"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["supervised_object"] == "'+1+1"
    assert rows[0]["business_address"] == "'-2+3"
    assert rows[0]["registered_address"] == "'@SUM(1,2)"
    assert rows[0]["counterpart_name"] == rec["counterpart_name"]


async def test_gbk_bytes_declared_utf8_fail_with_e_encoding(running: tuple[Hub, Path]) -> None:
    hub, drop = running
    put_file(drop, "g.csv", csv_bytes([sample_inspection(1)], "gbk"), 1, encoding="utf-8")
    await wait_failed(drop, "g.csv")
    assert failed_code(drop, "g.csv") == "E_ENCODING"
    assert (drop / "failed" / "g.csv").exists() and (
        drop / "failed" / "g.csv.manifest.json"
    ).exists()
    assert (await hub.store.counts())["messages"] == 0


async def test_a_file_over_the_limit_fails_with_e_too_large(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    put_file(drop, "big.jsonl", jsonl([sample_inspection(i) for i in range(3)]), 3)
    async with Hub(hub_config(tmp_path, drop, max_file_bytes=1000)) as hub:
        await wait_failed(drop, "big.jsonl")
        assert (await hub.store.counts())["messages"] == 0
    assert failed_code(drop, "big.jsonl") == "E_TOO_LARGE"


async def test_an_empty_file_fails_with_e_empty(running: tuple[Hub, Path]) -> None:
    hub, drop = running
    put_file(drop, "e.jsonl", b"", 0)
    put_file(drop, "h.csv", ",".join(FLAT).encode() + b"\r\n", 0)
    await wait_failed(drop, "e.jsonl")
    await wait_failed(drop, "h.csv")
    assert failed_code(drop, "e.jsonl") == "E_EMPTY"
    assert failed_code(drop, "h.csv") == "E_EMPTY"  # a header and no rows
    assert (await hub.store.counts())["messages"] == 0


async def test_bad_manifests_fail_with_e_manifest(running: tuple[Hub, Path]) -> None:
    hub, drop = running
    data = jsonl([sample_inspection(i) for i in range(2)])
    (drop / "n.jsonl").write_bytes(data)
    (drop / "n.jsonl.manifest.json").write_bytes(b"{not json")
    put_file(drop, "count.jsonl", data, 3)
    put_file(drop, "digest.jsonl", data, 2, sha256="ab" * 32)
    (drop / "lonely.jsonl.manifest.json").write_bytes(
        orjson.dumps({"file": "lonely.jsonl", "records": 1, "sha256": "cd" * 32})
    )
    for name in ("n.jsonl", "count.jsonl", "digest.jsonl", "lonely.jsonl"):
        await wait_failed(drop, name)
        assert failed_code(drop, name) == "E_MANIFEST", name
    err = orjson.loads((drop / "failed" / "count.jsonl.error.json").read_bytes())
    assert err["field"] == "records" and "holds 2 records" in err["message"]
    assert (await hub.store.counts())["messages"] == 0


async def test_xml_with_a_dtd_is_refused(running: tuple[Hub, Path], tmp_path: Path) -> None:
    hub, drop = running
    (tmp_path / "secret.txt").write_text("top secret")
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{tmp_path}/secret.txt">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<r><record><inspection_name>&x;&b;</inspection_name></record></r>"
    ).encode()
    put_file(drop, "d.xml", xml, 1)
    await wait_failed(drop, "d.xml")
    assert failed_code(drop, "d.xml") == "E_FILE_FORMAT"
    assert (await hub.store.counts())["messages"] == 0


def test_parsing_keeps_cells_as_text_and_reports_broken_files() -> None:
    opts = FileBatchSourceOptions(directory=Path("/nonexistent"))
    rows = parse_batch(
        b'a,b\r\n=1+1,"x,y"\r\n', name="p.csv", fmt="csv", encoding="utf-8", options=opts
    )
    assert rows == [{"a": "=1+1", "b": "x,y"}]
    with pytest.raises(Exception, match="E_FILE_FORMAT"):
        parse_batch(b"a,b\r\n1,2,3\r\n", name="p.csv", fmt="csv", encoding="utf-8", options=opts)
    with pytest.raises(Exception, match="E_FILE_FORMAT"):
        parse_batch(b"<r><record>", name="p.xml", fmt="xml", encoding="utf-8", options=opts)


# --------------------------------------------------------------------------- outbound


def item(i: int, body: dict[str, Any] | None = None) -> OutboundItem:
    return OutboundItem(i, f"msg-{i:04d}", "inspection", body or sample_inspection(i), 1)


async def test_outbound_writes_file_then_manifest_and_a_retry_rewrites_the_same_file(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    t = FileBatchTransport("archive", FileBatchOutOptions(directory=out, batch_size=10))
    await t.start()
    batch = [item(i) for i in range(3)]
    first = await t.send(batch)
    assert all(r.ok for r in first)
    again = await t.send(batch)  # the dispatcher retries after a lost answer
    assert [r.receipt for r in again] == [r.receipt for r in first]
    names = sorted(p.name for p in out.iterdir())
    assert names == [first[0].receipt, f"{first[0].receipt}.manifest.json"]
    data = (out / str(first[0].receipt)).read_bytes()
    manifest = orjson.loads((out / f"{first[0].receipt}.manifest.json").read_bytes())
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() and manifest["records"] == 3
    lines = [orjson.loads(x) for x in data.splitlines()]
    assert [x["_message_id"] for x in lines] == ["msg-0000", "msg-0001", "msg-0002"]
    assert lines[1]["inspection_no"] == sample_inspection(1)["inspection_no"]
    # what we write, the inbound side of another hub takes (same manifest format)
    opts = FileBatchSourceOptions(directory=out)
    parsed = parse_batch(data, name="x", fmt="jsonl", encoding="utf-8", options=opts)
    assert len(parsed) == 3
    await t.close()


async def test_outbound_gbk_csv_fails_only_the_record_gbk_cannot_hold(tmp_path: Path) -> None:
    out = tmp_path / "out"
    opts = FileBatchOutOptions(
        directory=out, format="csv", encoding="gbk", columns=["inspection_no", "counterpart_name"]
    )
    t = FileBatchTransport("dept-gbk", opts)
    await t.start()
    bad = sample_inspection(2)
    bad["counterpart_name"] = "餐饮店 \U0001f600"  # an emoji: no GBK code for it
    res = await t.send([item(1), item(2, bad)])
    assert res[0].ok and not res[1].ok and res[1].permanent and "gbk" in res[1].detail
    [written] = list(out.glob("*.csv"))
    text = written.read_bytes().decode("gbk")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["_message_id", "_dataset", "inspection_no", "counterpart_name"]
    assert rows[1][0] == "msg-0001" and rows[1][3] == sample_inspection(1)["counterpart_name"]
    assert len(rows) == 2
    manifest = orjson.loads(written.with_name(written.name + ".manifest.json").read_bytes())
    assert manifest["encoding"] == "gbk" and manifest["records"] == 1


async def test_outbound_unwritable_folder_is_a_transient_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    t = FileBatchTransport("archive", FileBatchOutOptions(directory=out))
    await t.start()
    out.rmdir()
    out.write_text("a file where the folder was")
    [res] = await t.send([item(1)])
    assert not res.ok and not res.permanent and "cannot write" in res.detail


async def test_a_manifest_naming_a_dataset_the_system_may_not_send_fails_the_file(
    running: tuple[Hub, Path],
) -> None:
    hub, drop = running
    put_file(drop, "u.jsonl", jsonl([sample_inspection(1)]), 1, dataset="penalty")
    await wait_failed(drop, "u.jsonl")
    assert failed_code(drop, "u.jsonl") == "E_UNKNOWN_DATASET"
    assert (await hub.store.counts())["messages"] == 0
