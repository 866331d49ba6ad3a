"""``jghub demo``: the hub on the **examples** configuration, with simulated peers and a real
scenario through every example system.

The files under ``examples/`` (hub file, systems, datasets, samples) are copied into the work
folder and loaded unchanged; the simulators' addresses, folders and tokens reach them through
the ``${VAR:-default}`` variables they use. All peers are real servers, files and databases on
127.0.0.1:

* ``dept-scjg`` 市场监管局 — pushes 监管行为·行政检查 in its own schema over HTTP JSON, one by
  one and in NDJSON batches, with Idempotency-Keys; a few records are invalid (rejected with
  reasons, kept in the quarantine); a batch is re-sent; a corrected version replaces a record;
* ``dept-zjj`` 住建局 — calls the hub's WebService (SOAP 1.1 and 1.2), re-sends one call;
  it also runs its own WebService (``SoapService``) that receives approvals over ``soap_xml``;
* ``dept-wjw`` 卫健委 — rows in its 前置库 staging table (SQLite), taken by ``db_staging``;
* ``dept-yjj`` 应急管理局 — drops a GBK CSV batch file with its manifest, taken whole;
* ``tzxm`` 投资项目在线审批监管平台 — pushes project approvals (a dataset declared in YAML),
  routed to the supervising departments;
* ``national`` — a national receiver: 503s now and then, lost replies, goes down for 3 s (the
  circuit breaker opens and probes), refuses one region (dead letters the operator replays);
* ``archive`` — the provincial archive taking batches of 200;
* the national 互联网+监管 system behind the national connector (``adapters/national``) and
  its simulator, in a hub of its own (``<workdir>/national``): the catalog pushed in order, 监管行为
  uploaded in batches, a risk warning issued, pushed, routed to the responsible department,
  acknowledged and answered, and a clean 对账 (``run_national_flow``).

The summary shows per route and target what was accepted, delivered, retried and
dead-lettered, per source what was accepted, rejected and recognised as a duplicate, the
quarantine's first reasons, an exactly-once check at every target, and one message's trace.
The exit code is 1 when an acknowledged record did not reach every target it was routed to,
or when a platform flow (national connector, provincial platforms) did not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import logging
import os
import secrets
import shutil
import signal
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from lxml import etree

from contracts.samples import make_uscc, sample_inspection
from hub.api import create_app
from hub.config import load_config
from hub.events import AcceptedMessage, DeliveryEvent
from hub.fastpath import FastAppRunner
from hub.peers import bound_port
from hub.peers.department import DepartmentSource
from hub.peers.sink import Sink, SinkBehaviour
from hub.peers.soap_service import SoapService
from hub.plugins import hookimpl
from hub.runtime import Hub
from hub.traceview import render_trace, trace_to_dict
from hub.transports.soap_xml import build_envelope

__all__ = [
    "EXAMPLES",
    "WJW_COLUMNS",
    "YJJ_COLUMNS",
    "run_demo",
    "scjg_record",
    "tzxm_record",
    "wjw_row",
    "yjj_csv",
    "yjj_manifest",
    "yjj_row",
    "zjj_envelope",
    "zjj_record",
]

#: the example configuration the demo runs (``JGHUB_EXAMPLES`` points elsewhere)
EXAMPLES = Path(
    os.environ.get("JGHUB_EXAMPLES", Path(__file__).resolve().parent.parent / "examples")
)

UNKNOWN_REGION = "330106"  # 西湖区: national's code table lacks it until the operator fixes it
ZJJ_NS = "urn:jghub:dept-zjj:jcxx"  # the hub's WebService for dept-zjj (dept-zjj.yaml)
ZJJ_WS_USER = "jghub"


class _Observer:
    """Observer plugin (hooks in action): what was accepted from which source and routed to
    which targets, and per (route, target) what was retried and dead-lettered."""

    def __init__(self) -> None:
        self.routed: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.accepted: dict[str, int] = {}
        self.duplicates: dict[str, int] = {}
        self.retried: dict[tuple[str, str], int] = {}
        self.dead: dict[tuple[str, str], int] = {}
        self.retried_ids: list[str] = []

    @hookimpl
    def hub_messages_accepted(self, messages: Sequence[AcceptedMessage]) -> None:
        for m in messages:
            if m.duplicate:
                self.duplicates[m.source] = self.duplicates.get(m.source, 0) + 1
                continue
            self.accepted[m.source] = self.accepted.get(m.source, 0) + 1
            self.routed[m.message_id] = (m.source, m.targets)

    @hookimpl
    def hub_delivery_retried(self, event: DeliveryEvent, next_attempt_at: float) -> None:
        key = (event.route, event.target)
        self.retried[key] = self.retried.get(key, 0) + 1
        self.retried_ids.append(event.message_id)

    @hookimpl
    def hub_delivery_dead_lettered(self, event: DeliveryEvent, reason: str) -> None:
        key = (event.route, event.target)
        self.dead[key] = self.dead.get(key, 0) + 1


# --------------------------------------------------------------------------- department data
# Each department's records in its own schema, built from the canonical samples so every
# valid one maps back to a valid canonical record (the sample files under examples/samples
# were written by these functions).

_NATURE = {"1": "法人及非法人组织", "2": "自然人", "3": "个体工商户"}
_FORM = {"1": "现场检查", "2": "书面检查", "3": "远程检查", "9": "其他"}
_CATEGORY = {
    "1": "日常检查",
    "2": "专项检查",
    "3": "双随机抽查",
    "4": "重点检查",
    "5": "投诉举报核查",
    "9": "其他",
}


def _ts(iso: str, fmt: str) -> str:
    return datetime.fromisoformat(iso).strftime(fmt)


def scjg_record(i: int, region: str = "330102") -> dict[str, Any]:
    """监管行为·行政检查 as 市场监管局's system sends it (see examples/systems/dept-scjg.yaml)."""
    c = sample_inspection(i, region=region)
    rec: dict[str, Any] = {
        "sxbm": c["catalog_code"],
        "ssqdbm": c["implementation_code"],
        "jcxwmc": c["inspection_name"] + " ",  # trailing space: cleaning trims it
        "jcxwbh": c["inspection_no"],
        "jgdx": c["supervised_object"],
        "xdrmc": c["counterpart_name"],
        "xdrxz": _NATURE[c["counterpart_nature"]],
        "zjlx": {"001": "统一社会信用代码", "111": "身份证"}[c["counterpart_cert_type"]],
        "xdrbm": c["counterpart_code"].lower(),  # its system writes lower case: mapped upper
        "xzqh": int(c["region_code"]),
        "jcxs": _FORM[c["inspection_form"]],
        "jclb": _CATEGORY[c["inspection_category"]],
        "jcjg": "ABCDE"[int(c["inspection_result"]) - 1],
        "jcsj": _ts(c["inspection_time"], "%Y%m%d%H%M%S"),
        "bssj": _ts(c["submitted_at"], "%Y%m%d%H%M%S"),
        "jcry": [{"xm": p["name"], "zfzh": p["law_enforcement_cert_no"]} for p in c["inspectors"]],
        "ssjg": c["implementing_body"],
        "ssjgdm": c["implementing_body_code"],
        "jydz": c["business_address"],
        "bsr": c["submitter"],
        "nbbz": "内部备注",  # an internal field: dropped by the mapping
    }
    if "random_plan_id" in c:
        rec["sjjhbh"] = c["random_plan_id"]
    return rec


