"""Deterministic sample records of the credit datasets: canonical ones (for contract tests) and
the same records in the department's own schema (``dept-amr`` / ``dept-zjj`` of
``examples/platforms/credit``), for end-to-end tests and the demo."""

from __future__ import annotations

import datetime as dt
from typing import Any

from contracts.samples import make_id_card, make_uscc

__all__ = [
    "AMR_CODE",
    "REGION",
    "ZJJ_CODE",
    "amr_licence",
    "amr_penalty",
    "sample_credit_licence",
    "sample_credit_penalty",
    "sample_feedback",
    "sample_list_entry",
    "zjj_feedback",
]

REGION = "330102"
#: 统一社会信用代码 of the market supervision bureau (处罚/许可机关, 数据来源单位)
AMR_CODE = make_uscc("11", REGION, 2 * 1001)
#: 统一社会信用代码 of the housing and construction bureau (反馈部门)
ZJJ_CODE = make_uscc("11", REGION, 2 * 1002)
_UPDATED = "2026-11-20T10:00:00+08:00"


def sample_credit_penalty(i: int, decided: dt.date = dt.date(2026, 11, 16)) -> dict[str, Any]:
    """A valid canonical ``credit_penalty`` (an organisation fined)."""
    company = make_uscc("91", REGION, i)
    return {
        "decision_no": f"杭上市监罚〔2026〕{i + 1}号",
        "catalog_code": f"33{i % 7:012d}",
        "region_code": REGION,
        "counterpart_name": f"杭州样例餐饮有限公司{i}",
        "counterpart_category": "1",
        "counterpart_code": company,
        "counterpart_uscc": company,
        "legal_rep": "张伟",
        "legal_rep_cert_type": "111",
        "legal_rep_cert_no": make_id_card(REGION, i + 7),
        "violation_type": "经营超过保质期的食品",
        "violation_facts": f"经查，当事人经营超过保质期的食品（样例{i}）",
        "legal_basis": "《中华人民共和国食品安全法》第一百二十四条",
        "penalty_category": "警告;罚款",
        "penalty_content": f"警告，并处罚款{(i % 9 + 1) * 1000}元",
        "fine_amount": str((i % 9 + 1) / 10),
        "decision_date": decided.isoformat(),
        "valid_until": (decided + dt.timedelta(days=365)).isoformat(),
        "authority": "杭州市上城区市场监督管理局",
        "authority_code": AMR_CODE,
        "data_source": "杭州市上城区市场监督管理局",
        "data_source_code": AMR_CODE,
        "change_type": "1",
        "updated_at": _UPDATED,
    }


def sample_credit_licence(i: int, decided: dt.date = dt.date(2026, 11, 16)) -> dict[str, Any]:
    """A valid canonical ``credit_licence`` (a 食品经营许可证 for an organisation)."""
    company = make_uscc("91", REGION, i)
    return {
        "counterpart_name": f"杭州样例餐饮有限公司{i}",
        "counterpart_category": "1",
        "counterpart_uscc": company,
        "legal_rep": "李娜",
        "legal_rep_cert_type": "111",
        "legal_rep_cert_no": make_id_card(REGION, i + 11),
        "decision_doc_name": "食品经营许可决定书",
        "decision_doc_no": f"杭上市监许〔2026〕{i + 1}号",
        "licence_category": "01",
        "licence_cert_name": "食品经营许可证",
        "licence_no": f"JY2330102{i:08d}",
        "licence_content": "预包装食品销售，热食类食品制售",
        "decision_date": decided.isoformat(),
        "valid_from": decided.isoformat(),
        "valid_until": "2099-12-31",
        "authority": "杭州市上城区市场监督管理局",
        "authority_code": AMR_CODE,
        "data_source": "杭州市上城区市场监督管理局",
        "data_source_code": AMR_CODE,
        "status": "1",
        "change_type": "1",
        "updated_at": _UPDATED,
    }


def sample_list_entry(i: int, list_type: str = "02") -> dict[str, Any]:
    """A valid canonical ``credit_list_entry`` (an organisation listed)."""
    return {
        "entry_id": f"MD20261120{i:06d}",
        "list_type": list_type,
        "action": "1",
        "subject_name": f"杭州样例建筑有限公司{i}",
        "subject_category": "1",
        "subject_uscc": make_uscc("91", REGION, 500 + i),
        "reason": "拖欠农民工工资，经责令仍不支付",
        "basis": "《拖欠农民工工资失信联合惩戒对象名单管理暂行办法》",
        "decided_by": "浙江省人力资源和社会保障厅",
        "decided_by_code": make_uscc("11", "330000", 2 * 1003),
        "listed_on": "2026-11-20",
        "valid_until": "2029-11-19",
        "measures": ["限制参与政府采购和招标投标", "限制享受财政补贴"],
        "updated_at": _UPDATED,
    }


