"""The example configuration under ``examples/`` is valid and its samples pass: every file
passes ``jghub check``, every sample folder passes ``--samples``, a broken copy of a sample
fails naming the exact field, and the investment platform's approvals are routed to the
departments in their ``supervising_departments`` list (route filter ``contains``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner, Result

from hub.cli import app
from hub.config import load_config
from hub.errors import ConfigError
from hub.runtime import Hub
from hub.store.memory import MemoryStore

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HUB = EXAMPLES / "hub.yaml"
SYSTEMS = sorted((EXAMPLES / "systems").glob("*.yaml"))
SAMPLED = sorted(p.name for p in (EXAMPLES / "samples").iterdir() if p.is_dir())


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_the_examples_cover_every_access_method() -> None:
    kinds = {}
    for f in SYSTEMS:
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        inbound = doc.get("inbound") or {}
        source = (inbound.get("source") or {}).get("kind")
        kinds[doc["name"]] = (
            doc.get("adapter"),
            source,
            (doc.get("outbound") or {}).get("transport"),
        )
    assert kinds["dept-scjg"] == ("json", None, "http_json")
    assert kinds["dept-zjj"] == ("soap", None, "soap_xml")
    assert kinds["dept-wjw"][1] == "db_staging"
    assert kinds["dept-yjj"][1] == "file_batch"
    assert kinds["tzxm"][0] == "json" and kinds["national"][2] == "http_json"
    # every system that sends records has samples
    assert set(SAMPLED) == {"dept-scjg", "dept-zjj", "dept-wjw", "dept-yjj", "tzxm"}


def test_hub_file_and_every_system_file_pass_check() -> None:
    r = run("check", HUB, *SYSTEMS, "-c", HUB)
    assert r.exit_code == 0, r.output
    assert r.output.count("ok   ") == 1 + len(SYSTEMS)
    cfg = load_config(HUB)
    assert len(cfg.loaded_systems) == len(SYSTEMS) == 7
    assert {r.name for r in cfg.routes} >= {"scjg-inspections", "approvals-zjj", "approvals-scjg"}


@pytest.mark.parametrize("system", SAMPLED)
def test_every_sample_folder_passes(system: str) -> None:
    samples = EXAMPLES / "samples" / system
    r = run("check", EXAMPLES / "systems" / f"{system}.yaml", "--samples", samples, "-c", HUB)
    assert r.exit_code == 0, r.output
    last = r.output.strip().splitlines()[-1]
    n = int(last.split()[0])
    assert n >= 2 and last == f"{n} of {n} sample records ok", r.output
    assert "FAIL" not in r.output


def test_samples_map_to_the_canonical_records() -> None:
    r = run(
        "check",
        EXAMPLES / "systems" / "dept-scjg.yaml",
        "--samples",
        EXAMPLES / "samples" / "dept-scjg",
        "-c",
        HUB,
        "--json",
    )
    assert r.exit_code == 0, r.output
    doc = orjson.loads(r.output.split("\n", 1)[1])
    rec = doc["records"][-1]["canonical"]  # one-record.json: sample_inspection(1)
    assert rec["inspection_no"] == "JC3301022024030100000001"
    assert rec["inspection_time"] == "2024-03-01T09:01:00+08:00"  # from 20240301090100
    assert rec["counterpart_code"] == rec["counterpart_code"].upper()  # sent in lower case
    assert rec["counterpart_nature"] == "3" and rec["region_code"] == "330102"
    assert "nbbz" not in rec  # its internal field is dropped
    r = run(
        "check",
        EXAMPLES / "systems" / "tzxm.yaml",
        "--samples",
        EXAMPLES / "samples" / "tzxm",
        "-c",
        HUB,
        "--json",
    )
    approval = orjson.loads(r.output.split("\n", 1)[1])["records"][0]["canonical"]
    assert approval["supervising_departments"] == ["市住房和城乡建设局", "市市场监督管理局"]
    assert approval["approval_date"] == "2024-03-01" and approval["approval_result"] == "returned"
    assert approval["total_investment"] == "1200.00"


def _copy(system: str, tmp: Path) -> Path:
    dest = tmp / system
    shutil.copytree(EXAMPLES / "samples" / system, dest)
    return dest


def _check(system: str, samples: Path) -> Result:
    return run("check", EXAMPLES / "systems" / f"{system}.yaml", "--samples", samples, "-c", HUB)


def test_a_broken_json_sample_fails_naming_the_field(tmp_path: Path) -> None:
    samples = _copy("dept-scjg", tmp_path)
    path = samples / "one-record.json"
    rec = orjson.loads(path.read_bytes())
    rec["jcjg"] = "Z"  # a result letter its code table lacks
    path.write_bytes(orjson.dumps(rec))
    r = _check("dept-scjg", samples)
    assert r.exit_code == 1
    [line] = [x for x in r.output.splitlines() if x.startswith("FAIL")]
    assert "one-record.json #0" in line
    assert "E_MAPPING [inspection_result]" in line and "'Z'" in line
    assert "3 of 4 sample records ok" in r.output


def test_a_broken_staging_row_fails_naming_the_field(tmp_path: Path) -> None:
    samples = _copy("dept-wjw", tmp_path)
    path = samples / "jcxw_out-rows.json"
    rows = orjson.loads(path.read_bytes())
    rows[1]["XZQH"] = "3301"  # not a 6-digit 行政区划代码
    path.write_bytes(orjson.dumps(rows))
    r = _check("dept-wjw", samples)
    assert r.exit_code == 1
    [line] = [x for x in r.output.splitlines() if x.startswith("FAIL")]
    assert "jcxw_out-rows.json #1" in line and "E_SCHEMA [region_code]" in line


def test_a_batch_file_that_does_not_match_its_manifest_fails_whole(tmp_path: Path) -> None:
    samples = _copy("dept-yjj", tmp_path)
    data = samples / "20240301.csv"
    data.write_bytes(
        data.read_bytes().replace("未发现问题".encode("gbk"), "责令整改".encode("gbk"), 1)
    )
    r = _check("dept-yjj", samples)
    assert r.exit_code == 1
    line = next(x for x in r.output.splitlines() if x.startswith("FAIL"))
    assert "E_MANIFEST [sha256]" in line
    # without its manifest the file is read as the options say (GBK), and checked by record
    (samples / "20240301.csv.manifest.json").unlink()
    (samples / "20240301.csv").write_bytes(
        data.read_bytes().replace("未发现问题".encode("gbk"), "待定".encode("gbk"), 1)
    )
    r = _check("dept-yjj", samples)
    assert r.exit_code == 1
    [line] = [x for x in r.output.splitlines() if x.startswith("FAIL")]
    assert "20240301.csv #1" in line and "E_MAPPING [inspection_result]" in line


def test_a_broken_soap_sample_fails_naming_the_field(tmp_path: Path) -> None:
    samples = _copy("dept-zjj", tmp_path)
    path = samples / "submit-jcxx.xml"
    path.write_bytes(path.read_bytes().replace(b"<XZQH>330105</XZQH>", b"<XZQH>99</XZQH>", 1))
    r = _check("dept-zjj", samples)
    assert r.exit_code == 1
    [line] = [x for x in r.output.splitlines() if x.startswith("FAIL")]
    assert "submit-jcxx.xml #0" in line and "E_SCHEMA [region_code]" in line


async def test_approvals_reach_the_departments_in_their_supervising_list() -> None:
    from hub.demo import tzxm_record

    hub = Hub(load_config(HUB), store=MemoryStore())
    await hub.store.open()
    recs = [tzxm_record(i) for i in range(4)]  # ZJ01;SC01 / ZJ01 / SC01;YJ01 / ZJ01;ZR01
    res = await hub.ingest_records("tzxm", recs)
    assert not res.errors and len(res.ids) == 4
    routed = []
    for mid in res.ids:
        tr = await hub.store.trace(mid)
        assert tr is not None
        routed.append(sorted(d.target for d in tr.deliveries))
    assert routed == [
        ["archive", "dept-scjg", "dept-zjj"],
        ["archive", "dept-zjj"],
        ["archive", "dept-scjg"],
        ["archive", "dept-zjj"],
    ]


def test_a_filter_rule_takes_exactly_one_test(tmp_path: Path) -> None:
    doc = yaml.safe_load(HUB.read_text(encoding="utf-8"))
    doc["routes"][-1]["filter"] = [
        {"field": "supervising_departments", "contains": "x", "equals": "y"}
    ]
    for entry in ("systems", "datasets"):
        shutil.copytree(EXAMPLES / entry, tmp_path / entry)
    (tmp_path / "hub.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "hub.yaml")
    assert "routes[6].filter[0]" in e.value.message
    assert "exactly one of equals, in, not_in, exists, contains" in e.value.message


def test_a_mapping_typo_fails_check_of_the_system_file_alone(tmp_path: Path) -> None:
    text = (EXAMPLES / "systems" / "tzxm.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "tzxm.yaml"
    bad.write_text(text.replace("formats: [yyyyMMdd]", "format: [yyyyMMdd]"), encoding="utf-8")
    r = run("check", bad, "-c", HUB)
    assert r.exit_code == 1
    line = next(x for x in r.output.splitlines() if x.startswith("FAIL"))
    assert "E_CONFIG" in line and "mapping.inbound.project_approval.rules[8].format" in line
    assert "(field approval_date)" in line and "unknown rule key 'format'" in line
