"""The market entity registry (市场主体名录) the hub keeps, and the governance comparators
(比对/校核) that check other systems' records against it.

Where it lives: every entity update from the platform is a ``market_entity`` message (deduped
by USCC, versioned by 变更时间, linked to its subject, so ``GET /v1/subjects/{uscc}`` lists the
entity's registration history next to the inspections and penalties of that subject). The
*current* state per USCC is reference data that must outlive message retention, so the feed
source also writes it to the store's durable state table (scope :data:`SCOPE`, one row per
USCC, the same table sources keep their cursors in, on every store: memory, SQLite,
PostgreSQL) after the page is committed and before the cursor moves. An older version never
overwrites a newer one.

Comparators (name them in a system's ``governance.<dataset>.compare``):

* ``market_name_matches_uscc`` — a record's 相对人名称 must be the registry's current name for
  its 统一社会信用代码 (full-width / half-width and spaces ignored). A USCC the registry does
  not hold is not judged (the registry may be partial; use the next rule for that);
* ``market_entity_active`` — the USCC must be registered and not 吊销 / 注销 / 撤销.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson

from contracts.validators import is_valid_uscc
from hub.errors import StateError
from hub.specs import ComparatorSpec

__all__ = [
    "CODE_NAME_FIELDS",
    "SCOPE",
    "EntityRegistry",
    "RegisteredEntity",
    "comparator_specs",
    "normalize_name",
]

#: the store state scope holding the registry (key: USCC)
SCOPE = "market.registry"

#: (code field, name field) pairs the comparators look for in a canonical record, in order
CODE_NAME_FIELDS: tuple[tuple[str, str], ...] = (
    ("counterpart_code", "counterpart_name"),  # inspection, penalty (行政相对人)
    ("object_uscc", "object_name"),  # 双随机 results
    ("uscc", "name"),  # 经营异常名录, other registries
    ("applicant_uscc", "applicant_name"),  # project approvals
)

#: 登记状态 values in which an entity may no longer act
_GONE = frozenset({"revoked", "cancelled", "annulled"})

#: datasets the comparators never judge (the registry's own feed)
_OWN = frozenset({"market_entity"})


def normalize_name(name: str) -> str:
    """A name as compared: NFKC (full-width letters, digits and brackets to half-width:
    ``（`` → ``(``), without any whitespace, upper-case Latin letters."""
    text = unicodedata.normalize("NFKC", name)
    return "".join(text.split()).upper()


@dataclass(frozen=True, slots=True)
class RegisteredEntity:
    """The registry's current state of one entity."""

    uscc: str
    name: str
    status: str
    legal_representative: str
    region_code: str
    changed_at: str

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> RegisteredEntity:
        doc = orjson.loads(text)
        return cls(**{k: str(doc[k]) for k in cls.__slots__})

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> RegisteredEntity:
        """From a canonical, validated ``market_entity`` record (JSON form)."""
        return cls(
            str(rec["uscc"]),
            str(rec["name"]),
            str(rec["status"]),
            str(rec["legal_representative"]),
            str(rec["region_code"]),
            str(rec["changed_at"]),
        )

    def newer_than(self, other: RegisteredEntity) -> bool:
        return _instant(self.changed_at) > _instant(other.changed_at)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class EntityRegistry:
    """The registry over one hub's store. Built unbound (comparators are registered before
    the store opens); the market plugin binds it in ``hub_startup``."""

    def __init__(self, store: Any = None) -> None:
        self.store = store

    def bind(self, store: Any) -> None:
        self.store = store

    def _store(self) -> Any:
        if self.store is None:
            raise StateError(
                "the market entity registry is not bound to a running hub (comparators "
                "market_* consult the hub's store; run them in a started hub)",
                field="market_registry",
            )
        return self.store

    async def get(self, uscc: str) -> RegisteredEntity | None:
        raw = await self._store().get_state(SCOPE, uscc.upper())
        return None if raw is None else RegisteredEntity.from_json(raw)

    async def put(self, entities: Iterable[RegisteredEntity]) -> list[RegisteredEntity]:
        """Keep each entity unless the registry holds a newer version; returns those written.
        Writes run concurrently, so the store commits them together (group commit)."""
        store = self._store()
        latest: dict[str, RegisteredEntity] = {}
        for e in entities:  # a page may hold several versions of one entity
            cur = latest.get(e.uscc)
            if cur is None or not cur.newer_than(e):
                latest[e.uscc] = e
        held = await asyncio.gather(*(self.get(u) for u in latest))
        fresh = [
            e
            for e, old in zip(latest.values(), held, strict=True)
            if not (old and old.newer_than(e))
        ]
        await asyncio.gather(*(store.put_state(SCOPE, e.uscc, e.to_json()) for e in fresh))
        return fresh

    # ------------------------------------------------------------------ comparators

    async def check_name(self, dataset: str, record: dict[str, Any]) -> str | None:
        """``market_name_matches_uscc``: the mismatch, or None."""
        found = _code_and_name(dataset, record)
        if found is None:
            return None
        code_field, code, name_field, name = found
        entity = await self.get(code)
        if entity is None:
            return None
        if normalize_name(name) == normalize_name(entity.name):
            return None
        return (
            f"{name_field} {name!r} is not the registered name of {code_field} {code} "
            f"(市场主体名录: {entity.name!r}, as of {entity.changed_at})"
        )

    async def check_active(self, dataset: str, record: dict[str, Any]) -> str | None:
        """``market_entity_active``: the mismatch, or None."""
        found = _code_and_name(dataset, record)
        if found is None:
            return None
        code_field, code, _, _ = found
        entity = await self.get(code)
        if entity is None:
            return f"{code_field} {code} is not in the market entity registry (市场主体名录)"
        if entity.status in _GONE:
            return (
                f"{code_field} {code} ({entity.name}) has 登记状态 {entity.status} "
                f"since {entity.changed_at}"
            )
        return None


def _code_and_name(dataset: str, record: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    """The first (code field, USCC, name field, name) the record holds; None when it holds
    no USCC (a natural person's ID number is not the registry's business)."""
    if dataset in _OWN:
        return None
    for code_field, name_field in CODE_NAME_FIELDS:
        code, name = record.get(code_field), record.get(name_field)
        if isinstance(code, str) and isinstance(name, str):
            code = code.strip().upper()
            if len(code) == 18 and is_valid_uscc(code):
                return code_field, code, name_field, name
            return None
    return None


def comparator_specs(registry: EntityRegistry) -> Sequence[ComparatorSpec]:
    """The comparators over ``registry``."""
    return [
        ComparatorSpec(
            "market_name_matches_uscc",
            registry.check_name,
            "相对人名称 matches the market entity registry's name for its USCC",
        ),
        ComparatorSpec(
            "market_entity_active",
            registry.check_active,
            "the USCC is registered and not 吊销/注销/撤销 in the market entity registry",
        ),
    ]
