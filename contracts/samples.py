"""Deterministic sample records for the demo, tests and benchmarks.

``sample_inspection(i)`` and ``sample_catalog_item(i)`` return JSON-ready dicts (dates and
datetimes as ISO strings) that validate against the canonical models. The same ``i`` always
gives the same record; different ``i`` give different business keys. Every generated USCC and
公民身份号码 carries correct check characters.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from contracts.validators import (
    CHINA_TZ,
    USCC_ALPHABET,
    id_card_check_char,
    is_valid_region_code,
    org_code_check_char,
    region_level,
    uscc_check_char,
)

__all__ = [
    "make_id_card",
    "make_uscc",
    "sample_catalog_item",
    "sample_coordination",
    "sample_inspection",
    "sample_penalty",
]

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "强", "洋", "艳", "军", "杰", "涛")
_TRADES = ("餐饮", "食品销售", "药品零售", "建材", "电梯维保", "加油站", "网吧", "印刷")
_STREETS = ("文三路", "延安路", "解放路", "凤起路", "庆春路", "体育场路", "莫干山路")
_FORMS = ("1", "1", "1", "2", "3")
_CATEGORIES = ("1", "3", "3", "2", "4", "5")
_RESULTS = ("1", "1", "1", "2", "2", "3", "4", "5")
_LEVEL_DIGIT = {"province": "2", "prefecture": "3", "county": "4"}

# (主项名称, 子项名称, 监管部门, 监管对象) of the sample catalog.
_CATALOG = (
    ("对食品经营者的监督检查", "对餐饮服务提供者的监督检查", "市场监督管理局", "餐饮服务提供者"),
    ("对特种设备的监督检查", "对电梯使用单位的监督检查", "市场监督管理局", "电梯使用单位"),
    ("对药品经营企业的监督检查", "对药品零售企业的监督检查", "药品监督管理局", "药品零售企业"),
    ("对成品油零售经营的监督检查", "对加油站的监督检查", "商务厅", "成品油零售经营企业"),
    ("对建设工程质量的监督检查", "对在建工程质量的监督检查", "住房和城乡建设厅", "建设单位"),
)
_CATALOG_REGION = "330000"
_INSPECTION_BASE = datetime(2024, 3, 1, 9, 0, tzinfo=CHINA_TZ)
_CATALOG_BASE = date(2024, 1, 1)
_BIRTH_BASE = date(1960, 1, 1)


def _base31(n: int, width: int) -> str:
    digits = []
    for _ in range(width):
        n, r = divmod(n, 31)
        digits.append(USCC_ALPHABET[r])
    return "".join(reversed(digits))


def make_uscc(prefix: str, region: str, n: int) -> str:
    """A valid USCC: ``prefix`` (登记管理部门 + 机构类别, e.g. ``"91"`` enterprise, ``"11"``
    government body), the 6-digit ``region`` and an organisation code derived from ``n``
    (digits for even ``n``, ``MA``-style letters for odd ``n``)."""
    digits = f"{(n * 7919 + 10_000_000) % 100_000_000:08d}"
    body = digits if n % 2 == 0 else "MA" + _base31(n, 6)
    first17 = prefix + region + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


def make_id_card(region: str, n: int) -> str:
    """A valid 公民身份号码 for ``region`` with a birth date and sequence derived from ``n``."""
    birth = _BIRTH_BASE + timedelta(days=(n * 37) % 16_000)
    first17 = f"{region}{birth:%Y%m%d}{n % 1000:03d}"
    return first17 + id_card_check_char(first17)


def _person(n: int) -> str:
    return _SURNAMES[n % len(_SURNAMES)] + _GIVEN[(n // len(_SURNAMES)) % len(_GIVEN)]


def _catalog_code(i: int) -> str:
    return f"{_CATALOG_REGION[:2]}{i:012d}"


def sample_inspection(i: int, region: str = "330102") -> dict[str, Any]:
    """A valid canonical ``inspection`` record (see :class:`contracts.InspectionRecord`)
    built deterministically from ``i``; ``region`` is a 6-digit 行政区划代码."""
    if i < 0:
        raise ValueError("i must be >= 0")
    if not is_valid_region_code(region):
        raise ValueError(f"not a valid 行政区划代码: {region!r}")
    department = make_uscc("11", region, 2 * (1000 + i % 7))
    item = i % len(_CATALOG)
    trade = _TRADES[i % len(_TRADES)]
    address = f"{_STREETS[i % len(_STREETS)]}{i % 997 + 1}号"
    inspected = _INSPECTION_BASE + timedelta(minutes=i)
    kind = i % 3
    if kind == 0:
        nature, cert_type, code = "1", "001", make_uscc("91", region, i)
        name = f"样例{trade}有限公司{i}"
    elif kind == 1:
        nature, cert_type, code = "3", "001", make_uscc("92", region, i)
        name = f"{_person(i)}{trade}店"
    else:
        nature, cert_type, code = "2", "111", make_id_card(region, i)
        name = _person(i)
    record: dict[str, Any] = {
        "catalog_code": _catalog_code(item),
        "implementation_code": f"{department}{_LEVEL_DIGIT[region_level(region)]}{item + 1:04d}",
        "inspection_name": f"{_CATALOG[item][1]}（{trade}）",
        "inspection_no": f"JC{region}{inspected:%Y%m%d}{i:08d}",
        "supervised_object": _CATALOG[item][3],
        "counterpart_name": name,
        "counterpart_nature": nature,
        "counterpart_cert_type": cert_type,
        "counterpart_code": code,
        "region_code": region,
        "inspection_form": _FORMS[i % len(_FORMS)],
        "inspection_category": _CATEGORIES[i % len(_CATEGORIES)],
        "inspection_result": _RESULTS[i % len(_RESULTS)],
        "inspection_time": inspected.isoformat(),
        "inspectors": [
            {"name": _person(i + k * 7), "law_enforcement_cert_no": f"{region}{(i + k) % 9999:05d}"}
            for k in range(2 + i % 2)
        ],
        "implementing_body": f"{_CATALOG[item][2]}（{region}）",
        "implementing_body_code": department,
        "business_address": address,
        "submitted_at": (inspected + timedelta(hours=2, minutes=i % 60)).isoformat(),
        "submitter": _person(i + 3),
    }
    if i % 4 == 0:
        record["random_plan_id"] = f"SSJ{region}2024{i // 4 % 1000:03d}"
    if kind != 2:
        record["registered_address"] = address
    return record


def sample_catalog_item(i: int, version: int = 1) -> dict[str, Any]:
    """A valid canonical ``catalog_item`` record (see :class:`contracts.CatalogItem`):
    version ``version`` of catalog item ``i`` (version 1 is a ``create``, later versions a
    ``change``)."""
    if i < 0:
        raise ValueError("i must be >= 0")
    if version < 1:
        raise ValueError("version must be >= 1")
    main, sub, department, supervised = _CATALOG[i % len(_CATALOG)]
    return {
        "code": _catalog_code(i),
        "version": version,
        "change_type": "create" if version == 1 else "change",
        "effective_date": (_CATALOG_BASE + timedelta(days=30 * (version - 1))).isoformat(),
        "region_code": _CATALOG_REGION,
        "department": f"浙江省{department}",
        "department_code": make_uscc("11", _CATALOG_REGION, 2 * (100 + i % len(_CATALOG))),
        "main_item_name": main,
        "sub_item_name": sub if i < len(_CATALOG) else f"{sub}（{i}）",
        "supervision_methods": ["现场检查", "书面检查"] if i % 2 else ["现场检查"],
        "supervision_measures": ["责令改正", "警告", "罚款"][: 1 + i % 3],
        "supervised_object": supervised,
        "legal_basis": f"《中华人民共和国行政许可法》第六十一条（样例第{version}版）",
        "supervision_process": "制定检查计划、实施检查、记录检查情况、处理检查结果",
        "supervision_result": "检查结果依法公示；发现违法行为的依法处理",
        "supervision_levels": ["2", "3", "4"] if i % 2 else ["2"],
    }


def sample_penalty(i: int, region: str = "330102") -> dict[str, Any]:
    """A valid canonical ``penalty`` record (see :class:`contracts.penalty.PenaltyRecord`)
    built deterministically from ``i``."""
    if i < 0:
        raise ValueError("i must be >= 0")
    authority = make_uscc("11", region, 2 * (1000 + i % 7))
    item = i % len(_CATALOG)
    decided = date(2024, 3, 1) + timedelta(days=i % 200)
    return {
        "decision_no": f"{region}市监罚〔2024〕{i + 1}号",
        "catalog_code": _catalog_code(item),
        "region_code": region,
        "counterpart_name": f"样例{_TRADES[i % len(_TRADES)]}有限公司{i}",
        "counterpart_category": "1",
        "counterpart_code": make_uscc("91", region, i),
        "violation_type": "未按规定履行义务",
        "violation_facts": f"经查，当事人存在违法行为（样例{i}）",
        "legal_basis": "《中华人民共和国食品安全法》第一百二十六条",
        "penalty_category": "警告;罚款",
        "penalty_content": f"警告，并处罚款{(i % 50 + 1) * 1000}元",
        "fine_amount": str((i % 50 + 1) / 10),
        "decision_date": decided.isoformat(),
        "valid_until": (decided + timedelta(days=365)).isoformat(),
        "authority": f"{_CATALOG[item][2]}（{region}）",
        "authority_code": authority,
        "data_source": f"{_CATALOG[item][2]}（{region}）",
        "data_source_code": authority,
    }


def sample_coordination(i: int, region: str = "330102") -> dict[str, Any]:
    """A valid canonical ``coordination`` record (协同监管): even ``i`` a process step, odd
    ``i`` the result of the same task."""
    if i < 0:
        raise ValueError("i must be >= 0")
    task = i // 2
    item = task % len(_CATALOG)
    result = i % 2 == 1
    record: dict[str, Any] = {
        "task_no": f"XT{region}2024{task:06d}",
        "step_no": 1 + i % 2,
        "stage": "result" if result else "process",
        "title": f"跨部门联合检查：{_CATALOG[item][0]}",
        "catalog_code": _catalog_code(item),
        "region_code": region,
        "department": f"{_CATALOG[item][2]}（{region}）",
        "department_code": make_uscc("11", region, 2 * (1000 + task % 7)),
        "partner_departments": ["应急管理局", "消防救援支队"],
        "action": "办结" if result else "发起协同",
        "occurred_at": (_INSPECTION_BASE + timedelta(hours=i)).isoformat(),
    }
    if result:
        record["result"] = "联合检查完成，责令整改并复查合格"
    return record