def zjj_record(i: int) -> dict[str, Any]:
    """An inspection as 住建局's system writes one ``<jcxx>`` (dept-zjj.yaml)."""
    c = sample_inspection(i, region="330105")
    words = {"1": "合格", "2": "限期整改", "3": "立案查处", "4": "无法检查", "5": "其他"}
    return {
        "SXBM": c["catalog_code"],
        "SSQDBM": c["implementation_code"],
        "JCMC": c["inspection_name"],
        "JCBH": c["inspection_no"],
        "JGDX": c["supervised_object"],
        "XDRMC": c["counterpart_name"],
        "XDRXZ": c["counterpart_nature"],
        "ZJLX": c["counterpart_cert_type"],
        "ZJHM": c["counterpart_code"],
        "XZQH": c["region_code"],
        "JCXS": c["inspection_form"],
        "JCLB": c["inspection_category"],
        "JCJG": words[c["inspection_result"]],
        "JCSJ": _ts(c["inspection_time"], "%Y-%m-%d %H:%M:%S"),
        "BSSJ": _ts(c["submitted_at"], "%Y-%m-%d %H:%M:%S"),
        "JCRY": [{"XM": p["name"], "ZFZH": p["law_enforcement_cert_no"]} for p in c["inspectors"]],
        "SSJG": c["implementing_body"],
        "SSJGDM": c["implementing_body_code"],
    }


def zjj_envelope(records: Sequence[dict[str, Any]], version: str = "1.1") -> bytes:
    """A ``SubmitJcxx`` call carrying ``records`` as ``<jcxx>`` elements."""
    body = {"SubmitJcxx": {"@xmlns": ZJJ_NS, "jcxx": list(records)}}
    return build_envelope("1.1" if version == "1.1" else "1.2", body)


