"""``db_staging`` (前置库): a staging database shared with a department, both directions.

Inbound (source ``kind: db_staging``) the hub reads new rows from a table, either by an
increasing key column (``mode: increasing_key``; the cursor is saved after the commit) or by a
status column (``mode: status``; rows with ``status_new`` are read and set to ``status_taken``
after the commit). Each row's idempotency key is ``<table>:<pk>`` (``<table>:<pk>:<version>``
with a version column), so rows re-read after a crash are recognised as duplicates.

Outbound (transport ``db_staging``) delivered records are inserted as rows, one transaction per
batch, with the message id in a unique column: a retried insert is a no-op
(``ON CONFLICT DO NOTHING`` in SQLite and PostgreSQL, ``ON DUPLICATE KEY UPDATE`` in MariaDB).

Databases: SQLite files (stdlib ``sqlite3`` in a thread), PostgreSQL (``psycopg`` 3, async) and
MariaDB / MySQL (``aiomysql``), chosen by the URL scheme. Table and column names come from
config: they must match ``^[A-Za-z_][A-Za-z0-9_]*$`` and are quoted; values are always bound
parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import decimal
import io
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.errors import FileFormatError
from hub.specs import OutboundItem, SendResult, SourceContext, SourceSpec, TransportSpec

__all__ = [
    "IDENTIFIER",
    "ColumnSpec",
    "DbStagingOutOptions",
    "DbStagingSource",
    "DbStagingSourceOptions",
    "DbStagingTransport",
    "StagingDb",
    "connect",
    "source_spec",
    "spec",
]

#: what a table or column name from config must look like (it is quoted as well)
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_IDENT = re.compile(IDENTIFIER)
Dialect = Literal["sqlite", "postgresql", "mysql"]
ColumnType = Literal["str", "int", "float", "bool", "json", "date", "datetime", "raw"]


def _check_ident(value: str, what: str) -> str:
    if not _IDENT.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a plain SQL name (letters, digits, _)")
    return value


def _check_url(value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        raise ValueError(
            f"url scheme {scheme!r} is not supported; use sqlite:///path, postgresql://… "
            "or mysql://…"
        )
    return value


class ColumnSpec(BaseModel):
    """One column → one record field, with the type the value is converted to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(min_length=1, description="the record field (default: the column name)")
    type: ColumnType = Field("raw", description="str, int, float, bool, json, date, datetime")


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        description="sqlite:///abs/path.db, postgresql://user@host/db, mysql://user:pw@host/db"
    )
    table: str = Field(description="the staging table")
    db_schema: str | None = Field(
        None, alias="schema", description="PostgreSQL schema of the table (default: search_path)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v)

    @field_validator("table", "db_schema")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        return None if v is None else _check_ident(v, "table/schema name")


class DbStagingSourceOptions(_Common):
    """Options of the ``db_staging`` source (``inbound.source:`` with ``kind: db_staging``)."""

    mode: Literal["increasing_key", "status"] = "increasing_key"
    key_column: str = Field("id", description="the primary key; ordered reading uses it")
    version_column: str | None = Field(
        None, description="a row version: an updated row is a new record (key pk:version)"
    )
    status_column: str = Field("status", description="mode status: the column to read and set")
    status_new: str = Field("N", description="mode status: rows waiting to be taken")
    status_taken: str = Field("Y", description="mode status: set after the commit")
    status_rejected: str | None = Field(
        None, description="mode status: set on rows the hub refused (default: status_taken)"
    )
    columns: dict[str, str | ColumnSpec] | None = Field(
        None, description="column → field (or {field, type}); default: every column as is"
    )
    dataset: str | None = Field(None, description="the dataset of the rows (default: the first)")
    batch_size: int = Field(500, ge=1, le=10_000, description="rows per read and ingest call")
    poll_interval: float = Field(2.0, gt=0, description="seconds to wait when no row is new")

    @field_validator("key_column", "version_column", "status_column")
    @classmethod
    def _col(cls, v: str | None) -> str | None:
        return None if v is None else _check_ident(v, "column name")

    @field_validator("columns")
    @classmethod
    def _cols(cls, v: dict[str, str | ColumnSpec] | None) -> dict[str, str | ColumnSpec] | None:
        for name in v or {}:
            _check_ident(name, "column name")
        return v

    def column_map(self) -> dict[str, ColumnSpec] | None:
        """``columns`` with every shorthand ``col: field`` expanded."""
        if self.columns is None:
            return None
        return {
            c: ColumnSpec(field=s) if isinstance(s, str) else s for c, s in self.columns.items()
        }


class DbStagingOutOptions(_Common):
    """Options of the ``db_staging`` transport (``outbound:`` with ``transport: db_staging``)."""

    columns: dict[str, str] = Field(
        min_length=1, description="column → record field (dotted path); dicts/lists as JSON"
    )
    message_id_column: str = Field("msg_id", description="unique column holding the message id")
    dataset_column: str | None = Field(None, description="a column for the dataset name")
    batch_size: int = Field(200, ge=1, le=10_000, description="rows per transaction")
    concurrency: int = Field(1, ge=1, le=32, description="transactions in flight")

    @field_validator("columns")
    @classmethod
    def _cols(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            _check_ident(name, "column name")
        return v

    @field_validator("message_id_column", "dataset_column")
    @classmethod
    def _col(cls, v: str | None) -> str | None:
        return None if v is None else _check_ident(v, "column name")

    @model_validator(mode="after")
    def _distinct(self) -> DbStagingOutOptions:
        extra = [self.message_id_column, *([self.dataset_column] if self.dataset_column else [])]
        clash = set(extra) & set(self.columns)
        if clash or len(set(extra)) != len(extra):
            raise ValueError(f"columns used twice: {sorted(clash) or extra}")
        return self


# --------------------------------------------------------------------------- databases


class StagingDb(Protocol):
    """The little a staging database must do: read rows, write rows in one transaction."""

    dialect: Dialect

    async def fetch(
        self, sql: str, params: Sequence[Any]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a query; return the column names and the rows."""
        ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``sql`` once per row, all in one transaction (rolled back on error)."""
        ...

    async def close(self) -> None: ...


class _SqliteDb:
    dialect: Dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if not Path(self.path).exists():
                raise sqlite3.OperationalError(f"staging database {self.path} does not exist")
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            self._conn = conn
        return self._conn

    def _fetch(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        conn = self._connection()
        cur = conn.execute(sql, tuple(params))
        rows = cur.fetchall()
        names = [d[0] for d in cur.description or ()]
        conn.commit()
        return names, rows

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, [tuple(r) for r in rows])
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    async def fetch(
        self, sql: str, params: Sequence[Any]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        async with self._lock:
            return await asyncio.to_thread(self._fetch, sql, params)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._lock:
            await asyncio.to_thread(self._many, sql, rows)

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _PostgresDb:
    dialect: Dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=10)
        return self._conn

    async def fetch(
        self, sql: str, params: Sequence[Any]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        async with self._lock:
            conn = await self._connection()
            try:
                async with conn.transaction(), conn.cursor() as cur:
                    await cur.execute(sql, tuple(params))
                    rows = await cur.fetchall()
                    names = [d.name for d in cur.description or ()]
            except Exception as exc:
                await self._drop_if_broken(exc)
                raise
            return names, rows

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._lock:
            conn = await self._connection()
            try:
                async with conn.transaction(), conn.cursor() as cur:
                    await cur.executemany(sql, [tuple(r) for r in rows])
            except Exception as exc:
                await self._drop_if_broken(exc)
                raise

    async def _drop_if_broken(self, exc: Exception) -> None:
        """After a connection-level error the next call connects afresh."""
        import psycopg

        if isinstance(exc, psycopg.OperationalError) and self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None


class _MysqlDb:
    dialect: Dialect = "mysql"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.params: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
            "db": parts.path.lstrip("/") or None,
            "charset": "utf8mb4",
            "autocommit": False,
            "connect_timeout": 10,
        }
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> Any:
        import aiomysql

        if self._conn is None or self._conn.closed:
            self._conn = await aiomysql.connect(**self.params)
        return self._conn

    async def fetch(
        self, sql: str, params: Sequence[Any]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        async with self._lock:
            conn = await self._connection()
            try:
                async with conn.cursor() as cur:
                    await cur.execute(sql, tuple(params))
                    rows = list(await cur.fetchall())
                    names = [d[0] for d in cur.description or ()]
                await conn.commit()
            except BaseException:
                await self._drop()
                raise
            return names, rows

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._lock:
            conn = await self._connection()
            try:
                await conn.begin()
                async with conn.cursor() as cur:
                    for r in rows:  # executemany would rewrite the statement; keep it exact
                        await cur.execute(sql, tuple(r))
                await conn.commit()
            except BaseException:
                await self._drop()
                raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.rollback()
            finally:
                conn.close()

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def connect(url: str) -> StagingDb:
    """A staging database for ``url`` (connections open on first use)."""
    parts = urlsplit(_check_url(url))
    if parts.scheme == "sqlite":
        return _SqliteDb(unquote(parts.path))
    if parts.scheme in ("postgresql", "postgres"):
        return _PostgresDb(url)
    return _MysqlDb(url)


@dataclass(frozen=True, slots=True)
class _Sql:
    """Dialect details: identifier quoting and the parameter marker."""

    quote: str
    mark: str

    def ident(self, name: str) -> str:
        _check_ident(name, "identifier")  # validated in config already; checked again here
        return f"{self.quote}{name}{self.quote}"


_DIALECTS = {
    "sqlite": _Sql('"', "?"),
    "postgresql": _Sql('"', "%s"),
    "mysql": _Sql("`", "%s"),
}


def _table(sql: _Sql, table: str, schema: str | None) -> str:
    return f"{sql.ident(schema)}.{sql.ident(table)}" if schema else sql.ident(table)


def _is_transient(exc: BaseException) -> bool:
    """Connection trouble and locks are worth retrying; bad data is not."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return True
    mod = type(exc).__module__
    if mod.startswith("psycopg"):
        import psycopg

        return isinstance(exc, psycopg.OperationalError)
    if mod.startswith("pymysql") or mod.startswith("aiomysql"):
        import pymysql

        # 1205 lock wait timeout, 1213 deadlock: transient like a lost connection
        if isinstance(exc, pymysql.err.OperationalError):
            return True
        return bool(exc.args and exc.args[0] in (1205, 1213))
    return False


# --------------------------------------------------------------------------- inbound


def _convert(value: Any, kind: ColumnType, column: str) -> Any:
    if value is None:
        return None
    if kind == "raw":
        if isinstance(value, decimal.Decimal):
            return str(value)
        if isinstance(value, (dt.datetime, dt.date)):
            return value.isoformat()
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "replace")
        return value
    if kind == "str":
        if isinstance(value, (dt.datetime, dt.date)):
            return value.isoformat()
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "replace")
        return str(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("1", "y", "yes", "true", "t")
        return bool(value)
    if kind == "json":
        if isinstance(value, (dict, list)):
            return value
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value  # the contract check names the field
    if kind in ("date", "datetime"):
        if isinstance(value, (dt.datetime, dt.date)):
            return value.isoformat()
        return str(value)
    raise ValueError(f"column {column}: unknown type {kind}")  # pragma: no cover


class DbStagingSource:
    """Reads new rows of a staging table; marks or remembers them only after the commit."""

    def __init__(self, system: str, options: DbStagingSourceOptions) -> None:
        self.system = system
        self.options = options
        self.columns = options.column_map()

    async def run(self, ctx: SourceContext) -> None:
        """Read, ingest, mark; sleep ``poll_interval`` when nothing is new."""
        db = connect(self.options.url)
        try:
            while not ctx.stopping.is_set():
                n = await self.poll_once(ctx, db)
                if n < self.options.batch_size and await ctx.sleep(self.options.poll_interval):
                    return
        finally:
            await db.close()

    def _select(self, sql: _Sql, cursor: bool) -> str:
        o = self.options
        wanted = [o.key_column]
        if o.version_column:
            wanted.append(o.version_column)
        if self.columns is not None:
            wanted += [c for c in self.columns if c not in wanted]
        cols = "*" if self.columns is None else ", ".join(sql.ident(c) for c in wanted)
        if o.mode == "status":
            where = f"{sql.ident(o.status_column)} = {sql.mark}"
        elif cursor:
            where = f"{sql.ident(o.key_column)} > {sql.mark}"
        else:  # the first read of an increasing key: from the start
            where = "1 = 1"
        return (
            f"SELECT {cols} FROM {_table(sql, o.table, o.db_schema)} WHERE {where} "
            f"ORDER BY {sql.ident(o.key_column)} LIMIT {int(o.batch_size)}"
        )

    async def poll_once(self, ctx: SourceContext, db: StagingDb) -> int:
        """One read → ingest → mark round; returns the number of rows read."""
        o = self.options
        sql = _DIALECTS[db.dialect]
        params: list[Any] = []
        if o.mode == "increasing_key":
            saved = await ctx.get_state("cursor")
            if saved is not None:
                params.append(orjson.loads(saved))
        else:
            params.append(o.status_new)
        names, rows = await db.fetch(self._select(sql, bool(params)), params)
        if not rows:
            return 0
        idx = {n.lower(): i for i, n in enumerate(names)}
        ki = idx[o.key_column.lower()]
        vi = idx[o.version_column.lower()] if o.version_column else None
        records = [self._record(names, row) for row in rows]
        keys = [f"{o.table}:{row[ki]}" + (f":{row[vi]}" if vi is not None else "") for row in rows]
        first, last = rows[0][ki], rows[-1][ki]
        result = await ctx.ingest(
            records, keys=keys, dataset=o.dataset, origin=f"table {o.table} rows {first}..{last}"
        )
        # Committed: only now is the row marked taken / the cursor moved.
        if o.mode == "increasing_key":
            await ctx.put_state("cursor", orjson.dumps(_jsonable(last)).decode())
        else:
            refused = {e.index for e in result.errors}
            await self._mark(db, sql, rows, ki, vi, refused)
        return len(rows)

    async def _mark(
        self,
        db: StagingDb,
        sql: _Sql,
        rows: Sequence[tuple[Any, ...]],
        ki: int,
        vi: int | None,
        refused: set[int],
    ) -> None:
        o = self.options
        where = (
            f"{sql.ident(o.key_column)} = {sql.mark} AND {sql.ident(o.status_column)} = {sql.mark}"
        )
        if o.version_column and vi is not None:
            # a row updated since we read it (new version) stays new and is read again
            where += f" AND {sql.ident(o.version_column)} = {sql.mark}"
        stmt = (
            f"UPDATE {_table(sql, o.table, o.db_schema)} SET {sql.ident(o.status_column)} = "
            f"{sql.mark} WHERE {where}"
        )
        rejected_value = o.status_rejected or o.status_taken
        params = []
        for i, row in enumerate(rows):
            p = [rejected_value if i in refused else o.status_taken, row[ki], o.status_new]
            if vi is not None:
                p.append(row[vi])
            params.append(p)
        await db.execute_many(stmt, params)

    def decode_file(self, path: Path) -> list[dict[str, Any]]:
        """Rows exported from the staging table, turned into records exactly as
        :meth:`poll_once` turns rows it read (``columns`` and their types applied, NULLs left
        out, the status column dropped), for ``jghub check --samples``. ``.json`` holds one
        row object or an array of them, ``.ndjson``/``.jsonl`` one row a line, ``.csv`` (UTF-8)
        a header of column names then one row a line (an empty cell is NULL)."""
        data = path.read_bytes()
        rows: list[Any]
        try:
            if path.suffix in (".ndjson", ".jsonl"):
                rows = [orjson.loads(line) for line in data.splitlines() if line.strip()]
            elif path.suffix == ".csv":
                reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
                rows = [{k: (v if v != "" else None) for k, v in r.items()} for r in reader]
            else:
                doc = orjson.loads(data)
                rows = doc if isinstance(doc, list) else [doc]
        except (orjson.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise FileFormatError(f"{path.name}: not a row export: {exc}", field="file") from None
        out = []
        for n, row in enumerate(rows):
            if not isinstance(row, dict):
                raise FileFormatError(
                    f"{path.name}: row {n} must be an object of column: value", field="file"
                )
            out.append(self._record(list(row), list(row.values())))
        return out

    def _record(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        rec: dict[str, Any] = {}
        if self.columns is None:
            skip = {self.options.status_column.lower()} if self.options.mode == "status" else set()
            for n, v in zip(names, row, strict=True):
                if n.lower() not in skip and v is not None:
                    rec[n] = _convert(v, "raw", n)
            return rec
        lower = {n.lower(): v for n, v in zip(names, row, strict=True)}
        for col, cs in self.columns.items():
            v = _convert(lower.get(col.lower()), cs.type, col)
            if v is not None:
                rec[cs.field] = v
        return rec


def _jsonable(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else str(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return v


# --------------------------------------------------------------------------- outbound


def _get_path(record: Mapping[str, Any], path: str) -> Any:
    cur: Any = record
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _param(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value


class DbStagingTransport:
    """Inserts each batch of deliveries as rows, in one transaction; the message id column
    makes a retried insert a no-op."""

    def __init__(self, target: str, options: DbStagingOutOptions) -> None:
        self.target = target
        self.options = options
        self.max_batch = options.batch_size
        self.concurrency = options.concurrency
        self._db: StagingDb | None = None
        self._stmt = ""

    async def start(self) -> None:
        self._db = connect(self.options.url)
        o = self.options
        sql = _DIALECTS[self._db.dialect]
        cols = [o.message_id_column, *([o.dataset_column] if o.dataset_column else [])]
        cols += list(o.columns)
        head = (
            f"INSERT INTO {_table(sql, o.table, o.db_schema)} "
            f"({', '.join(sql.ident(c) for c in cols)}) "
            f"VALUES ({', '.join([sql.mark] * len(cols))})"
        )
        if self._db.dialect == "mysql":
            mid = sql.ident(o.message_id_column)
            self._stmt = f"{head} ON DUPLICATE KEY UPDATE {mid} = {mid}"
        else:
            self._stmt = f"{head} ON CONFLICT ({sql.ident(o.message_id_column)}) DO NOTHING"

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def _row(self, item: OutboundItem) -> list[Any]:
        body = item.body if isinstance(item.body, Mapping) else {}
        row: list[Any] = [item.message_id]
        if self.options.dataset_column:
            row.append(item.dataset)
        row += [_param(_get_path(body, f)) for f in self.options.columns.values()]
        return row

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        assert self._db is not None, "transport not started"
        t0 = time.perf_counter()
        rows = [self._row(i) for i in items]
        try:
            await self._db.execute_many(self._stmt, rows)
        except Exception as exc:
            if _is_transient(exc) or len(items) == 1:
                return [self._failed(exc, t0)] * len(items)
            # One bad row fails the whole transaction: insert one by one to find it, so the
            # others are delivered and only the bad one is dead-lettered.
            out = []
            for row in rows:
                try:
                    await self._db.execute_many(self._stmt, [row])
                    out.append(self._ok(t0))
                except Exception as one:
                    out.append(self._failed(one, t0))
            return out
        return [self._ok(t0)] * len(items)

    def _ok(self, t0: float) -> SendResult:
        return SendResult(True, None, latency_ms=(time.perf_counter() - t0) * 1000)

    def _failed(self, exc: BaseException, t0: float) -> SendResult:
        return SendResult(
            False,
            None,
            not _is_transient(exc),
            f"{type(exc).__name__}: {exc}"[:300],
            latency_ms=(time.perf_counter() - t0) * 1000,
        )


def _source_factory(system: str, options: DbStagingSourceOptions) -> DbStagingSource:
    return DbStagingSource(system, options)


def _transport_factory(target: str, options: DbStagingOutOptions) -> DbStagingTransport:
    return DbStagingTransport(target, options)


source_spec = SourceSpec(
    name="db_staging",
    factory=_source_factory,
    config_model=DbStagingSourceOptions,
    description="read new rows of a staging table (前置库) by increasing key or status column",
)

spec = TransportSpec(
    name="db_staging",
    factory=_transport_factory,
    config_model=DbStagingOutOptions,
    description="insert delivered records as rows of a staging table; message id unique",
)
