"""The row-filter language (行过滤表达式) of governed access: parsed to an AST, never eval'd.

Public interface::

    parse(text: str) -> Expr                     # FilterError (E_FILTER, field="filter")
    unparse(expr: Expr) -> str                   # canonical text; parse(unparse(e)) == e
    fields_of(expr: Expr) -> set[str]            # every field path the expression reads
    compile_predicate(expr) -> Callable[[Mapping[str, Any]], bool]
    evaluate(expr, record: Mapping[str, Any]) -> bool
    conjoin(a: Expr | None, b: Expr | None) -> Expr | None   # a AND b (None = no filter)
    to_sql(expr, dialect="sqlite"|"postgres", column="payload", stored_as="json"|"text"|"bytes")
        -> (sql, params)                         # same rows as evaluate; all values bound
    Expr = Compare | In | Like | IsNull | And | Or | Not   (frozen dataclasses)

Syntax (keywords are case-insensitive)::

    status = 'open' and (amount >= 100 or region in ('330100', '330200'))
    not name like '张%'   and   closed_at is null   and   decided < date '2026-01-01'
    owner.region != '330100'   and   "date" is not null     -- a keyword as a field: quote it

* fields: dotted paths of names (letters incl. Chinese, digits, ``_``), a segment may be
  double-quoted (``"from".x``); ``a.b`` reads ``record["a"]["b"]``;
* literals: ``'text'`` (``''`` is a quote), numbers (``12``, ``-3.5``, ``1e3``), ``true`` /
  ``false``, ``date '2026-01-31'`` (checked as an ISO date, then compared as text, which orders
  ISO dates and date-times correctly);
* operators: ``= != < <= > >=``, ``in (...)``, ``not in (...)``, ``like`` / ``not like``
  (``%`` any run, ``_`` one character, ``\\`` escapes them), ``is null`` / ``is not null``,
  ``and``, ``or``, ``not``, parentheses.

Semantics are two-valued and typed, so the Python predicate and the SQL agree exactly:

* ``f = v`` holds when ``f`` holds a value of ``v``'s type equal to ``v`` (numbers compare as
  numbers; ``true`` is not ``1``; a missing field or JSON null equals nothing);
* ``< <= > >=`` hold only between two strings (code-point order) or two numbers;
* ``f != v`` is ``f is not null and not (f = v)``; ``f not in (...)`` and ``not like`` alike;
* ``like`` holds only for string values; ``is null`` holds for a missing field or JSON null.

Hostile input is refused with ``E_FILTER`` before it can cost anything: at most
:data:`MAX_LENGTH` characters, :data:`MAX_DEPTH` levels of nesting and :data:`MAX_NODES` nodes
(list items count); the parser counts its own depth, so no input reaches Python's recursion
limit. Values never become SQL text: :func:`to_sql` binds every literal and field path.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from hub.errors import HubError

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NODES",
    "And",
    "Compare",
    "Dialect",
    "Expr",
    "FilterError",
    "In",
    "IsNull",
    "Like",
    "Not",
    "Or",
    "SqlBuilder",
    "StoredAs",
    "Value",
    "compile_predicate",
    "conjoin",
    "evaluate",
    "fields_of",
    "like_matcher",
    "parse",
    "to_sql",
    "unparse",
]

MAX_LENGTH = 4096
MAX_DEPTH = 32
MAX_NODES = 256


class FilterError(HubError):
    """A filter expression that does not parse or is too large (position and token named)."""

    code = "E_FILTER"
    status = 400
    title = "Invalid filter"


# --------------------------------------------------------------------------- AST

Value: TypeAlias = str | int | float | bool
CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: CompareOp
    value: Value


@dataclass(frozen=True, slots=True)
class In:
    field: str
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Like:
    field: str
    pattern: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    field: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


Expr: TypeAlias = Compare | In | Like | IsNull | And | Or | Not


# --------------------------------------------------------------------------- tokenizer

_KEYWORDS = frozenset({"and", "or", "not", "in", "like", "is", "null", "true", "false", "date"})
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<qname>"[^".\x00-\x1f]+")
  | (?P<name>[^\W\d]\w*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.])
    """,
    re.VERBOSE,
)
_NUMBER_AFTER = re.compile(r"[\w'\"]")


