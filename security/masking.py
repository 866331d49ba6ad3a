"""Masking (脱敏) of personal values in output to callers who may not see them in clear.

A :class:`MaskRule` names a field path, a kind, and who may see the clear value (roles, or a
principal holding the ``reveal_grant``). :func:`mask_record` returns a copy of a record with
every other rule applied; it never changes its input.

Kinds and what they keep (the defaults follow common Chinese practice; DOMAIN.md gives no
GB/T 35273 example, so ``keep_start`` / ``keep_end`` can override them per rule):

==========  ====================================  =================================
kind        keeps                                 example
==========  ====================================  =================================
id_card     first 6 (region) and last 4           ``110105********002X``
phone       first 3 and last 4                    ``138****5678``
name        the surname (复姓 such as 欧阳 too)   ``张*``, ``欧阳**``
address     up to the county/district level       ``浙江省杭州市西湖区****``
partial     ``keep_start`` / ``keep_end``         —
full        nothing                               ``***``
==========  ====================================  =================================

Masks keep the length of what they hide (one ``*`` per character), except ``full``.
Non-string values are masked as ``***``. Paths use the field-encryption syntax
(``a.b``, ``list[].field``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from security.fieldcrypt import map_path, split_path
from security.roles import Principal, Role
from transforms.masking import COMPOUND_SURNAMES

__all__ = ["MaskKind", "MaskRule", "mask_record", "mask_value"]

MaskKind = Literal["id_card", "phone", "name", "address", "partial", "full"]

# Common two-character surnames (复姓): one list, shared with the mapping language's masks.
_COMPOUND_SURNAMES = COMPOUND_SURNAMES

# Province / prefecture / county levels of an address (GB/T 2260 naming), in order.
_ADDRESS_LEVELS = re.compile(
    r"^(?:.{2,8}?(?:省|自治区|特别行政区))?"
    r"(?:.{1,9}?(?:市|自治州|地区|盟))?"
    r"(?:.{1,9}?(?:区|县|市|旗|自治县|自治旗|林区|特区))?"
)


@dataclass(frozen=True, slots=True)
class MaskRule:
    """Mask ``path`` as ``kind`` unless the principal has a role in ``reveal_to`` or holds
    ``reveal_grant`` among its grants."""

    path: str
    kind: MaskKind
    reveal_to: frozenset[Role] = field(default_factory=frozenset)
    reveal_grant: str | None = None
    keep_start: int | None = None
    keep_end: int | None = None

    def reveals_to(self, principal: Principal | None) -> bool:
        if principal is None:
            return False
        if self.reveal_grant is not None and self.reveal_grant in principal.grants:
            return True
        return bool(self.reveal_to & principal.roles)


def _keep(text: str, start: int, end: int) -> str:
    if len(text) <= start + end:
        # too short to keep both ends and still hide something: keep less
        start = min(start, max(0, len(text) - 1) // 2)
        end = min(end, max(0, len(text) - 1 - start))
    hidden = len(text) - start - end
    return text[:start] + "*" * hidden + (text[len(text) - end :] if end else "")


def mask_value(
    value: Any, kind: MaskKind, *, keep_start: int | None = None, keep_end: int | None = None
) -> Any:
    """Mask one value (``None`` stays ``None``)."""
    if value is None:
        return None
    if not isinstance(value, str) or kind == "full":
        return "***"
    text = value.strip()
    if kind == "id_card":
        return _keep(
            text, 6 if keep_start is None else keep_start, 4 if keep_end is None else keep_end
        )
    if kind == "phone":
        return _keep(
            text, 3 if keep_start is None else keep_start, 4 if keep_end is None else keep_end
        )
    if kind == "name":
        if not text:
            return text
        n = 2 if text[:2] in _COMPOUND_SURNAMES and len(text) > 2 else 1
        return text[:n] + "*" * max(1, len(text) - n)
    if kind == "address":
        m = _ADDRESS_LEVELS.match(text)
        kept = m.group(0) if m else ""
        if not kept:  # no administrative level found: keep a third at most
            kept = text[: len(text) // 3]
        return kept + "*" * (len(text) - len(kept)) if len(kept) < len(text) else kept
    return _keep(text, keep_start or 0, keep_end or 0)  # partial


def mask_record(
    record: Mapping[str, Any], rules: Iterable[MaskRule], principal: Principal | None
) -> dict[str, Any]:
    """A copy of ``record`` with every rule not revealed to ``principal`` applied."""
    out: Any = dict(record)
    for rule in rules:
        if rule.reveals_to(principal):
            continue

        def fn(v: Any, r: MaskRule = rule) -> Any:
            return mask_value(v, r.kind, keep_start=r.keep_start, keep_end=r.keep_end)

        out = map_path(out, split_path(rule.path), fn)
    result: dict[str, Any] = out
    return result
