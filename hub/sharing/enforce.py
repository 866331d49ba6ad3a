"""Governed projection (受控访问): what a grant lets a query read, and nothing else.

Public interface::

    GrantScope(dataset, fields, row_filter=None, masks=(), valid_from=None, valid_until=None,
               grant_id="")                        # what a grant (授权) allows; row_filter
                                                   # may be given as text (parsed, E_FILTER)
        .active(now) -> bool                       # inside [valid_from, valid_until)
    plan_query(scope, *, fields=None, filter=None, sort=None, principal=None) -> Plan
        # FieldNotGranted (E_FIELD_NOT_GRANTED, 403) naming the first field, parameter and
        # path that asks for more than the grant; FilterError (E_FILTER); BadParameter (E_PARAM)
    Plan
        .fields: tuple[str, ...]       # output columns: requested ∩ granted, in request order
        .filter: Expr | None           # grant row filter AND request filter
        .sort: tuple[SortKey, ...]
        .matches(record) -> bool       # the combined row filter
        .project(record) -> dict       # whitelist projection, then masks (脱敏)
        .apply(record) -> dict | None  # matches + project
        .sort_key(key, record) -> tuple
        .fingerprint: str              # binds cursors to this dataset/grant/filter/sort
        .where_sql(dialect, column, stored_as) -> (sql, params) | None   # the filter as SQL
        .page(rows, limit, codec, cursor=None) -> Page(items, next_cursor)  # any sort, in memory
        async .apage(async_rows, limit, codec, cursor=None) -> Page  # the same, rows streamed
        .decode_cursor(codec, token) -> list   # [sort values..., key]; [key] with no sort
        .encode_cursor(codec, key, record) -> str
        .query_sql(dialect, column, stored_as, key_column="key", position=None) -> SqlQuery
            # one page in the store: .where (filter AND after position) + .params,
            # .order_by + .order_params giving exactly sort_key's order (any sort, keyset)
    parse_fields(text) -> tuple[str, ...]          # "a,b.c"        (E_PARAM)
    parse_sort(text) -> tuple[SortKey, ...]        # "-decided,id"  (E_PARAM)
    CursorCodec(secret).encode(fingerprint, position) / .decode(token, fingerprint)
        # opaque, HMAC-SHA256 tamper-evident; CursorError (E_CURSOR) on anything wrong

Rules that keep an ungranted value from leaving:

* Output is built by **copying granted paths** into a new dict (a whitelist), never by deleting
  ungranted ones from a copy. A granted ``a`` covers the whole of ``a``; a granted ``a.b``
  covers only ``a.b`` (asking for ``a`` is then refused).
* Every field the request names — in ``fields``, in ``filter`` and in ``sort`` — must be
  granted, else ``E_FIELD_NOT_GRANTED`` naming it. Unknown fields get the same answer, so a
  requester cannot probe the schema.
* A masked field (a mask rule not revealed to the principal) may be returned masked but not
  filtered or sorted on: ``id_card like '110105194912%'`` would read the clear value one
  character at a time.
* The grant's own row filter may read fields the requester does not see (e.g. a region code);
  it is applied on the server and never echoed.
* Validity (``valid_from`` / ``valid_until``) is checked by the caller with :meth:`active`
  (the workflow raises its own grant error); a plan does not outlive a request.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import heapq
import hmac
import re
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from hub.errors import BadParameter, HubError
from hub.sharing.filterlang import (
    Dialect,
    Expr,
    SqlBuilder,
    StoredAs,
    compile_predicate,
    conjoin,
    fields_of,
    parse,
    to_sql,
    unparse,
)
from security.fieldcrypt import split_path
from security.masking import MaskRule, mask_record, mask_value
from security.roles import Principal

__all__ = [
    "CursorCodec",
    "CursorError",
    "FieldNotGranted",
    "GrantScope",
    "Page",
    "Plan",
    "SortKey",
    "SqlQuery",
    "parse_fields",
    "parse_sort",
    "plan_query",
]

MAX_FIELDS = 200
MAX_SORT_KEYS = 5
MAX_PAGE = 1000
MAX_PARAM_LENGTH = 4096


class FieldNotGranted(HubError):
    """The request names a field (in ``fields``, ``filter`` or ``sort``) its grant does not
    cover, or filters / sorts on a masked field."""

    code = "E_FIELD_NOT_GRANTED"
    status = 403
    title = "Field not granted"


class CursorError(HubError):
    """A paging cursor that is malformed, altered, or made for another query."""

    code = "E_CURSOR"
    status = 400
    title = "Invalid cursor"


# --------------------------------------------------------------------------- paths

_SEGMENT = re.compile(r"[^\W\d]\w*|\d+")


def _check_path(path: str, param: str) -> str:
    path = path.strip()
    parts = path.split(".")
    if not path or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise BadParameter(
            f"{param}: {path!r} is not a field path (names joined by '.')", field=param
        )
    return path


def _check_length(text: str, param: str) -> None:
    if len(text) > MAX_PARAM_LENGTH:
        raise BadParameter(
            f"{param}: longer than {MAX_PARAM_LENGTH} characters ({len(text)})", field=param
        )


def _covered(path: str, granted: Iterable[str]) -> bool:
    """``path`` is ``g`` or lies under ``g`` for some granted ``g``."""
    return any(path == g or path.startswith(g + ".") for g in granted)


def _normalise(paths: Iterable[str]) -> tuple[str, ...]:
    """Drop duplicates and paths under another one, keep the first order."""
    out: list[str] = []
    for p in paths:
        if p not in out:
            out.append(p)
    return tuple(p for p in out if not any(p.startswith(q + ".") for q in out if q != p))


def parse_fields(text: str) -> tuple[str, ...]:
    """``"a, b.c"`` -> ``("a", "b.c")`` (``E_PARAM`` on an empty or malformed path)."""
    _check_length(text, "fields")
    items = text.split(",")
    if len(items) > MAX_FIELDS:
        raise BadParameter(f"fields: more than {MAX_FIELDS} fields", field="fields")
    return tuple(dict.fromkeys(_check_path(p, "fields") for p in items))


@dataclass(frozen=True, slots=True)
class SortKey:
    field: str
    descending: bool = False


def parse_sort(text: str) -> tuple[SortKey, ...]:
    """``"-decided,id"`` -> decided descending, then id ascending (``E_PARAM`` when malformed,
    repeated or more than :data:`MAX_SORT_KEYS`)."""
    _check_length(text, "sort")
    keys: list[SortKey] = []
    for item in text.split(","):
        item = item.strip()
        desc = item.startswith("-")
        name = _check_path(item[1:] if desc or item.startswith("+") else item, "sort")
        if any(k.field == name for k in keys):
            raise BadParameter(f"sort: {name!r} appears twice", field="sort")
        keys.append(SortKey(name, desc))
    if len(keys) > MAX_SORT_KEYS:
        raise BadParameter(f"sort: more than {MAX_SORT_KEYS} keys", field="sort")
    return tuple(keys)


# --------------------------------------------------------------------------- grant scope


@dataclass(frozen=True)
class GrantScope:
    """What one grant (授权) lets its holder read of ``dataset``."""

    dataset: str
    fields: tuple[str, ...]
    row_filter: Expr | None = None  # text is parsed (E_FILTER when invalid)
    masks: tuple[MaskRule, ...] = ()
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    grant_id: str = ""

    def __post_init__(self) -> None:
        if not self.fields:
            raise BadParameter("a grant must name at least one field", field="fields")
        for p in self.fields:
            _check_path(p, "fields")
        object.__setattr__(self, "fields", _normalise(self.fields))
        if isinstance(self.row_filter, str):  # stored grants keep the filter as text
            object.__setattr__(self, "row_filter", parse(self.row_filter))

    def active(self, now: dt.datetime) -> bool:
        """Whether the grant is in force at ``now`` (``valid_until`` is exclusive)."""
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_until is None or now < self.valid_until

    def masked_paths(self, principal: Principal | None) -> tuple[str, ...]:
        """Paths masked for ``principal`` (their ``[]`` list markers dropped)."""
        return tuple(
            ".".join(s for s in split_path(m.path) if s != "[]")
            for m in self.masks
            if not m.reveals_to(principal)
        )


# --------------------------------------------------------------------------- ordering


_RANK = {"null": 0, "bool": 1, "number": 2, "string": 3, "other": 4}


def _order_value(v: Any) -> tuple[int, Any]:
    """A total order over JSON values: missing/null < booleans < numbers < strings < objects
    and lists; :meth:`Plan.query_sql` orders the same way in SQL."""
    if v is None:
        return (0, 0)
    if isinstance(v, bool):
        return (1, v)
    if isinstance(v, int | float):
        return (2, v)
    if isinstance(v, str):
        return (3, v)
    return (4, 0)  # objects and lists are equal to each other (the record key decides)


class _Desc:
    """Reverses the order of what it wraps (descending sort keys of any type)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.v < self.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.v == other.v)

    def __hash__(self) -> int:
        return hash(self.v)


