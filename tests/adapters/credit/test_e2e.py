"""End to end through the hub, on the example platform configuration: department -> hub ->
credit platform simulator (mapping to its template fields, RFC 9421 signatures it verifies,
its receipts), lists -> departments and the registry, status queries and feedback, and the
failures (outage, maintenance, throttling, refusal, malformed input) without loss."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import orjson

from adapters.credit.samples import REGION, amr_licence, amr_penalty, zjj_feedback
from contracts.samples import make_uscc
from tests.adapters.credit.rig import AMR, ZJJ, Rig, credit_rig
from tests.helpers import wait_until

D = dt.date(2026, 11, 16)
SUBJECT = make_uscc("91", REGION, 777)


async def _receipt(rig: Rig, message_id: str) -> str:
    found: list[str] = []

    async def got() -> bool:
        found[:] = [
            m for d in await rig.events(message_id) for m in re.findall(r"receipt=(\S+)", d)
        ]
        return bool(found)

    await wait_until(got, what=f"receipt of {message_id}")
    return found[0]


async def _publish(rig: Rig, **kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "list_type": "HEIMD",
        "name": "杭州失信样例建筑有限公司",
        "uscc": SUBJECT,
        "reason": "拖欠农民工工资",
        "basis": "《拖欠农民工工资失信联合惩戒对象名单管理暂行办法》",
        "decided_by_code": make_uscc("11", "330000", 2006),
        "valid_until": "2099/12/31",
        "measures": ["限制参与招标投标"],
    }
    return await rig.sim.publish(**(args | kw))  # type: ignore[arg-type]


async def test_penalty_versions_reach_the_platform_mapped_signed_and_in_order(
    tmp_path: Path,
) -> None:
    async with credit_rig(tmp_path) as rig:
        first = amr_penalty(0, D)
        corrected = amr_penalty(
            0, D, updated=dt.datetime(2026, 11, 18, 9, 30), op="更正", reason="罚款金额有误"
        ) | {"fkje": "0.2", "cfnr": "警告，并处罚款2000元"}
        withdrawn = amr_penalty(
            0, D, updated=dt.datetime(2026, 11, 20, 9, 0), op="撤销", reason="经复议撤销"
        )
        status, doc = await rig.post("dept-amr", "credit_penalty", [first, corrected], AMR)
        assert status == 202 and doc["replaced"] == [1]  # the correction replaces the first
        status, doc = await rig.post("dept-amr", "credit_penalty", withdrawn, AMR)
        assert status == 202 and doc["replaced"] == [0]
        wsh = "杭上市监罚〔2026〕1号"
        await wait_until(
            lambda: [x[2] for x in rig.sim.disclosure_log] == ["I", "U", "D"], what="3 versions"
        )
        # an older version arriving late is stale: acknowledged, not stored, not sent
        late = amr_penalty(0, D, updated=dt.datetime(2026, 11, 17, 8, 0), op="更正",
                           reason="迟到的旧版本")  # fmt: skip
        status, doc = await rig.post("dept-amr", "credit_penalty", late, AMR)
        assert status == 202 and doc["duplicates"] == [0]
        held = rig.sim.disclosures["xzcf"][wsh]
        assert held["op"] == "D" and held["version"] == "2026-11-20 09:00:00"
        rec = held["record"]
        # the platform's template fields, codes and date forms (mapping.outbound)
        assert rec["CF_WSH"] == wsh and rec["CF_XDR_LB"] == "法人及非法人组织"
        assert rec["CF_XDR_SHXYM"] == make_uscc("91", REGION, 0)  # upper-cased on the way in
        assert rec["CF_FR_ZJLX"] == "01" and rec["CF_JDRQ"] == "2026/11/16"
        assert rec["CF_CFLB"] == "警告;罚款" and rec["CZYY"] == "经复议撤销"
        assert "nbbh" not in rec and "NB-0" not in orjson.dumps(rec).decode()
        # every request was signed by the hub and verified; each version has a receipt
        assert rig.sim.refused == [] and len(rig.sim.disclosure_log) == 3
        assert held["receipt"] == "XYHZ0000000003"
        _, doc = await rig.post("dept-amr", "credit_licence", amr_licence(0, D), AMR)
        assert (await _receipt(rig, doc["ids"][0])).startswith("XYHZ")
        lic = rig.sim.disclosures["xzxk"]["杭上市监许〔2026〕1号"]["record"]
        assert lic["XK_XKLB"] == "01" and lic["XK_YXQZI"] == "2099/12/31" and lic["CZLX"] == "I"


async def test_lists_reach_the_departments_and_answer_status_queries(tmp_path: Path) -> None:
    async with credit_rig(tmp_path) as rig:
        entry = await _publish(rig)
        red = await _publish(
            rig, list_type="HONGMD", name="杭州诚信样例有限公司", uscc=make_uscc("91", REGION, 778)
        )
        await wait_until(lambda: len(rig.inbox.applied) == 2, what="both entries at dept-zjj")
        got = {r["mdbh"]: r for r in rig.inbox.applied.values()}
        assert got[entry["MDBH"]]["mdlx"] == "黑名单" and got[red["MDBH"]]["mdlx"] == "红名单"
        assert got[entry["MDBH"]]["cz"] == "列入" and got[entry["MDBH"]]["tyshxydm"] == SUBJECT
        assert all(s == 202 for _, s in rig.sim.pushes)  # signed pushes, verified by the hub
        path = f"/v1/credit/subjects/{SUBJECT}/status"
        ask = {"params": {"system": "dept-zjj"}, "headers": ZJJ}

        async def status_of(p: str) -> dict[str, object]:
            code, doc = await rig.get(p, **ask)
            assert code == 200, doc
            return doc  # type: ignore[no-any-return]

        await wait_until(
            lambda: _listed(status_of(path)), what="the black-list entry in the registry"
        )
        doc = await status_of(path)
        assert doc["advice"] == "punish" and doc["advice_label"] == "惩戒"
        [active] = doc["active"]  # type: ignore[misc]
        assert active["entry_id"] == entry["MDBH"] and active["list_name"].startswith("失信惩戒")
        red_path = f"/v1/credit/subjects/{red['TYSHXYDM']}/status"
        await wait_until(lambda: _listed(status_of(red_path)), what="the red-list entry")
        green = await status_of(red_path)
        assert green["advice"] == "reward"
        # the entry is removed (信用修复): a newer version of the same entry
        await _publish(rig, entry_id=entry["MDBH"], remove=True, reason="已支付全部拖欠工资")

        async def cleared() -> bool:
            return (await status_of(path))["listed"] is False

        await wait_until(cleared, what="the removal")
        doc = await status_of(path)
        assert doc["advice"] == "none" and doc["history"][0]["inactive_because"] == "removed"
        # a subject never listed, and the lower-case form of a code
        nobody = await status_of(f"/v1/credit/subjects/{make_uscc('91', REGION, 9)}/status")
        assert nobody["listed"] is False and nobody["active"] == []
        lower = await status_of(f"/v1/credit/subjects/{str(red['TYSHXYDM']).lower()}/status")
        assert lower["subject"] == red["TYSHXYDM"] and lower["advice"] == "reward"
        # refusals: a bad code, no credentials, a system that receives no lists, none named
        code, err = await rig.get(f"/v1/credit/subjects/{SUBJECT[:-1]}0/status", **ask)
        assert (code, err["code"], err["field"]) == (400, "E_PARAM", "subject")
        code, err = await rig.get(path, params={"system": "dept-zjj"})
        assert (code, err["code"]) == (401, "E_AUTH")
        code, err = await rig.get(path, params={"system": "dept-amr"}, headers=AMR)
        assert (code, err["code"]) == (403, "E_FORBIDDEN")
        code, err = await rig.get(path, headers=ZJJ)
        assert (code, err["code"]) == (400, "E_PARAM")
        code, err = await rig.get(path, params={"system": "nobody"}, headers=ZJJ)
        assert (code, err["code"]) == (404, "E_UNKNOWN_SYSTEM")


async def test_the_hub_can_pull_the_list_feed_instead(tmp_path: Path) -> None:
    async with credit_rig(tmp_path, pull=True) as rig:
        entry = await _publish(rig)
        await _publish(rig, entry_id=entry["MDBH"], remove=True, reason="信用修复")
        assert rig.sim.pushes == []  # nothing pushed: the hub polls
        await wait_until(lambda: len(rig.inbox.applied) == 2, what="both versions at dept-zjj")
        assert [r["cz"] for r in rig.inbox.applied.values()] == ["列入", "移出"]
        path = f"/v1/credit/subjects/{SUBJECT}/status"

        async def removed() -> bool:
            _, doc = await rig.get(path, params={"system": "dept-zjj"}, headers=ZJJ)
            return [h.get("inactive_because") for h in doc["history"]] == ["removed"]

        await wait_until(removed, what="the removal in the registry")
        # the poller asked with the platform's feed token, page by page
        assert any(m == "GET" and s == 200 for _, m, _, s in rig.sim.requests)


async def test_status_queries_with_role_tokens_are_checked_and_audited(tmp_path: Path) -> None:
    async with credit_rig(tmp_path, security=True) as rig:
        tokens = rig.hub.guard.authenticator.tokens

        async def token(role: str, system: str | None = None) -> dict[str, str]:
            issued = await tokens.create(
                name=f"{role}-{system}", roles=[role], department="330102-zjj", system=system
            )
            return {"Authorization": f"Bearer {issued.token}"}

        # with the security section the platform presents a system token with its pushes
        rig.sim.push_token = (await token("system", "credit"))["Authorization"][7:]
        await _publish(rig)
        assert rig.sim.pushes[-1][1] == 202
        path = f"/v1/credit/subjects/{SUBJECT}/status"
        as_zjj = {"params": {"system": "dept-zjj"}}
        own = await token("system", "dept-zjj")

        async def listed() -> bool:
            code, doc = await rig.get(path, headers=own, **as_zjj)
            return code == 200 and doc["listed"] is True

        await wait_until(listed, what="the entry in the registry")
        # another system's token, an operator, a reviewer: refused for dept-zjj
        for who in (await token("system", "dept-amr"), await token("ops"), await token("reviewer")):
            code, err = await rig.get(path, headers=who, **as_zjj)
            assert (code, err["code"]) == (403, "E_FORBIDDEN")
        code, err = await rig.get(path, **as_zjj)
        assert (code, err["code"]) == (401, "E_AUTH")
        actions = []
        async for line in rig.hub.guard.audit.export(dt.date(2000, 1, 1), dt.date(2100, 1, 1)):
            doc = orjson.loads(line)
            if doc.get("type", "entry") == "entry" and "action" in doc:
                actions.append((doc["action"], doc.get("object")))
        assert ("data.access", f"subject {SUBJECT}") in actions
        assert sum(1 for a, _ in actions if a == "access.denied") >= 3


async def _listed(doc: object) -> bool:
    got = await doc  # type: ignore[misc]
    return bool(got["listed"])


async def test_unsigned_or_forged_pushes_are_refused(tmp_path: Path) -> None:
    async with credit_rig(tmp_path) as rig:
        body = orjson.dumps([{"MDBH": "MD1"}])
        async with rig.http.post(
            "/v1/systems/credit/records?dataset=credit_list_entry",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 401 and (await resp.json())["code"] == "E_SIGNATURE"
        # the platform refuses a request the hub did not sign, in its own words
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{rig.sim.base_url}/sgs/xzcf", json={"CF_WSH": "x"}) as resp,
        ):
            doc = await resp.json()
        assert resp.status == 401 and doc["code"] == "XY4010"
        assert rig.sim.refused and rig.sim.disclosures["xzcf"] == {}


async def test_feedback_returns_to_the_platform_and_a_refusal_is_kept_for_replay(
    tmp_path: Path,
) -> None:
    async with credit_rig(tmp_path) as rig:
        # feedback on an entry the platform does not know (yet): refused XY4041, dead letter
        early = zjj_feedback(1, "MD20261129999999", SUBJECT, "杭州失信样例建筑有限公司", D)
        status, doc = await rig.post("dept-zjj", "credit_feedback", early, ZJJ)
        assert status == 202

        async def dead_lettered() -> bool:
            return bool((await rig.get("/v1/dlq"))[1]["items"])

        await wait_until(dead_lettered, what="the refused feedback in the dead letters")
        assert rig.sim.rejected[-1][2:] == ("XY4041", "MDBH")
        _, dlq = await rig.get("/v1/dlq")
        [dead] = dlq["items"]
        assert "E_CREDIT_REJECT" in dead["reason"] and dead["target"] == "credit"
        assert dead["reason"].startswith("permanent error 422: E_CREDIT_REJECT XY4041 [MDBH]")
        # the entry is published; the operator replays: accepted, nothing was lost
        entry = await _publish(rig, entry_id="MD20261129999999")
        async with rig.http.post(f"/v1/dlq/{dead['delivery_id']}/replay") as resp:
            assert resp.status == 200
        await wait_until(lambda: len(rig.sim.feedback) == 1, what="the replayed feedback")
        # regular feedback on the published entry
        fb = zjj_feedback(2, "MD20261129999999", SUBJECT, "杭州失信样例建筑有限公司", D)
        _, doc = await rig.post("dept-zjj", "credit_feedback", fb, ZJJ)
        receipt = await _receipt(rig, doc["ids"][0])
        got = rig.sim.feedback[-1]
        assert got["_hzbh"] == receipt and got["CSLX"] == "CJ" and got["SSRQ"] == "2026/11/16"
        assert got["FKBMDM"] == fb["fkbmdm"] and got["MDBH"] == "MD20261129999999"
        assert entry["MDLX"] == "HEIMD" and rig.sim.refused == []


async def test_outage_maintenance_and_throttling_lose_nothing(tmp_path: Path) -> None:
    async with credit_rig(tmp_path) as rig:
        await rig.sim.go_down()  # connection refused
        records = [amr_penalty(i, D) for i in range(5)]
        status, doc = await rig.post("dept-amr", "credit_penalty", records, AMR)
        assert status == 202 and doc["accepted"] == 5  # on disk before the platform is back

        async def retried() -> bool:
            return (await rig.hub.store.counts()).get("pending", 0) == 5

        await wait_until(retried, what="5 pending deliveries")
        rig.sim.behaviour.maintenance = True
        await rig.sim.come_up()
        await wait_until(
            lambda: any(s == 503 for *_, s in rig.sim.requests), what="a 503 during maintenance"
        )
        rig.sim.behaviour.maintenance = False
        rig.sim.behaviour.throttle = 2
        rig.sim.behaviour.delay = 0.05  # and slow

        async def settled() -> bool:
            return (await rig.hub.store.counts()).get("delivered", 0) == 5

        await wait_until(settled, what="all 5 delivered")
        counts = await rig.hub.store.counts()
        assert counts.get("dead", 0) == 0 and len(rig.sim.disclosures["xzcf"]) == 5
        assert len(rig.sim.disclosure_log) == 5  # each record once
        assert any(s == 429 for *_, s in rig.sim.requests)


async def test_malformed_and_invalid_input_is_refused_with_codes_and_quarantined(
    tmp_path: Path,
) -> None:
    async with credit_rig(tmp_path) as rig:
        async with rig.http.post(
            "/v1/systems/dept-amr/records?dataset=credit_penalty",
            data=b'{"cfwh": "x",',
            headers={**AMR, "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == "E_JSON"
        good = amr_penalty(0, D)
        bad = amr_penalty(1, D) | {"cflb": "罚没"}
        worse = amr_penalty(2, D) | {"xdrlb": "社会团体"}
        status, doc = await rig.post("dept-amr", "credit_penalty", [good, bad, worse], AMR)
        assert status == 207 and doc["code"] == "E_BATCH" and doc["accepted_indexes"] == [0]
        codes = {(r["index"], r["code"], r["field"]) for r in doc["rejected"]}
        assert codes == {
            (1, "E_SCHEMA", "penalty_category"),
            (2, "E_MAPPING", "counterpart_category"),
        }
        _, q = await rig.get("/v1/systems/dept-amr/quarantine", headers=AMR)
        assert {i["code"] for i in q["items"]} == {"E_SCHEMA", "E_MAPPING"}
        await wait_until(lambda: len(rig.sim.disclosures["xzcf"]) == 1, what="the valid one")


async def test_an_overdue_disclosure_is_flagged_on_the_working_day_calendar(
    tmp_path: Path,
) -> None:
    # the hub's clock reads 15 Oct 2026, 10:00 in Shanghai (after the National Day holiday)
    now = dt.datetime(2026, 10, 15, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    offset = now - time.time()
    async with credit_rig(tmp_path, clock=lambda: time.time() + offset) as rig:
        late = amr_penalty(0, dt.date(2026, 9, 29))  # deadline 14 Oct: one working day late
        in_time = amr_penalty(1, dt.date(2026, 9, 30))  # deadline 15 Oct: the last day
        licence = amr_licence(2, dt.date(2026, 9, 28))  # deadline 13 Oct
        _, a = await rig.post("dept-amr", "credit_penalty", [late, in_time], AMR)
        _, b = await rig.post("dept-amr", "credit_licence", licence, AMR)
        ids = [*a["ids"], *b["ids"]]
        for mid in ids:
            await _receipt(rig, mid)
        notes = [" ".join(await rig.events(mid)) for mid in ids]
        assert "公示超期 (disclosure overdue): decided 2026-09-29, deadline 2026-10-14" in notes[0]
        assert "1 working day(s) late" in notes[0]
        assert "公示超期" not in notes[1]
        assert "deadline 2026-10-13" in notes[2] and "2 working day(s) late" in notes[2]
        _, text = await rig.get("/metrics")
        series = {
            line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("jghub_credit_disclosures_overdue_total{")
        }
        assert series == {
            'dataset="credit_licence",target="credit"': 1.0,
            'dataset="credit_penalty",target="credit"': 1.0,
        }
        # every disclosure reached the platform all the same
        assert len(rig.sim.disclosures["xzcf"]) == 2 and len(rig.sim.disclosures["xzxk"]) == 1
