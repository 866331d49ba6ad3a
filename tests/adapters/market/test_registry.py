"""The market entity registry (市场主体名录) and its comparators, on a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.market.registry import SCOPE, EntityRegistry, RegisteredEntity, normalize_name
from contracts.samples import make_id_card, sample_inspection
from hub.errors import StateError
from hub.store.sqlite import SQLiteStore

A = "91330102107919009Q"
B = "91330102MA0000381M"


def entity(uscc: str, name: str, at: str, status: str = "active") -> RegisteredEntity:
    return RegisteredEntity(uscc, name, status, "王伟", "330102", at)


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[EntityRegistry]:
    store = SQLiteStore(tmp_path / "hub.db")
    await store.open()
    yield EntityRegistry(store)
    await store.close()


def test_names_compare_without_width_or_spaces() -> None:
    assert normalize_name("杭州（样例）餐饮 有限公司") == normalize_name("杭州(样例)餐饮有限公司")
    assert normalize_name("ＡＢＣ科技有限公司") == normalize_name("abc科技有限公司")
    assert normalize_name("杭州样例餐饮有限公司") != normalize_name("杭州样例餐饮集团有限公司")


async def test_an_older_version_never_overwrites_a_newer_one(registry: EntityRegistry) -> None:
    new = entity(A, "新名称有限公司", "2026-06-15T14:00:00+08:00")
    old = entity(A, "旧名称有限公司", "2026-03-01T09:30:00+08:00")
    assert await registry.put([new]) == [new]
    assert await registry.put([old]) == []  # stale: arrived late
    got = await registry.get(A)
    assert got is not None and got.name == "新名称有限公司"
    # several versions in one page: the newest wins, whatever the order
    assert await registry.put(
        [entity(B, "乙", "2026-02-01T00:00:00Z"), entity(B, "甲", "2026-01-01T00:00:00Z")]
    )
    got = await registry.get(B)
    assert got is not None and got.name == "乙"
    # durable: the store's state table holds it (a new registry object on the same store)
    raw = await registry.store.get_state(SCOPE, A)
    assert raw is not None and RegisteredEntity.from_json(raw) == new


async def test_name_comparator_judges_records_against_the_registry(
    registry: EntityRegistry,
) -> None:
    await registry.put([entity(A, "杭州样例餐饮集团有限公司", "2026-06-15T14:00:00+08:00")])
    rec = sample_inspection(0)
    rec.update(counterpart_code=A, counterpart_name="杭州样例餐饮管理有限公司")
    mismatch = await registry.check_name("inspection", rec)
    assert mismatch is not None
    assert "counterpart_name '杭州样例餐饮管理有限公司'" in mismatch
    assert "杭州样例餐饮集团有限公司" in mismatch and A in mismatch
    rec["counterpart_name"] = "杭州样例餐饮集团有限公司 "
    assert await registry.check_name("inspection", rec) is None
    # a 双随机 result names its object with other fields
    result = {"object_uscc": A.lower(), "object_name": "别的公司"}
    assert "object_name '别的公司'" in (
        await registry.check_name("market_inspection_result", result) or ""
    )
    # not judged: a USCC the registry does not hold, a natural person, the registry's own feed
    assert (
        await registry.check_name(
            "inspection", {**rec, "counterpart_code": B, "counterpart_name": "x"}
        )
        is None
    )
    person = {**rec, "counterpart_code": make_id_card("330102", 3), "counterpart_name": "王伟"}
    assert await registry.check_name("inspection", person) is None
    assert await registry.check_name("market_entity", {"uscc": A, "name": "x"}) is None


async def test_active_comparator_refuses_unknown_and_deregistered_entities(
    registry: EntityRegistry,
) -> None:
    await registry.put(
        [
            entity(A, "甲有限公司", "2026-06-15T14:00:00+08:00"),
            entity(B, "乙有限公司", "2026-06-15T14:00:00+08:00", status="cancelled"),
        ]
    )
    assert (
        await registry.check_active("inspection", {"counterpart_code": A, "counterpart_name": "甲"})
        is None
    )
    gone = await registry.check_active("abnormal", {"uscc": B, "name": "乙有限公司"})
    assert gone is not None and "cancelled" in gone
    unknown = await registry.check_active(
        "inspection", {"counterpart_code": "91330102108077384H", "counterpart_name": "丙"}
    )
    assert unknown is not None and "not in the market entity registry" in unknown


async def test_an_unbound_registry_says_so() -> None:
    with pytest.raises(StateError) as exc:
        await EntityRegistry().check_name(
            "inspection", {"counterpart_code": A, "counterpart_name": "x"}
        )
    assert exc.value.code == "E_STATE" and exc.value.field == "market_registry"