def _get(record: Mapping[str, Any], path: str) -> Any:
    node: Any = record
    for p in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(p)
    return node


# --------------------------------------------------------------------------- cursor


class CursorCodec:
    """Opaque, tamper-evident paging cursors: ``base64url(json) . base64url(hmac)``.

    The payload is ``{"v": 1, "q": fingerprint, "p": position}`` where ``position`` is the
    sort key of the last row served (values of granted, unmasked fields and the record key,
    nothing the requester could not see). The MAC (HMAC-SHA256 with the hub's secret) makes any
    change detectable; the fingerprint makes a cursor of one query useless for another."""

    VERSION = 1

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the cursor secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, b"jghub-cursor:v1\x00" + body, hashlib.sha256).digest()

    def encode(self, fingerprint: str, position: list[Any]) -> str:
        body = orjson.dumps({"v": self.VERSION, "q": fingerprint, "p": position})
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def decode(self, token: str, fingerprint: str) -> list[Any]:
        """The position in ``token``; ``CursorError`` when it is malformed, altered or was
        made for another query."""
        if not isinstance(token, str) or len(token) > 4096 or token.count(".") != 1:
            raise CursorError("the cursor is malformed", field="cursor")
        body_text, mac_text = token.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError:
            raise CursorError("the cursor is malformed", field="cursor") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise CursorError("the cursor was altered or is not from this hub", field="cursor")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise CursorError("the cursor is malformed", field="cursor") from None
        if not isinstance(doc, dict) or doc.get("v") != self.VERSION:
            raise CursorError("the cursor has an unknown version", field="cursor")
        if doc.get("q") != fingerprint:
            raise CursorError(
                "the cursor belongs to another query (dataset, grant, filter or sort differ)",
                field="cursor",
            )
        position = doc.get("p")
        if not isinstance(position, list):
            raise CursorError("the cursor is malformed", field="cursor")
        return position


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class Plan:
    """A checked query: build it with :func:`plan_query`, never directly."""

    scope: GrantScope
    fields: tuple[str, ...]
    filter: Expr | None
    sort: tuple[SortKey, ...] = ()
    principal: Principal | None = None
    _masks: tuple[MaskRule, ...] = field(default=(), repr=False)

    @cached_property
    def _predicate(self) -> Any:
        return compile_predicate(self.filter)

    @cached_property
    def _paths(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(p.split(".")) for p in self.fields)

    @cached_property
    def _flat(self) -> tuple[str, ...] | None:
        """The output keys when every field is top-level (the fast path), else ``None``."""
        return None if any(len(p) > 1 for p in self._paths) else tuple(p[0] for p in self._paths)

    @cached_property
    def _maskers(self) -> tuple[tuple[str | None, MaskRule], ...]:
        """Mask rules that apply to this principal and can touch the output: ``(key, rule)``
        with ``key`` set for a top-level field (masked in place), ``None`` for deeper paths."""
        out: list[tuple[str | None, MaskRule]] = []
        for rule in self._masks:
            if rule.reveals_to(self.principal):
                continue
            parts = split_path(rule.path)
            path = ".".join(s for s in parts if s != "[]")
            if not any(_covered(path, [f]) or f.startswith(path + ".") for f in self.fields):
                continue  # not in the output
            out.append((parts[0] if len(parts) == 1 else None, rule))
        return tuple(out)

    @cached_property
    def fingerprint(self) -> str:
        doc = {
            "dataset": self.scope.dataset,
            "grant": self.scope.grant_id,
            "filter": None if self.filter is None else unparse(self.filter),
            "sort": [[k.field, k.descending] for k in self.sort],
        }
        return hashlib.sha256(orjson.dumps(doc)).hexdigest()[:32]

    def matches(self, record: Mapping[str, Any]) -> bool:
        """The grant's row filter AND the request's filter."""
        return bool(self._predicate(record))

    def project(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A new dict holding only :attr:`fields` (absent ones are left out), masked."""
        out: dict[str, Any] = {}
        flat = self._flat
        if flat is not None:
            for k in flat:
                if k in record:
                    out[k] = record[k]
        else:
            for parts in self._paths:
                node: Any = record
                for p in parts:
                    if not isinstance(node, Mapping) or p not in node:
                        break
                    node = node[p]
                else:
                    target = out
                    for p in parts[:-1]:
                        nxt = target.get(p)
                        if not isinstance(nxt, dict):
                            nxt = target[p] = {}
                        target = nxt
                    target[parts[-1]] = node
        for key, rule in self._maskers:
            if key is not None:
                if key in out:
                    out[key] = mask_value(
                        out[key], rule.kind, keep_start=rule.keep_start, keep_end=rule.keep_end
                    )
            else:
                out = mask_record(out, (rule,), self.principal)
        return out

    def apply(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """The projected record when it passes the row filter, else ``None``."""
        return self.project(record) if self._predicate(record) else None

    def sort_key(self, key: str, record: Mapping[str, Any]) -> tuple[Any, ...]:
        """Order of a row: the sort fields, then the record key (unique, so the order is
        total and keyset paging never skips or repeats a row)."""
        parts: list[Any] = []
        for k in self.sort:
            v = _order_value(_get(record, k.field))
            parts.append(_Desc(v) if k.descending else v)
        parts.append(key)
        return tuple(parts)

    def _position(self, key: str, record: Mapping[str, Any]) -> list[Any]:
        return [*(_get(record, k.field) for k in self.sort), key]

    def _key_of_position(self, position: list[Any]) -> tuple[Any, ...]:
        if len(position) != len(self.sort) + 1 or not isinstance(position[-1], str):
            raise CursorError("the cursor does not fit this query", field="cursor")
        parts: list[Any] = []
        for k, v in zip(self.sort, position, strict=False):
            ov = _order_value(v)
            parts.append(_Desc(ov) if k.descending else ov)
        parts.append(position[-1])
        return tuple(parts)

    def where_sql(
        self, dialect: Dialect = "sqlite", column: str = "payload", stored_as: StoredAs = "json"
    ) -> tuple[str, list[Any]] | None:
        """The combined row filter as a SQL condition with bound parameters (``None`` when
        there is no filter). The store may pre-select with it; :meth:`apply` stays the
        authority (records are checked again in Python)."""
        if self.filter is None:
            return None
        return to_sql(self.filter, dialect, column, stored_as)

    def query_sql(
        self,
        dialect: Dialect = "sqlite",
        column: str = "payload",
        stored_as: StoredAs = "json",
        *,
        key_column: str = "key",
        position: list[Any] | None = None,
    ) -> SqlQuery:
        """SQL for one page of this query in the store: the combined filter AND "after
        ``position``" (from :meth:`decode_cursor`), and an ORDER BY giving exactly
        :meth:`sort_key`'s order (the sort fields by type rank then value, then the key)::

            q = plan.query_sql("sqlite", "payload", "bytes", position=pos)
            sql = (f"SELECT key, payload FROM records WHERE dataset = ? AND {q.where} "
                   f"ORDER BY {q.order_by} LIMIT ?")
            rows = db.execute(sql, [dataset, *q.params, *q.order_params, limit + 1])

        Fetch one row more than the page to know whether another page follows."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?", key_column):
            raise ValueError(f"unsafe column name {key_column!r}")
        w = SqlBuilder(dialect, column, stored_as)
        conds: list[str] = []
        if self.filter is not None:
            conds.append(w.sql(self.filter))
        if position is not None:
            self._key_of_position(position)  # the right shape
            conds.append(_seek(w, self.sort, position, key_column))
        where = " AND ".join(conds) if conds else ("TRUE" if w.pg else "1")
        o = SqlBuilder(dialect, column, stored_as)
        order: list[str] = []
        for k in self.sort:
            direction = " DESC" if k.descending else ""
            order += [e + direction for e in _order_exprs(o, k.field)]
        order.append(key_column)
        return SqlQuery(where, w.params, ", ".join(order), o.params)

    def decode_cursor(self, codec: CursorCodec, token: str) -> list[Any]:
        """The position in a cursor of this query: the last row's sort values, then its key
        (``E_CURSOR`` when altered or from another query). With no ``sort`` it is ``[key]``,
        so a store pages in key order with ``WHERE key > ? ORDER BY key LIMIT n``."""
        position = codec.decode(token, self.fingerprint)
        self._key_of_position(position)  # the right shape for this query
        return position

    def encode_cursor(self, codec: CursorCodec, key: str, record: Mapping[str, Any]) -> str:
        """The cursor that continues after the row ``(key, record)`` (the last one served)."""
        return codec.encode(self.fingerprint, self._position(key, record))

    def page(
        self,
        rows: Iterable[tuple[str, Mapping[str, Any]]],
        limit: int,
        codec: CursorCodec,
        cursor: str | None = None,
    ) -> Page:
        """One page of ``(key, record)`` rows in :meth:`sort_key` order after ``cursor``.

        ``rows`` may come in any order and is read once; memory stays bounded by ``limit``
        (a heap keeps the ``limit + 1`` smallest rows), so a store can stream the whole
        dataset through it."""
        top = _TopRows(self, limit, codec, cursor)
        for key, record in rows:
            top.offer(key, record)
        return top.page()

    async def apage(
        self,
        rows: AsyncIterable[tuple[str, Mapping[str, Any]]],
        limit: int,
        codec: CursorCodec,
        cursor: str | None = None,
    ) -> Page:
        """:meth:`page` over an async iterable (a store read in batches): never more than
        ``limit + 1`` rows held, however many the dataset has."""
        top = _TopRows(self, limit, codec, cursor)
        async for key, record in rows:
            top.offer(key, record)
        return top.page()