WJW_COLUMNS = [
    "SXBM",
    "SSQDBM",
    "JCMC",
    "JCBH",
    "JGDX",
    "XDRMC",
    "XDRXZ",
    "ZJLX",
    "ZJHM",
    "XZQH",
    "JCXS",
    "JCLB",
    "JCJG",
    "JCSJ",
    "BSSJ",
    "JCRY",
    "SSJG",
    "SSJGDM",
]


def wjw_row(i: int) -> dict[str, Any]:
    """A row of 卫健委's staging table JCXW_OUT (dept-wjw.yaml), without ID and ZT."""
    z = zjj_record(i)
    c = sample_inspection(i, region="330105")
    row = {k: z[k] for k in WJW_COLUMNS if k in z}
    row["XDRXZ"] = int(c["counterpart_nature"])  # an INTEGER column
    row["JCJG"] = c["inspection_result"]
    row["JCRY"] = orjson.dumps(c["inspectors"]).decode()
    return row


YJJ_COLUMNS = [
    "监管事项目录编码",
    "检查实施清单编码",
    "检查行为名称",
    "检查行为编号",
    "监管对象",
    "行政相对人",
    "相对人性质",
    "证件类型",
    "相对人编码",
    "行政区划代码",
    "检查形式",
    "检查类别",
    "检查结果",
    "检查时间",
    "检查人员",
    "实施机构",
]


def yjj_row(i: int) -> dict[str, str]:
    """A row of 应急管理局's daily CSV export (dept-yjj.yaml)."""
    c = sample_inspection(i, region="330110")
    words = {"1": "未发现问题", "2": "责令整改", "3": "立案查处", "4": "无法联系", "5": "其他"}
    people = [
        {"姓名": p["name"], "执法证号": p["law_enforcement_cert_no"]} for p in c["inspectors"]
    ]
    values = [
        c["catalog_code"],
        c["implementation_code"],
        c["inspection_name"],
        c["inspection_no"],
        c["supervised_object"],
        c["counterpart_name"],
        _NATURE[c["counterpart_nature"]],
        {"001": "统一社会信用代码", "111": "居民身份证"}[c["counterpart_cert_type"]],
        c["counterpart_code"],
        c["region_code"],
        c["inspection_form"],
        c["inspection_category"],
        words[c["inspection_result"]],
        _ts(c["inspection_time"], "%Y/%m/%d %H:%M"),
        orjson.dumps(people).decode(),
        c["implementing_body"],
    ]
    return dict(zip(YJJ_COLUMNS, values, strict=True))


def yjj_csv(rows: Sequence[dict[str, str]]) -> bytes:
    """The CSV file (GBK, header of Chinese column names)."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=YJJ_COLUMNS, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode("gbk")


def yjj_manifest(name: str, data: bytes, records: int) -> bytes:
    """``<file>.manifest.json`` for a batch file."""
    doc = {
        "file": name,
        "records": records,
        "sha256": hashlib.sha256(data).hexdigest(),
        "encoding": "gbk",
        "dataset": "inspection",
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


_TZXM_REGIONS = ("330102", "330105", "330106", "330110")
_TZXM_ITEMS = ("建设项目用地预审与选址意见书", "企业投资项目核准", "建筑工程施工许可", "节能审查")
_TZXM_DEPTS = ("ZJ01;SC01", "ZJ01", "SC01;YJ01", "ZJ01;ZR01")


def tzxm_record(i: int) -> dict[str, Any]:
    """A project approval as the investment project platform sends it (tzxm.yaml)."""
    region = _TZXM_REGIONS[i % len(_TZXM_REGIONS)]
    return {
        "xmdm": f"2024-{region}-{44 + i % 5:02d}-0{1 + i % 3}-{i:06d}",
        "xmmc": f"示例产业园{i}号厂房建设项目",
        "xmdwmc": f"样例实业有限公司{i}",
        "xmdwdm": make_uscc("91", region, 5000 + i),
        "jsdd": int(region),
        "spsxmc": _TZXM_ITEMS[i % len(_TZXM_ITEMS)],
        "pfwh": f"杭发改审〔2024〕{i + 1}号",
        "spjg": "1" if i % 7 else "3",
        "pfrq": f"202403{1 + i % 28:02d}",
        "spbm": "市发展和改革委员会",
        "jgbm": _TZXM_DEPTS[i % len(_TZXM_DEPTS)],
        "ztz": f"{1200 + i * 37.5:.1f}",
        "lxdh": f"1385710{i % 10000:04d}",
    }


# --------------------------------------------------------------------------- the scenario


def _inspections(n: int) -> list[dict[str, Any]]:
    """dept-scjg's records; a few carry the mistakes real departments make."""
    recs = []
    for i in range(n):
        region = UNKNOWN_REGION if i % 150 == 7 else ("330102", "330105", "330110")[i % 3]
        rec = scjg_record(i, region=region)
        if i % 1000 == 550:  # a broken 统一社会信用代码 / 身份证号 check character
            code = rec["xdrbm"]
            rec["xdrbm"] = code[:-1] + ("0" if code[-1] != "0" else "1")
        elif i % 1000 == 580:  # a result letter the code table does not know
            rec["jcjg"] = "F"
        elif i % 1000 == 590:  # 13th month
            rec["jcsj"] = "20241301090000"
        recs.append(rec)
    return recs


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _copy_examples(work: Path) -> Path:
    if not (EXAMPLES / "hub.yaml").is_file():
        raise FileNotFoundError(
            f"the example configuration is not at {EXAMPLES}; set JGHUB_EXAMPLES to the "
            "examples/ folder of a jghub checkout"
        )
    for entry in ("systems", "datasets", "samples"):
        if (work / entry).exists():
            shutil.rmtree(work / entry)
        if (EXAMPLES / entry).is_dir():
            shutil.copytree(EXAMPLES / entry, work / entry)
    shutil.copy2(EXAMPLES / "hub.yaml", work / "hub.yaml")
    return work / "hub.yaml"


