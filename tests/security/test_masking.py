"""Masking (脱敏) by policy: each kind on real-looking values, and who sees clear values."""

from __future__ import annotations

import pytest

from security.masking import MaskRule, mask_record, mask_value
from security.roles import Principal, Role


@pytest.mark.parametrize(
    ("value", "kind", "masked"),
    [
        ("11010519491231002X", "id_card", "110105********002X"),
        ("13812345678", "phone", "138****5678"),
        ("张三", "name", "张*"),
        ("张三丰", "name", "张**"),
        ("欧阳修文", "name", "欧阳**"),
        ("欧阳", "name", "欧*"),  # a two-character name is surname + given name
        ("浙江省杭州市西湖区文三路90号", "address", "浙江省杭州市西湖区******"),
        ("北京市朝阳区建国路88号", "address", "北京市朝阳区******"),
        ("内蒙古自治区呼和浩特市新城区中山路1号", "address", "内蒙古自治区呼和浩特市新城区*****"),
        ("文三路90号院", "address", "文三*****"),
        ("91350200776049653A", "full", "***"),
        (12345, "phone", "***"),
        (None, "name", None),
        ("123", "id_card", "1*3"),
    ],
)
def test_each_kind(value: object, kind: str, masked: object) -> None:
    assert mask_value(value, kind) == masked  # type: ignore[arg-type]


def test_partial_and_overrides() -> None:
    assert mask_value("ABCDEFGH", "partial", keep_start=2, keep_end=2) == "AB****GH"
    assert (
        mask_value("11010519491231002X", "id_card", keep_start=1, keep_end=1)
        == "1" + "*" * 16 + "X"
    )


RULES = [
    MaskRule("法定代表人.证件号码", "id_card", reveal_to=frozenset({Role.REVIEWER})),
    MaskRule("联系电话", "phone", reveal_grant="unmask.phone"),
    MaskRule("检查人员[].姓名", "name"),
]
RECORD = {
    "法定代表人": {"姓名": "王五", "证件号码": "11010519491231002X"},
    "联系电话": "13812345678",
    "检查人员": [{"姓名": "赵六"}, {"姓名": "司马光"}],
}


def _p(*roles: Role, grants: frozenset[str] = frozenset()) -> Principal:
    return Principal("t", "n", frozenset(roles), "dept-a", grants=grants)


def test_mask_record_by_principal() -> None:
    requester = mask_record(RECORD, RULES, _p(Role.REQUESTER))
    assert requester == {
        "法定代表人": {"姓名": "王五", "证件号码": "110105********002X"},
        "联系电话": "138****5678",
        "检查人员": [{"姓名": "赵*"}, {"姓名": "司马*"}],
    }
    reviewer = mask_record(RECORD, RULES, _p(Role.REVIEWER))
    assert reviewer["法定代表人"]["证件号码"] == "11010519491231002X"
    assert reviewer["联系电话"] == "138****5678"
    granted = mask_record(RECORD, RULES, _p(Role.OPS, grants=frozenset({"unmask.phone"})))
    assert granted["联系电话"] == "13812345678"
    assert mask_record(RECORD, RULES, None)["联系电话"] == "138****5678"
    assert RECORD["联系电话"] == "13812345678"  # the input is not changed
    assert mask_record({"other": 1}, RULES, None) == {"other": 1}