class _TopRows:
    """The ``limit + 1`` first rows in a plan's order after a cursor, kept in a bounded
    max-heap (its top is the last row kept, pushed out by any row that sorts before it)."""

    def __init__(self, plan: Plan, limit: int, codec: CursorCodec, cursor: str | None) -> None:
        if not 1 <= limit <= MAX_PAGE:
            raise BadParameter(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        self.plan = plan
        self.limit = limit
        self.codec = codec
        self.after = None
        if cursor is not None:
            self.after = plan._key_of_position(codec.decode(cursor, plan.fingerprint))
        self.heap: list[tuple[_Desc, str, Mapping[str, Any]]] = []

    def offer(self, key: str, record: Mapping[str, Any]) -> None:
        plan = self.plan
        if not plan._predicate(record):
            return
        sk = plan.sort_key(key, record)
        if self.after is not None and not self.after < sk:
            return
        item = (_Desc(sk), key, record)
        if len(self.heap) <= self.limit:
            heapq.heappush(self.heap, item)
        elif sk < self.heap[0][0].v:
            heapq.heapreplace(self.heap, item)

    def page(self) -> Page:
        best = sorted(self.heap, key=lambda t: t[0].v)
        more = len(best) > self.limit
        best = best[: self.limit]
        items = [self.plan.project(record) for _, _, record in best]
        next_cursor = None
        if more and best:
            _, key, record = best[-1]
            next_cursor = self.codec.encode(self.plan.fingerprint, self.plan._position(key, record))
        return Page(items, next_cursor)


@dataclass(frozen=True, slots=True)
class SqlQuery:
    """The WHERE condition and ORDER BY list of one page (see :meth:`Plan.query_sql`)."""

    where: str
    params: list[Any]
    order_by: str
    order_params: list[Any]


def _rank_expr(b: SqlBuilder, field: str) -> str:
    t = b.jtype(field)
    if b.pg:
        cases = "WHEN 'boolean' THEN 1 WHEN 'number' THEN 2 WHEN 'string' THEN 3"
        return f"(CASE {t} {cases} WHEN 'object' THEN 4 WHEN 'array' THEN 4 ELSE 0 END)"
    cases = "WHEN 'true' THEN 1 WHEN 'false' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2"
    return (
        f"(CASE {t} {cases} WHEN 'text' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 4 ELSE 0 END)"
    )


def _num_expr(b: SqlBuilder, field: str) -> str:
    """PostgreSQL: numbers, and booleans as 0/1 (ranks 1 and 2); NULL otherwise."""
    t = b.jtype(field)
    v1 = f"({b.col} #>> {b.bind(field.split('.'))})"
    v2 = f"({b.col} #>> {b.bind(field.split('.'))})"
    return (
        f"(CASE {t} WHEN 'number' THEN {v1}::numeric "
        f"WHEN 'boolean' THEN CASE WHEN {v2} = 'true' THEN 1 ELSE 0 END END)"
    )


def _txt_expr(b: SqlBuilder, field: str) -> str:
    """PostgreSQL: strings in code-point order (rank 3); NULL otherwise."""
    t = b.jtype(field)
    return (
        f"(CASE WHEN {t} = 'string' THEN {b.col} #>> {b.bind(field.split('.'))} END) COLLATE \"C\""
    )


def _val_expr(b: SqlBuilder, field: str) -> str:
    """SQLite: booleans as 0/1, numbers, text (ranks 1-3); NULL for objects and lists."""
    t = b.jtype(field)
    return f"(CASE WHEN {t} IN ('object', 'array') THEN NULL ELSE {b.text(field)} END)"


def _order_exprs(b: SqlBuilder, field: str) -> list[str]:
    if b.pg:
        return [_rank_expr(b, field), _num_expr(b, field), _txt_expr(b, field)]
    return [_rank_expr(b, field), _val_expr(b, field)]


def _seek(b: SqlBuilder, sort: tuple[SortKey, ...], position: list[Any], key_column: str) -> str:
    """Rows strictly after ``position`` in sort order, as nested OR/AND (parameters bound in
    text order)."""

    def after(i: int) -> str:
        if i == len(sort):
            return f"{key_column} > {b.bind(position[-1])}"
        k, v = sort[i], position[i]
        gt = "<" if k.descending else ">"
        rank, value = _order_value(v)
        rank_sql = _rank_expr(b, k.field)
        head = f"({rank_sql} {gt} {b.bind(rank)} OR ({_rank_expr(b, k.field)} = {b.bind(rank)} AND "
        if rank in (0, 4):
            return head + f"{after(i + 1)}))"
        if b.pg:
            expr = _txt_expr if rank == 3 else _num_expr
            lit = value if rank == 3 else int(value) if rank == 1 else repr(value)
            cast = "" if rank == 3 else "::numeric"
            x1 = expr(b, k.field)
            p1 = b.bind(lit)
            x2 = expr(b, k.field)
            p2 = b.bind(lit)
            cmp = f"({x1} {gt} {p1}{cast} OR ({x2} = {p2}{cast} AND {after(i + 1)}))"
        else:
            lit = int(value) if rank == 1 else value
            x1 = _val_expr(b, k.field)
            p1 = b.bind(lit)
            x2 = _val_expr(b, k.field)
            p2 = b.bind(lit)
            cmp = f"({x1} {gt} {p1} OR ({x2} = {p2} AND {after(i + 1)}))"
        return head + cmp + "))"

    return after(0)


def _refuse(path: str, param: str, why: str) -> FieldNotGranted:
    return FieldNotGranted(f"{param}: {why} {path!r}", field=param, path=path)


def plan_query(
    scope: GrantScope,
    *,
    fields: str | Iterable[str] | None = None,
    filter: str | Expr | None = None,
    sort: str | Iterable[SortKey] | None = None,
    principal: Principal | None = None,
) -> Plan:
    """Check a request against ``scope`` and build its :class:`Plan`.

    ``fields`` (default: every granted field), ``filter`` and ``sort`` may be the raw query
    parameters or already parsed. Any named field outside the grant, or a filter/sort on a
    masked field, raises :class:`FieldNotGranted` naming the parameter and the path."""
    granted = scope.fields
    if fields is None or fields == "":
        wanted = granted
    else:
        wanted = parse_fields(fields) if isinstance(fields, str) else tuple(fields)
        for p in wanted:
            _check_path(p, "fields")
            if not _covered(p, granted):
                raise _refuse(p, "fields", "the grant does not cover field")
        wanted = _normalise(wanted)
    request_filter = parse(filter) if isinstance(filter, str) else filter
    keys = (
        ()
        if sort is None or sort == ""
        else parse_sort(sort)
        if isinstance(sort, str)
        else tuple(sort)
    )
    masked = scope.masked_paths(principal)

    def readable(p: str, param: str) -> None:
        if not _covered(p, granted):
            raise _refuse(p, param, "the grant does not cover field")
        if any(p == m or p.startswith(m + ".") or m.startswith(p + ".") for m in masked):
            raise _refuse(p, param, "masked (脱敏) fields cannot be filtered or sorted on:")

    for p in sorted(fields_of(request_filter)):
        readable(p, "filter")
    for k in keys:
        readable(k.field, "sort")
    return Plan(
        scope=scope,
        fields=wanted,
        filter=conjoin(scope.row_filter, request_filter),
        sort=keys,
        principal=principal,
        _masks=scope.masks,
    )