def _staging_db(path: Path) -> None:
    """The 前置库 table as 卫健委 created it (empty at first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        cols = ", ".join(f"{c} {'INTEGER' if c == 'XDRXZ' else 'TEXT'}" for c in WJW_COLUMNS)
        db.execute(
            f"CREATE TABLE JCXW_OUT (ID INTEGER PRIMARY KEY, {cols}, ZT TEXT NOT NULL DEFAULT 'N')"
        )
        db.commit()


def _insert_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        for row in rows:
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            db.execute(f"INSERT INTO JCXW_OUT ({names}) VALUES ({marks})", list(row.values()))
        db.commit()


def _staging_status(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT ZT, COUNT(*) FROM JCXW_OUT GROUP BY ZT").fetchall())


class _Peers:
    """Every simulator of the scenario, started and stopped together."""

    def __init__(self) -> None:
        self.national = Sink(
            "national",
            SinkBehaviour(
                fail_rate=0.08, lost_reply_rate=0.02, latency=0.002, seed=2026, reject=_region_rule
            ),
        )
        self.archive = Sink("archive", SinkBehaviour(seed=1))
        self.scjg_inbox = Sink("dept-scjg", SinkBehaviour(seed=3))
        self.zjj_service = SoapService(
            name="dept-zjj", username=ZJJ_WS_USER, password=secrets.token_urlsafe(12)
        )

    async def start(self) -> None:
        for s in (self.national, self.archive, self.scjg_inbox):
            await s.start()
        await self.zjj_service.start()

    async def stop(self) -> None:
        for s in (self.national, self.archive, self.scjg_inbox):
            await s.stop()
        await self.zjj_service.stop()

    def applied(self, target: str) -> set[str]:
        """Message ids the target system applied (each exactly once: they de-duplicate)."""
        if target == "dept-zjj":
            return set(self.zjj_service.received)
        sink = {"national": self.national, "archive": self.archive, "dept-scjg": self.scjg_inbox}
        return set(sink[target].applied)

    def redeliveries(self, target: str) -> int:
        if target == "dept-zjj":
            return self.zjj_service.redeliveries
        sink = {"national": self.national, "archive": self.archive, "dept-scjg": self.scjg_inbox}
        return sink[target].redeliveries


def _environment(work: Path, peers: _Peers, port: int) -> dict[str, str]:
    """The variables examples/*.yaml read: simulators' addresses, folders, tokens."""
    env = {
        "JGHUB_PORT": str(port),
        "NATIONAL_URL": peers.national.url,
        "ARCHIVE_URL": peers.archive.batch_url,
        "DEPT_SCJG_INBOX_URL": peers.scjg_inbox.url,
        "DEPT_ZJJ_WSDL": peers.zjj_service.wsdl_url,
        "DEPT_ZJJ_WS_PASSWORD": peers.zjj_service.password or "",
        "DEPT_WJW_STAGING_URL": "sqlite://" + str(work / "data" / "staging" / "dept-wjw.db"),
        "DEPT_YJJ_DROP": str(work / "data" / "drop" / "dept-yjj"),
    }
    for name in ("DEPT_SCJG_TOKEN", "DEPT_ZJJ_TOKEN", "TZXM_TOKEN"):
        env[name] = os.environ.get(name) or secrets.token_urlsafe(16)
    os.environ.update(env)
    return env


async def run_demo(*, workdir: Path, records: int, once: bool, port: int = 0) -> int:
    """Run the scenario on the example configuration; 0 when every acknowledged record
    reached every target it was routed to."""
    work = workdir.resolve()
    if (work / "data").exists():
        shutil.rmtree(work / "data")
    work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="      [%(name)s] %(message)s")
    peers = _Peers()
    await peers.start()
    hub_file = _copy_examples(work)
    env = _environment(work, peers, port)
    staging = work / "data" / "staging" / "dept-wjw.db"
    drop = Path(env["DEPT_YJJ_DROP"])
    _staging_db(staging)
    drop.mkdir(parents=True, exist_ok=True)
    cfg = load_config(hub_file)
    observer = _Observer()
    hub = Hub(cfg, extra_plugins=[observer])
    # served as `jghub serve` serves: the fast records path unless the config turns it off
    runner_cls = FastAppRunner if cfg.listen.fast_records else web.AppRunner
    runner = runner_cls(create_app(cfg, hub=hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.listen.host, cfg.listen.port)
    await site.start()
    hub_url = f"http://127.0.0.1:{bound_port(site)}"
    scjg = DepartmentSource("dept-scjg", hub_url, token=env["DEPT_SCJG_TOKEN"])
    tzxm = DepartmentSource("tzxm", hub_url, token=env["TZXM_TOKEN"])
    await scjg.start()
    await tzxm.start()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    _say(f"jghub demo — the examples/ configuration in {work}")
    _say(
        f"hub {hub_url}   national {peers.national.base}   archive {peers.archive.base}   "
        f"dept-zjj WebService {peers.zjj_service.url}"
    )
    t0 = time.perf_counter()
    code = 0
    try:
        data = _inspections(records)
        single = min(len(data) // 3, 1000)
        _say(
            f"[1/9] dept-scjg (HTTP JSON, its own schema) pushes {single} records one by one and "
            f"{len(data) - single} in NDJSON batches of 100 ..."
        )
        outage = asyncio.create_task(_outage(peers.national, scjg, len(data) // 3))
        rate = len(data) / 4.0  # the department pushes over about four seconds
        await asyncio.gather(
            scjg.push(data[:single], concurrency=16, rate=rate * single / len(data)),
            scjg.push(
                data[single:],
                batch_size=100,
                concurrency=4,
                start=single,
                rate=rate * (len(data) - single) / len(data),
            ),
        )
        _say(
            f"      acknowledged {len(scjg.acked)}, rejected {len(scjg.rejected)} with reasons "
            f"(each answer came after the commit; {scjg.resends} resends)"
        )
        for idx, rej in sorted(scjg.rejected.items())[:3]:
            _say(
                f"      rejected record {idx}: {rej.get('code')} {rej.get('field')} — "
                f"{str(rej.get('detail'))[:110]}"
            )
        before = scjg.duplicates
        await scjg.send_batch(single, data[single : single + 100])
        _say(
            f"      the same first batch sent again: the hub recognised {scjg.duplicates - before}"
            " records by their Idempotency-Key and routed nothing twice"
        )
        corrected = {**data[10], "jcjg": "B", "bssj": "20240301235959"}
        answer = await _post_json(
            session, f"{hub_url}/v1/systems/dept-scjg/records", env["DEPT_SCJG_TOKEN"], corrected
        )
        _say(
            f"      a corrected version of record 10 (later 报送时间 bssj): answered "
            f"{'replaced=' + str(answer.get('replaced')) if answer.get('replaced') else answer}"
            " — it replaces the earlier one (governance.dedupe: inspection_no, version "
            "submitted_at) and is delivered again"
        )

        _say("[2/9] dept-zjj (SOAP) calls the hub's WebService ...")
        await _zjj_calls(session, hub_url, env["DEPT_ZJJ_TOKEN"], max(records // 50, 20))

        n_rows = max(records // 15, 20)
        _say(f"[3/9] dept-wjw writes {n_rows} rows into its 前置库 table JCXW_OUT (ZT='N') ...")
        rows = [wjw_row(200_000 + i) for i in range(n_rows)]
        rows[5]["ZJHM"] = rows[5]["ZJHM"][:-1] + ("0" if rows[5]["ZJHM"][-1] != "0" else "1")
        await asyncio.to_thread(_insert_rows, staging, rows)
        st = await _until(
            lambda: _staging_status(staging), lambda s: "N" not in s, "the staging rows taken"
        )
        _say(
            f"      taken: {st.get('Y', 0)} rows marked ZT='Y', {st.get('E', 0)} refused (ZT='E', "
            "reasons in the quarantine)"
        )

        n_file = max(records // 20, 20)
        name = "20240301.csv"
        _say(f"[4/9] dept-yjj drops {name} (GBK CSV, {n_file} records) and its manifest ...")
        file_rows = [yjj_row(300_000 + i) for i in range(n_file)]
        file_rows[3]["检查结果"] = "待定"  # not in its code table
        blob = yjj_csv(file_rows)
        (drop / name).write_bytes(blob)
        (drop / f"{name}.manifest.json").write_bytes(yjj_manifest(name, blob, n_file))
        report_path = drop / "done" / f"{name}.report.json"
        report = await _until(
            lambda: orjson.loads(report_path.read_bytes()) if report_path.exists() else None,
            lambda r: r is not None,
            "the batch file taken",
        )
        _say(
            f"      taken whole: {report['committed']} committed, {len(report['rejected'])} "
            f"rejected (done/{name}.report.json), file and manifest moved to done/"
        )

        n_app = max(records // 75, 16)
        _say(f"[5/9] tzxm (investment project platform) pushes {n_app} project approvals ...")
        approvals = [tzxm_record(i) for i in range(n_app)]
        approvals[2] = {**approvals[2], "jgbm": "ZJ01;XX99"}  # a department code it lacks
        await tzxm.push(approvals, batch_size=10, concurrency=2)
        taken = [a for i, a in enumerate(approvals) if i in tzxm.acked]
        zjj_n = sum("ZJ01" in a["jgbm"] for a in taken)
        scjg_n = sum("SC01" in a["jgbm"] for a in taken)
        _say(
            f"      acknowledged {len(tzxm.acked)}, rejected {len(tzxm.rejected)}; of those "
            f"acknowledged 住建局 supervises {zjj_n}, 市场监管局 {scjg_n} "
            "(routes approvals-zjj / approvals-scjg)"
        )
        for idx, rej in sorted(tzxm.rejected.items())[:1]:
            _say(
                f"      rejected approval {idx}: {rej.get('code')} {rej.get('field')} — "
                f"{str(rej.get('detail'))[:110]}"
            )

        await outage
        _say(
            "[6/9] national was down for 3 s meanwhile; the circuit breaker opened and probed; "
            "waiting for delivery ..."
        )
        await _wait_settled(hub, timeout=180)
        dead = await hub.store.dead_letters(limit=10_000)
        _say(
            f"[7/9] {len(dead)} dead letters: national refused region {UNKNOWN_REGION}; the "
            "operator updates its code table and replays them (jghub dlq replay --all)"
        )
        if dead:
            _say(f"      e.g. #{dead[0].delivery_id}: {dead[0].reason[:100]}")
        peers.national.behaviour.reject = None
        await hub.store.replay([d.delivery_id for d in dead], time.time())
        hub.dispatcher.wake("national")
        ok = await _wait_settled(hub, timeout=120, replayed=True)
        _say(
            "[8/9] the national 互联网+监管 system and the provincial platforms, each through "
            "its adapter against its simulator in a hub of its own: "
            + ", ".join(label for label, *_ in PLATFORM_FLOWS)
            + " ..."
        )
        flows = []
        for label, module, func, sub, proves in PLATFORM_FLOWS:
            lines, flow_ok = await _platform_flow(module, func, work / sub)
            flows.append((label, proves, lines, flow_ok))
        _say(f"[9/9] done in {time.perf_counter() - t0:.1f} s\n")
        if not await _summary(hub, observer, peers):
            code = 1
        _say("")
        for label, proves, lines, flow_ok in flows:
            for line in lines:
                _say(f"{label}: {line}")
            _say(f"check: {label} ({proves}): {'yes' if flow_ok else 'NO'}")
            _say("")
            if not flow_ok:
                code = 1
        dead_msgs = {d.message_id for d in dead}
        # The most telling life: retried, dead-lettered and replayed; else dead-lettered and
        # replayed; else retried.
        sample = next((m for m in observer.retried_ids if m in dead_msgs), None)
        sample = sample or next(iter(sorted(dead_msgs)), None)
        sample = sample or (observer.retried_ids[0] if observer.retried_ids else None)
        if sample:
            tr = await hub.store.trace(sample)
            if tr is not None:
                _say(
                    "\nThe life of one message (全程留痕), also: jghub trace "
                    f"{sample} -c {hub_file}\n"
                )
                _say(render_trace(trace_to_dict(tr)))
        if not ok:
            _say("\nNOT every acknowledged record was delivered in time.")
            code = 1
        if not once:
            _say(
                f"\nThe hub keeps running at {hub_url} (GET /v1/stats, /v1/messages/ID, "
                f"/v1/dlq, /v1/systems/dept-scjg/quarantine, /readyz). Config: {hub_file}. "
                "Ctrl-C stops it."
            )
            await _until_signal()
    finally:
        await session.close()
        await scjg.stop()
        await tzxm.stop()
        await runner.cleanup()
        await peers.stop()
    return code


#: the platform flows the demo runs after the main scenario, each in a hub of its own:
#: (label, module, function, sub-folder, what the check proves). Each function takes the work
#: folder and returns a report with ``lines()`` and ``ok``.
PLATFORM_FLOWS: list[tuple[str, str, str, str, str]] = [
    (
        "national connector",
        "adapters.national.demo",
        "run_national_flow",
        "national",
        "catalog in order, 监管行为 accepted, warning routed and acknowledged, 对账 clean",
    ),
    (
        "12345 hotline",
        "adapters.12345.demo",
        "run_hotline_flow",
        "12345",
        "an order dispatched to a department and its handling back at 12345, an impossible "
        "transition refused, an overdue order supervised",
    ),
    (
        "public credit",
        "adapters.credit.demo",
        "run_credit_flow",
        "credit",
        "a penalty disclosed to the credit platform with its receipt, a black-list entry at "
        "the departments, a status query and the measure fed back, an overdue disclosure "
        "flagged",
    ),
    (
        "market supervision",
        "adapters.market.demo",
        "run_market_flow",
        "market",
        "an entity renamed at the registry checked by governance, a 双随机 task to a "
        "department and its result back, an 经营异常名录 entry and removal distributed",
    ),
    (
        "public resource trading",
        "adapters.trading.demo",
        "run_trading_flow",
        "trading",
        "project, announcement, bid opening and award result in; the award at the supervising "
        "department in its own schema; an invalid document refused",
    ),
    (
        "data sharing",
        "hub.sharing.demo",
        "run_sharing_flow",
        "sharing",
        "an application accepted (受理) and approved narrowed; only granted fields and rows "
        "queried, downloaded (manifest verified) and pushed masked; an ungranted field, a "
        "revoked grant and a 不予共享 resource refused",
    ),
]


async def _platform_flow(module: str, func: str, work: Path) -> tuple[list[str], bool]:
    """One platform's flow (e.g. ``adapters.national.demo.run_national_flow``) in its own hub
    and folder; (summary lines, whether it all held). A failure is reported, not raised."""
    import importlib

    if work.exists():
        shutil.rmtree(work)
    try:
        run = getattr(importlib.import_module(module), func)
        report = await run(work)
    except Exception as exc:  # the demo reports and exits 1
        return [f"FAILED: {type(exc).__name__}: {exc}"], False
    return report.lines(), bool(report.ok)


async def _post_json(
    session: aiohttp.ClientSession, url: str, token: str, record: dict[str, Any]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": secrets.token_hex(8)}
    async with session.post(url, json=record, headers=headers) as r:
        doc: dict[str, Any] = await r.json()
        return doc


async def _zjj_calls(session: aiohttp.ClientSession, hub_url: str, token: str, n: int) -> None:
    """住建局's client: calls of 10 ``<jcxx>`` records, alternately SOAP 1.1 and 1.2, one
    invalid record, and the first call re-sent (its answer "lost")."""
    url = f"{hub_url}/v1/systems/dept-zjj/records"
    recs = [zjj_record(100_000 + i) for i in range(n)]
    recs[4] = {**recs[4], "XZQH": "99"}  # not a 行政区划代码
    accepted = rejected = dup = 0
    first_reason = ""
    calls = [(k, recs[k : k + 10]) for k in range(0, n, 10)]
    calls.append(calls[0])  # the client did not get the first answer: it calls again
    for j, (k, chunk) in enumerate(calls):
        version = "1.1" if j % 2 == 0 else "1.2"
        action = f"{ZJJ_NS}/SubmitJcxx"
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"zjj-call-{k}"}
        if version == "1.1":
            headers.update({"Content-Type": "text/xml; charset=utf-8", "SOAPAction": action})
        else:
            headers["Content-Type"] = f'application/soap+xml; charset=utf-8; action="{action}"'
        async with session.post(url, data=zjj_envelope(chunk, version), headers=headers) as r:
            doc = etree.fromstring(await r.read())
        ids = doc.xpath("//*[local-name()='result']/*[local-name()='id']/text()")
        dups = doc.xpath("//*[local-name()='result']/*[local-name()='duplicate']/text()")
        rej = doc.xpath("//*[local-name()='rejected']")
        if j == len(calls) - 1:
            dup += sum(d == "true" for d in dups)
            continue
        accepted += len(ids)
        rejected += len(rej)
        for el in rej[:1]:
            first_reason = " ".join(
                el.xpath(f"string(*[local-name()='{t}'])") for t in ("code", "field")
            )
    _say(
        f"      {len(calls) - 1} calls (SOAP 1.1 and 1.2): {accepted} records accepted, "
        f"{rejected} rejected ({first_reason}) in the SOAP answer; the first call re-sent: "
        f"{dup} records recognised by its Idempotency-Key"
    )


def _region_rule(record: dict[str, Any]) -> str | None:
    if record.get("region_code") == UNKNOWN_REGION:
        return f"region_code {UNKNOWN_REGION} is not in our code table"
    return None


async def _outage(sink: Sink, dept: DepartmentSource, after: int) -> None:
    """Take the national receiver down for 3 s once ``after`` records were acknowledged."""
    while len(dept.acked) < after:
        await asyncio.sleep(0.05)
    await sink.go_down()
    await asyncio.sleep(3.0)
    await sink.come_up()


async def _until(read: Any, done: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll ``read()`` (in a thread: it touches files) until ``done(value)``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(read)
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _wait_settled(hub: Hub, timeout: float, replayed: bool = False) -> bool:
    """Wait until nothing is pending (all delivered, or dead when not yet replayed)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        c = await hub.store.counts()
        open_ = c["pending"] + c["inflight"]
        if open_ == 0 and (not replayed or c["dead"] == 0):
            return True
        if c["delivered"] // 1000 != last:
            last = c["delivered"] // 1000
            _say(f"      delivered {c['delivered']:,}  pending {open_:,}  dead {c['dead']}")
        await asyncio.sleep(0.2)
    return False


async def _summary(hub: Hub, observer: _Observer, peers: _Peers) -> bool:
    rows = await hub.store.route_stats()
    head = (
        f"{'route':<18} {'target':<10} {'accepted':>8} {'delivered':>9} {'retried':>7} "
        f"{'dead-lettered':>13} {'p50 ms':>7} {'p99 ms':>7}"
    )
    _say(head)
    _say("-" * len(head))
    for r in rows:
        _say(
            f"{r.route:<18} {r.target:<10} {r.total:>8,} {r.delivered:>9,} "
            f"{r.retries:>7,} {observer.dead.get((r.route, r.target), 0):>13,} "
            f"{_fmt_ms(r.p50_ms):>7} {_fmt_ms(r.p99_ms):>7}"
        )
    _say("")
    kinds = {
        "dept-scjg": "HTTP JSON",
        "dept-zjj": "SOAP",
        "dept-wjw": "前置库",
        "dept-yjj": "file batch",
        "tzxm": "HTTP JSON",
    }
    firsts = []
    for source, kind in kinds.items():
        q = await hub.store.quarantined(source, limit=10_000)
        firsts += q[:1]
        _say(
            f"source {source:<9} {observer.accepted.get(source, 0):>5,} accepted, "
            f"{len(q):>2} rejected and quarantined, "
            f"{observer.duplicates.get(source, 0):>3} duplicates recognised   ({kind})"
        )
    _say("\nquarantine (GET /v1/systems/{system}/quarantine), the first reason of each source:")
    for item in firsts:
        _say(f"  {item.source:<9} {item.code:<9} [{item.field}] {item.detail[:90]}")
    _say("")
    missing: list[tuple[str, str]] = []
    expected: dict[str, int] = {}
    applied = {t: peers.applied(t) for t in ("national", "archive", "dept-zjj", "dept-scjg")}
    for mid, (_source, targets) in observer.routed.items():
        for t in targets:
            expected[t] = expected.get(t, 0) + 1
            if mid not in applied[t]:
                missing.append((mid, t))
    for t, got in applied.items():
        _say(
            f"target {t:<9}: applied {len(got):,} records exactly once "
            f"({expected.get(t, 0):,} routed to it); {peers.redeliveries(t)} re-deliveries "
            "de-duplicated by message id"
        )
    breaker = hub.dispatcher.workers["national"].breaker
    _say(f"circuit to national opened {breaker.opened_count} time(s)")
    _say(
        "check: every acknowledged record applied at every target it was routed to: "
        f"{'yes' if not missing else f'NO ({len(missing)} missing)'}"
    )
    return not missing


def _say(msg: str) -> None:
    print(msg, flush=True)


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