def _short(text: str, limit: int = 40) -> str:
    """A token as quoted in an error: long ones are cut (the message stays readable)."""
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # string number name qname kw op punct end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] == "'":
                raise FilterError(
                    f"unterminated string starting at position {pos}", field="filter", position=pos
                )
            raise FilterError(
                f"unexpected character {text[pos]!r} at position {pos}",
                field="filter",
                position=pos,
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "name" and word.lower() in _KEYWORDS:
                kind, word = "kw", word.lower()
            elif kind == "number" and _NUMBER_AFTER.match(text, m.end()):
                raise FilterError(
                    f"unexpected {_short(text[pos : m.end() + 1])!r} at position {pos}",
                    field="filter",
                    position=pos,
                )
            out.append(_Tok(kind, word, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.nodes = 0

    # -- helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _fail(self, expected: str) -> FilterError:
        t = self.tok
        near = "the end of the filter" if t.kind == "end" else repr(_short(t.text))
        return FilterError(
            f"expected {expected} at position {t.pos}, found {near}",
            field="filter",
            position=t.pos,
            token=_short(t.text),
        )

    def _is(self, kind: str, text: str | None = None) -> bool:
        t = self.tok
        return t.kind == kind and (text is None or t.text == text)

    def _take(self, kind: str, text: str | None = None) -> _Tok | None:
        if self._is(kind, text):
            t = self.tok
            self.i += 1
            return t
        return None

    def _count(self, n: int = 1) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise FilterError(
                f"the filter has more than {MAX_NODES} terms (near position {self.tok.pos})",
                field="filter",
                position=self.tok.pos,
            )

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(
                f"the filter nests deeper than {MAX_DEPTH} levels (at position {self.tok.pos})",
                field="filter",
                position=self.tok.pos,
            )

    # -- grammar
    def parse(self) -> Expr:
        e = self._or()
        if not self._is("end"):
            raise self._fail("'and', 'or' or the end of the filter")
        return e

    def _or(self) -> Expr:
        items = [self._and()]
        while self._take("kw", "or"):
            self._count()
            items.append(self._and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self) -> Expr:
        items = [self._not()]
        while self._take("kw", "and"):
            self._count()
            items.append(self._not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _not(self) -> Expr:
        if self._take("kw", "not"):
            self._count()
            self._enter()
            inner = self._not()
            self.depth -= 1
            return Not(inner)
        return self._primary()

    def _primary(self) -> Expr:
        if self._take("punct", "("):
            self._enter()
            e = self._or()
            self.depth -= 1
            if not self._take("punct", ")"):
                raise self._fail("')'")
            return e
        self._count()
        field = self._field()
        if self._take("kw", "is"):
            negated = self._take("kw", "not") is not None
            if not self._take("kw", "null"):
                raise self._fail("'null'")
            return IsNull(field, negated)
        negated = self._take("kw", "not") is not None
        if self._take("kw", "in"):
            return In(field, self._list(), negated)
        if self._take("kw", "like"):
            t = self._take("string")
            if t is None:
                raise self._fail("a quoted pattern after 'like'")
            return Like(field, _unquote(t.text), negated)
        if negated:
            raise self._fail("'in' or 'like' after 'not'")
        t = self._take("op")
        if t is None:
            raise self._fail("an operator (=, !=, <, <=, >, >=, in, like, is)")
        op: CompareOp = "!=" if t.text == "<>" else t.text  # type: ignore[assignment]
        value = self._literal()
        if isinstance(value, bool) and op not in ("=", "!="):
            raise FilterError(
                f"{op} cannot compare with {str(value).lower()} at position {t.pos}",
                field="filter",
                position=t.pos,
                token=_short(t.text),
            )
        return Compare(field, op, value)

    def _field(self) -> str:
        parts: list[str] = []
        while True:
            t = self._take("name") or self._take("qname")
            if t is None:
                raise self._fail("a field name" if not parts else "a field name after '.'")
            parts.append(t.text[1:-1] if t.kind == "qname" else t.text)
            if not self._take("punct", "."):
                return ".".join(parts)

    def _list(self) -> tuple[Value, ...]:
        if not self._take("punct", "("):
            raise self._fail("'(' after 'in'")
        values = [self._literal()]
        while self._take("punct", ","):
            self._count()
            values.append(self._literal())
        if not self._take("punct", ")"):
            raise self._fail("',' or ')'")
        return tuple(values)

    def _literal(self) -> Value:
        t = self.tok
        if self._take("string"):
            return _unquote(t.text)
        if self._take("number"):
            return _number(t.text, t.pos)
        if self._take("kw", "true"):
            return True
        if self._take("kw", "false"):
            return False
        if self._take("kw", "date"):
            s = self._take("string")
            if s is None:
                raise self._fail("a quoted date after 'date'")
            text = _unquote(s.text)
            try:
                (dt.datetime if "T" in text or " " in text else dt.date).fromisoformat(text)
            except ValueError:
                raise FilterError(
                    f"{_short(text)!r} at position {s.pos} is not an ISO date (YYYY-MM-DD)",
                    field="filter",
                    position=s.pos,
                    token=_short(s.text),
                ) from None
            return text
        raise self._fail("a value ('text', a number, true, false or date '...')")


def _unquote(text: str) -> str:
    return text[1:-1].replace("''", "'")


def _number(text: str, pos: int) -> int | float:
    if re.fullmatch(r"-?\d+", text):
        if len(text) > 30:
            raise FilterError(
                f"the number at position {pos} has too many digits",
                field="filter",
                position=pos,
                token=_short(text),
            )
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise FilterError(
            f"the number {text} at position {pos} is out of range",
            field="filter",
            position=pos,
            token=_short(text),
        )
    return value


def parse(text: str) -> Expr:
    """Parse a filter expression; raise :class:`FilterError` (``E_FILTER``) naming the
    position and the token where it goes wrong."""
    if not isinstance(text, str):
        raise FilterError("the filter must be text", field="filter")
    if len(text) > MAX_LENGTH:
        raise FilterError(
            f"the filter is longer than {MAX_LENGTH} characters ({len(text)})",
            field="filter",
            position=MAX_LENGTH,
        )
    if "\x00" in text:
        pos = text.index("\x00")
        raise FilterError(f"NUL character at position {pos}", field="filter", position=pos)
    if not text.strip():
        raise FilterError("the filter is empty", field="filter", position=0)
    return _Parser(text).parse()


# --------------------------------------------------------------------------- tools


def _walk_fields(e: Expr, out: set[str]) -> None:
    if isinstance(e, And | Or):
        for item in e.items:
            _walk_fields(item, out)
    elif isinstance(e, Not):
        _walk_fields(e.item, out)
    else:
        out.add(e.field)


def fields_of(expr: Expr | None) -> set[str]:
    """Every field path the expression reads (empty for ``None``)."""
    out: set[str] = set()
    if expr is not None:
        _walk_fields(expr, out)
    return out


def conjoin(a: Expr | None, b: Expr | None) -> Expr | None:
    """``a AND b``; ``None`` stands for "no filter" (true). Nested ANDs are flattened."""
    if a is None:
        return b
    if b is None:
        return a
    items = (*(a.items if isinstance(a, And) else (a,)), *(b.items if isinstance(b, And) else (b,)))
    return And(items)


_NAME = re.compile(r"[^\W\d]\w*")


def _field_text(path: str) -> str:
    return ".".join(
        s if _NAME.fullmatch(s) and s.lower() not in _KEYWORDS else f'"{s}"'
        for s in path.split(".")
    )


def _value_text(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def unparse(expr: Expr) -> str:
    """Canonical text of ``expr`` (fully parenthesised where it matters):
    ``parse(unparse(e)) == e`` for every expression :func:`parse` can return."""
    if isinstance(expr, And | Or):
        word = " and " if isinstance(expr, And) else " or "
        return word.join(
            f"({unparse(i)})" if isinstance(i, And | Or) else unparse(i) for i in expr.items
        )
    if isinstance(expr, Not):
        inner = unparse(expr.item)
        return f"not ({inner})" if isinstance(expr.item, And | Or) else f"not {inner}"
    f = _field_text(expr.field)
    if isinstance(expr, Compare):
        return f"{f} {expr.op} {_value_text(expr.value)}"
    neg = "not " if expr.negated else ""
    if isinstance(expr, In):
        return f"{f} {neg}in ({', '.join(_value_text(v) for v in expr.values)})"
    if isinstance(expr, Like):
        return f"{f} {neg}like {_value_text(expr.pattern)}"
    return f"{f} is {neg}null"


# --------------------------------------------------------------------------- evaluation

_MISSING = object()


def _getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]
        return lambda r: r.get(key, _MISSING)

    def get(r: Mapping[str, Any]) -> Any:
        node: Any = r
        for p in parts:
            if not isinstance(node, Mapping):
                return _MISSING
            node = node.get(p, _MISSING)
            if node is _MISSING:
                return _MISSING
        return node

    return get


def _kind(v: Any) -> str:
    """Type class of a JSON value for typed comparison."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "other"


def _typed_eq(v: Any, lit: Value) -> bool:
    return _kind(v) == _kind(lit) and v == lit


def like_matcher(pattern: str) -> Callable[[str], bool]:
    """A test of whole strings against a ``like`` pattern (``%`` any run, ``_`` one character,
    ``\\`` escapes the next character; a trailing ``\\`` is itself).

    No backtracking regular expression: the pattern is cut at each ``%`` into fixed-length
    segments; the first must match at the start, the last at the end, and the others are
    found left to right, each at its leftmost place (which is optimal for fixed-length
    segments). Time is linear in the value for each segment, so a hostile pattern such as
    ``%a%a%a%a…b`` cannot make a record take exponential time."""
    segments: list[list[str | None]] = [[]]  # None stands for "_"
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            segments[-1].append(pattern[i + 1])
            i += 2
            continue
        if c == "%":
            segments.append([])
        else:
            segments[-1].append(None if c == "_" else c)
        i += 1
    rx = [
        re.compile("".join("." if t is None else re.escape(t) for t in seg), re.DOTALL)
        for seg in segments
    ]
    if len(rx) == 1:
        only = rx[0]
        return lambda v: only.fullmatch(v) is not None
    first, middle, last = rx[0], rx[1:-1], rx[-1]
    last_len = len(segments[-1])

    def match(v: str) -> bool:
        end = len(v) - last_len
        if end < 0:
            return False
        m = first.match(v, 0, end)
        if m is None:
            return False
        pos = m.end()
        for seg in middle:
            found = seg.search(v, pos, end)
            if found is None:
                return False
            pos = found.end()
        return last.match(v, end) is not None

    return match


def _present(v: Any) -> bool:
    return v is not _MISSING and v is not None


def compile_predicate(expr: Expr | None) -> Callable[[Mapping[str, Any]], bool]:
    """Compile ``expr`` once into a closure over a record (``None`` accepts everything)."""
    if expr is None:
        return lambda r: True
    return _compile(expr)


def _compile(e: Expr) -> Callable[[Mapping[str, Any]], bool]:
    if isinstance(e, And):
        parts = [_compile(i) for i in e.items]
        return lambda r: all(p(r) for p in parts)
    if isinstance(e, Or):
        parts = [_compile(i) for i in e.items]
        return lambda r: any(p(r) for p in parts)
    if isinstance(e, Not):
        inner = _compile(e.item)
        return lambda r: not inner(r)
    get = _getter(e.field)
    if isinstance(e, IsNull):
        if e.negated:
            return lambda r: _present(get(r))
        return lambda r: not _present(get(r))
    if isinstance(e, Like):
        like = like_matcher(e.pattern)
        if e.negated:
            return lambda r: _present(v := get(r)) and not (isinstance(v, str) and like(v))
        return lambda r: isinstance(v := get(r), str) and like(v)
    if isinstance(e, In):
        lits = e.values
        if e.negated:
            return lambda r: _present(v := get(r)) and not any(_typed_eq(v, x) for x in lits)
        return lambda r: any(_typed_eq(get(r), x) for x in lits)
    lit, kind = e.value, _kind(e.value)
    # specialised per literal type: these closures run once per record
    same: Callable[[Any], bool]
    if kind == "string":
        same = _is_str
    elif kind == "number":
        same = _is_number
    else:
        same = _is_bool
    if e.op == "=":
        return lambda r: same(v := get(r)) and v == lit
    if e.op == "!=":
        return lambda r: _present(v := get(r)) and not (same(v) and v == lit)
    if e.op == "<":
        return lambda r: same(v := get(r)) and v < lit  # type: ignore[operator]
    if e.op == "<=":
        return lambda r: same(v := get(r)) and v <= lit  # type: ignore[operator]
    if e.op == ">":
        return lambda r: same(v := get(r)) and v > lit  # type: ignore[operator]
    return lambda r: same(v := get(r)) and v >= lit  # type: ignore[operator]


_NUMBER_TYPES = (int, float)


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_number(v: Any) -> bool:
    return type(v) in _NUMBER_TYPES


def _is_bool(v: Any) -> bool:
    return type(v) is bool


def evaluate(expr: Expr | None, record: Mapping[str, Any]) -> bool:
    """Whether ``record`` satisfies ``expr`` (compile once with :func:`compile_predicate` to
    test many records)."""
    return compile_predicate(expr)(record)


# --------------------------------------------------------------------------- SQL

Dialect = Literal["sqlite", "postgres"]


def _sqlite_path(field: str) -> str:
    return "$" + "".join(f'."{p}"' for p in field.split("."))


def _like_glob(pattern: str) -> str:
    """A ``like`` pattern as a case-sensitive SQLite GLOB pattern with the same meaning."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            c = pattern[i + 1]
            out.append(f"[{c}]" if c in "*?[" else c)
            i += 2
            continue
        if c == "%":
            out.append("*")
        elif c == "_":
            out.append("?")
        elif c in "*?[":
            out.append(f"[{c}]")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _like_pg(pattern: str) -> str:
    """A ``like`` pattern for PostgreSQL ``LIKE ... ESCAPE '\\'`` (a trailing lone ``\\`` is a
    literal backslash, as in :func:`like_matcher`)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1] if i + 1 < len(pattern) else "\\"
            out.append("\\" + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


StoredAs = Literal["json", "text", "bytes"]


def _plain_text(v: Value) -> bool:
    """A string SQLite's ``json_extract`` can only equal when the JSON value is that string:
    it returns numbers and booleans as numbers (never equal to text without affinity) and
    objects and arrays as their JSON text (which starts with ``{`` or ``[``)."""
    return isinstance(v, str) and not v.startswith(("{", "["))


class SqlBuilder:
    """Builds SQL over a JSON column with bound parameters, collected in text order (used by
    :func:`to_sql` and by :meth:`hub.sharing.enforce.Plan.query_sql`)."""

    def __init__(self, dialect: Dialect, column: str, stored_as: StoredAs) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?", column):
            raise ValueError(f"unsafe column name {column!r}")
        if stored_as not in ("json", "text", "bytes"):
            raise ValueError(f"unknown column storage {stored_as!r}")
        self.pg = dialect == "postgres"
        if self.pg:
            self.col = {
                "json": column,
                "text": f"({column})::jsonb",
                "bytes": f"convert_from({column}, 'UTF8')::jsonb",
            }[stored_as]
        else:
            self.col = f"CAST({column} AS TEXT)" if stored_as == "bytes" else column
        self.params: list[Any] = []
        self.ph = "%s" if self.pg else "?"

    def bind(self, v: Any) -> str:
        self.params.append(v)
        return self.ph

    # The type of a value at a path, as the JSON type name (None when missing).
    def jtype(self, field: str) -> str:
        if self.pg:
            return f"jsonb_typeof({self.col} #> {self.bind(field.split('.'))})"
        return f"json_type({self.col}, {self.bind(_sqlite_path(field))})"

    def text(self, field: str) -> str:
        if self.pg:
            return f'({self.col} #>> {self.bind(field.split("."))}) COLLATE "C"'
        return f"json_extract({self.col}, {self.bind(_sqlite_path(field))})"

    def number(self, field: str) -> str:
        if self.pg:
            return f"({self.col} #>> {self.bind(field.split('.'))})::numeric"
        return f"json_extract({self.col}, {self.bind(_sqlite_path(field))})"

    def is_kind(self, field: str, kind: str) -> str:
        if self.pg:
            name = {"string": "string", "number": "number", "bool": "boolean"}[kind]
            return f"{self.jtype(field)} = {self.bind(name)}"
        if kind == "string":
            return f"{self.jtype(field)} = 'text'"
        if kind == "number":
            return f"{self.jtype(field)} IN ('integer', 'real')"
        return f"{self.jtype(field)} IN ('true', 'false')"

    def present(self, field: str) -> str:
        return f"COALESCE({self.jtype(field)} <> 'null', {self.false})"

    @property
    def false(self) -> str:
        return "FALSE" if self.pg else "0"

    def eq(self, field: str, lit: Value) -> str:
        kind = _kind(lit)
        if kind == "bool":
            if self.pg:
                value = f"({self.col} #> {self.bind(field.split('.'))})"
                want = self.bind("true" if lit else "false")
                return f"COALESCE({value} = {want}::jsonb, FALSE)"
            return f"COALESCE({self.jtype(field)} = {self.bind('true' if lit else 'false')}, 0)"
        if not self.pg and _plain_text(lit):
            return f"COALESCE({self.text(field)} = {self.bind(lit)}, 0)"
        return self.guarded(field, kind, "=", lit)

    def any_eq(self, field: str, values: tuple[Value, ...]) -> str:
        if self.pg:
            return "(" + " OR ".join(self.eq(field, v) for v in values) + ")"
        # SQLite: the plain strings in one IN over a single extraction
        plain = [v for v in values if _plain_text(v)]
        rest = [v for v in values if not _plain_text(v)]
        parts = []
        if plain:
            value = self.text(field)  # bound before the values: parameters go in text order
            marks = ", ".join(self.bind(v) for v in plain)
            parts.append(f"COALESCE({value} IN ({marks}), 0)")
        parts += [self.eq(field, v) for v in rest]
        return "(" + " OR ".join(parts) + ")"

    def guarded(self, field: str, kind: str, op: str, lit: Value) -> str:
        # CASE keeps the cast from running on values of another type (PostgreSQL).
        guard = self.is_kind(field, kind)
        if kind == "string":
            value = self.text(field)
            rhs = self.bind(lit)
        else:
            value = self.number(field)
            rhs = f"{self.bind(repr(lit))}::numeric" if self.pg else self.bind(lit)
        return f"(CASE WHEN {guard} THEN {value} {op} {rhs} ELSE {self.false} END)"

    def like(self, field: str, pattern: str) -> str:
        guard = self.is_kind(field, "string")
        if self.pg:
            test = f"{self.text(field)} LIKE {self.bind(_like_pg(pattern))} ESCAPE '\\'"
        else:
            test = f"{self.text(field)} GLOB {self.bind(_like_glob(pattern))}"
        return f"(CASE WHEN {guard} THEN {test} ELSE {self.false} END)"

    def sql(self, e: Expr) -> str:
        if isinstance(e, And | Or):
            word = " AND " if isinstance(e, And) else " OR "
            return "(" + word.join(self.sql(i) for i in e.items) + ")"
        if isinstance(e, Not):
            return f"(NOT {self.sql(e.item)})"
        if isinstance(e, IsNull):
            test = self.present(e.field)
            return test if e.negated else f"(NOT {test})"
        if isinstance(e, Like):
            if e.negated:
                return f"({self.present(e.field)} AND NOT {self.like(e.field, e.pattern)})"
            return self.like(e.field, e.pattern)
        if isinstance(e, In):
            # parameters are collected in text order: the presence test comes first
            present = self.present(e.field) if e.negated else ""
            any_eq = self.any_eq(e.field, e.values)
            return f"({present} AND NOT {any_eq})" if e.negated else any_eq
        if e.op == "=":
            return self.eq(e.field, e.value)
        if e.op == "!=":
            return f"({self.present(e.field)} AND NOT {self.eq(e.field, e.value)})"
        return self.guarded(e.field, _kind(e.value), e.op, e.value)


def to_sql(
    expr: Expr,
    dialect: Dialect = "sqlite",
    column: str = "payload",
    stored_as: StoredAs = "json",
) -> tuple[str, list[Any]]:
    """A SQL condition over a JSON column with the same meaning as :func:`evaluate`, and its
    bound parameters (``?`` for SQLite, ``%s`` for psycopg). Every literal and every field path
    is a parameter; ``column`` must be a plain (optionally table-qualified) identifier.

    ``stored_as`` says what the column holds: ``json`` (PostgreSQL ``jsonb``, SQLite JSON
    text), ``text`` (JSON in a ``text`` column) or ``bytes`` (UTF-8 JSON in ``bytea`` / a BLOB,
    as the hub's message store keeps payloads). The SQLite form needs the JSON1 functions
    (built in since SQLite 3.38)."""
    if dialect not in ("sqlite", "postgres"):
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    b = SqlBuilder(dialect, column, stored_as)
    return b.sql(expr), b.params