def sample_feedback(i: int, entry_id: str, subject_uscc: str) -> dict[str, Any]:
    """A valid canonical ``credit_feedback``."""
    return {
        "feedback_id": f"ZJJFK2026{i:06d}",
        "entry_id": entry_id,
        "subject_name": f"杭州样例建筑有限公司{i}",
        "subject_uscc": subject_uscc,
        "measure_kind": "2",
        "measure": "取消其参与本市政府投资项目招标投标资格",
        "matter": "某安置房项目施工招标",
        "department": "杭州市上城区住房和城乡建设局",
        "department_code": ZJJ_CODE,
        "acted_on": "2026-11-23",
    }


def _compact(day: str) -> str:
    return day.replace("-", "")


def amr_penalty(
    i: int,
    decided: dt.date,
    *,
    updated: dt.datetime | None = None,
    op: str = "新增",
    reason: str | None = None,
) -> dict[str, Any]:
    """:func:`sample_credit_penalty` as the bureau's system sends it (its own schema)."""
    c = sample_credit_penalty(i, decided)
    when = updated or dt.datetime.combine(decided, dt.time(16, 0))
    rec = {
        "cfwh": c["decision_no"],
        "sxbm": c["catalog_code"],
        "xzqh": int(REGION),
        "xdrmc": c["counterpart_name"],
        "xdrlb": "法人",
        "tyshxydm": c["counterpart_uscc"].lower(),
        "fddbr": c["legal_rep"],
        "fddbrzjlx": "身份证",
        "fddbrzjhm": c["legal_rep_cert_no"],
        "wfxwlx": c["violation_type"],
        "wfss": c["violation_facts"],
        "cfyj": c["legal_basis"],
        "cflb": c["penalty_category"],
        "cfnr": c["penalty_content"],
        "fkje": c["fine_amount"],
        "cfrq": _compact(c["decision_date"]),
        "cfyxq": _compact(c["valid_until"]),
        "cfjg": c["authority"],
        "cfjgdm": c["authority_code"],
        "sjly": c["data_source"],
        "sjlydm": c["data_source_code"],
        "czlx": op,
        "gxsj": when.strftime("%Y%m%d%H%M%S"),
        "nbbh": f"NB-{i}",
    }
    if reason is not None:
        rec["czyy"] = reason
    return rec


def amr_licence(i: int, decided: dt.date) -> dict[str, Any]:
    """:func:`sample_credit_licence` as the bureau's system sends it."""
    c = sample_credit_licence(i, decided)
    return {
        "xkjdwsmc": c["decision_doc_name"],
        "xkwsh": c["decision_doc_no"],
        "xdrmc": c["counterpart_name"],
        "xdrlb": "法人及非法人组织",
        "tyshxydm": c["counterpart_uscc"],
        "fddbr": c["legal_rep"],
        "fddbrzjlx": "身份证",
        "fddbrzjhm": c["legal_rep_cert_no"],
        "xklb": "01",
        "xkzsmc": c["licence_cert_name"],
        "xkbh": c["licence_no"],
        "xknr": c["licence_content"],
        "xkrq": _compact(c["decision_date"]),
        "yxqz": _compact(c["valid_from"]),
        "xkjg": c["authority"],
        "xkjgdm": c["authority_code"],
        "sjly": c["data_source"],
        "sjlydm": c["data_source_code"],
        "gxsj": dt.datetime.combine(decided, dt.time(15, 0)).strftime("%Y%m%d%H%M%S"),
    }


def zjj_feedback(
    i: int, entry_id: str, subject_uscc: str, subject_name: str, acted_on: dt.date
) -> dict[str, Any]:
    """A feedback (联合奖惩反馈) as the housing bureau's system sends it."""
    return {
        "fkbh": f"ZJJFK{acted_on:%Y%m%d}{i:04d}",
        "mdbh": entry_id,
        "qymc": subject_name,
        "tyshxydm": subject_uscc,
        "cslx": "惩戒",
        "csnr": "取消其参与本市政府投资项目招标投标资格",
        "blsx": "某安置房项目施工招标",
        "fkbm": "杭州市上城区住房和城乡建设局",
        "fkbmdm": ZJJ_CODE,
        "ssrq": acted_on.strftime("%Y%m%d"),
    }
