"""The list registry (名单库) on every store: entries kept in the ledger per subject, versions
ordered by 数据更新时间 (a removal replaces the listing, an older version never wins), and the
status document computed from them."""

from __future__ import annotations

import datetime as dt

from adapters.credit.samples import sample_list_entry
from adapters.credit.status import ledger_entry, subject_status
from contracts.samples import make_uscc
from hub.store.base import Store

BOOK = "credit:lists"


async def test_entries_versions_and_status_on_every_store(store: Store) -> None:
    black = sample_list_entry(1)
    red = sample_list_entry(1, list_type="01") | {"entry_id": "MD-RED-1"}
    expired = sample_list_entry(1) | {"entry_id": "MD-OLD-1", "valid_until": "2026-11-21"}
    subject = black["subject_uscc"]
    assert await store.ledger_put([ledger_entry(BOOK, r, 1.0) for r in (black, red, expired)]) == 3
    doc = await subject_status(store, subject, dt.date(2026, 11, 25), book=BOOK)
    assert doc["listed"] and doc["advice"] == "punish"  # 惩戒 wins over 激励
    assert {a["entry_id"] for a in doc["active"]} == {black["entry_id"], "MD-RED-1"}
    assert [(h["entry_id"], h["inactive_because"]) for h in doc["history"]] == [
        ("MD-OLD-1", "expired")
    ]
    # the black-list entry is removed (信用修复) by a newer version
    removed = black | {
        "action": "2",
        "removed_on": "2026-11-24",
        "updated_at": "2026-11-24T09:00:00+08:00",
    }
    assert await store.ledger_put([ledger_entry(BOOK, removed, 2.0)]) == 1
    # the listing re-delivered late (an older version) changes nothing
    assert await store.ledger_put([ledger_entry(BOOK, black, 3.0)]) == 0
    doc = await subject_status(store, subject, dt.date(2026, 11, 25), book=BOOK)
    assert doc["advice"] == "reward" and [a["entry_id"] for a in doc["active"]] == ["MD-RED-1"]
    assert {h["entry_id"]: h["inactive_because"] for h in doc["history"]} == {
        black["entry_id"]: "removed",
        "MD-OLD-1": "expired",
    }
    # before the listing day nothing is active; another subject has nothing
    early = await subject_status(store, subject, dt.date(2026, 11, 19), book=BOOK)
    assert early["listed"] is False and early["advice"] == "none"
    nobody = make_uscc("91", "330102", 9)
    other = await subject_status(store, nobody, dt.date(2026, 11, 25), book=BOOK)
    assert other["active"] == other["history"] == []
