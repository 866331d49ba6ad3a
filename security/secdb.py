"""The security database: bearer tokens, the audit log (全程留痕) and wrapped data keys.

It is its own file (``data/security.db`` by default), apart from the message store, because it
is backed up, retained and handed to inspectors on its own terms. :class:`SecurityDB` is the
small async protocol the rest of ``security/`` uses; :class:`SQLiteSecurityDB` is the embedded
implementation (WAL). A PostgreSQL implementation only has to provide the same methods; the
one with a subtle contract is :meth:`SecurityDB.audit_append`, which must run its callback and
the insert in one transaction that excludes every other appender (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a lock on a head row or ``LOCK TABLE audit IN EXCLUSIVE MODE``), so the hash chain
stays linear even with several hub processes.

All SQL lives in named blocks in ``secdb.sql``. The schema carries a version
(``PRAGMA user_version``) checked at open: a file written by another schema is refused rather
than silently misread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from hub.errors import StateError
from hub.store.sql import load_queries

__all__ = [
    "SCHEMA_VERSION",
    "AuditEntry",
    "CheckpointRow",
    "DataKeyRow",
    "SQLiteSecurityDB",
    "SecurityDB",
    "SecurityDBSettings",
    "TokenRow",
    "open_security_db",
]

SCHEMA_VERSION = 1
Q = load_queries("security", "secdb.sql")
T = TypeVar("T")


class SecurityDBSettings(BaseModel):
    """``security.db`` in hub.yaml: where tokens and the audit log live."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(Path("data/security.db"), description="SQLite file (relative to hub.yaml)")
    durability: str = Field("full", pattern="^(full|normal)$", description="SQLite synchronous")


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log entry as stored. ``details`` is canonical JSON text (RFC 8785);
    ``hash`` = H(bytes.fromhex(prev_hash) || canonical JSON of the other fields)."""

    seq: int
    at: str
    actor_id: str
    actor_department: str | None
    actor_role: str | None
    action: str
    object: str | None
    outcome: str
    details: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """A signed statement "the log's entry ``seq`` has hash ``hash``" (signature base64)."""

    seq: int
    at: str
    hash: str
    key_id: str
    algorithm: str
    signature: str


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A bearer token as stored: only its hash, never the token itself."""

    id: str
    token_hash: str
    name: str
    department: str | None
    roles: tuple[str, ...]
    system: str | None
    grants: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None


@dataclass(frozen=True, slots=True)
class DataKeyRow:
    """A dataset's data key, wrapped (encrypted) by the master key ``master_key_id``."""

    id: str
    dataset: str
    algorithm: str
    wrapped: str
    master_key_id: str
    created_at: float
    active: bool


#: Builds the next entry from (next seq, previous hash); may add a checkpoint for it.
AppendFn = Callable[[int, str], tuple[AuditEntry, CheckpointRow | None]]
#: Builds a checkpoint for the head (seq, hash) of the log, or None to skip.
CheckpointFn = Callable[[int, str], CheckpointRow | None]


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class SecurityDB(Protocol):
    """Storage of the security package. Every method is a coroutine except ``path``."""

    async def open(self) -> None:
        """Create or open the database; refuse a schema of another version (E_STATE)."""
        ...

    async def close(self) -> None: ...

    async def meta_get(self, key: str) -> str | None:
        """The value stored under ``key``, or None (never writes)."""
        ...

    async def meta_set(self, key: str, value: str) -> None:
        """Set a value (replacing any)."""
        ...

    async def meta_setdefault(self, key: str, value: str) -> str:
        """Store ``value`` under ``key`` unless something is stored; return what is stored."""
        ...

    async def audit_append(self, make: AppendFn) -> AuditEntry:
        """In one exclusive transaction: read the head (0 and the genesis hash when empty),
        call ``make(head seq + 1, head hash)``, insert what it returns. Return the entry."""
        ...

    async def audit_checkpoint(self, make: CheckpointFn) -> CheckpointRow | None:
        """In one exclusive transaction: call ``make(head seq, head hash)`` and store the
        checkpoint it returns (nothing when the log is empty or it returns None)."""
        ...

    async def audit_page(self, after_seq: int, upto_seq: int, limit: int) -> list[AuditEntry]:
        """Entries with ``after_seq < seq <= upto_seq`` in seq order, at most ``limit``."""
        ...

    async def audit_head(self) -> tuple[int, str] | None:
        """(seq, hash) of the last entry, or None for an empty log."""
        ...

    async def audit_seq_range(self, start_at: str, end_at: str) -> tuple[int, int] | None:
        """First and last seq written in ``[start_at, end_at)``, or None."""
        ...

    async def audit_checkpoints(self, first_seq: int, last_seq: int) -> list[CheckpointRow]: ...

    async def token_insert(self, row: TokenRow) -> None: ...

    async def token_get(self, token_id: str) -> TokenRow | None: ...

    async def token_list(self) -> list[TokenRow]: ...

    async def token_revoke(self, token_id: str, at: float) -> bool:
        """Mark a token revoked; False when it is unknown or already revoked."""
        ...

    async def token_touch(self, token_id: str, at: float) -> None: ...

    async def data_keys(self) -> list[DataKeyRow]: ...

    async def data_key_add(self, row: DataKeyRow) -> None:
        """Store a new active data key; the dataset's older keys stay (to decrypt) inactive."""
        ...

    async def data_keys_rewrap(self, rows: list[DataKeyRow], old_master_id: str) -> int:
        """Replace wrapped keys that are still wrapped by ``old_master_id``, all or none."""
        ...


GENESIS = "0" * 64  # prev_hash of entry 1 (both SHA-256 and SM3 give 32 bytes)


# --------------------------------------------------------------------------- SQLite


def _token(row: tuple[Any, ...]) -> TokenRow:
    import orjson

    return TokenRow(
        id=row[0],
        token_hash=row[1],
        name=row[2],
        department=row[3],
        roles=tuple(orjson.loads(row[4])),
        system=row[5],
        grants=tuple(orjson.loads(row[6])),
        created_at=row[7],
        expires_at=row[8],
        revoked_at=row[9],
        last_used_at=row[10],
    )


class SQLiteSecurityDB:
    """:class:`SecurityDB` on one SQLite file in WAL mode.

    One connection, used from one worker thread, so the asyncio loop never blocks on disk and
    operations of this process run one at a time. Writes take ``BEGIN IMMEDIATE`` (SQLite's
    write lock) so appenders in other processes queue behind it: the audit chain stays linear.
    """

    def __init__(self, path: Path | str, *, durability: str = "full") -> None:
        self.path = Path(path)
        self.durability = durability
        self._pool: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteSecurityDB({str(self.path)!r})"

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._pool is None or self._conn is None:
            raise StateError("the security database is not open", field="security.db")
        conn = self._conn
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, conn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def tx(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return out

        return await self._run(tx)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jghub-secdb")

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                sync = "FULL" if self.durability == "full" else "NORMAL"
                conn.execute(f"PRAGMA synchronous={sync}")
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("BEGIN IMMEDIATE")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
                if version == 0 and tables == 0:
                    for stmt in _statements(Q["schema"]):
                        conn.execute(stmt)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                else:
                    conn.execute("ROLLBACK")
                    if version != SCHEMA_VERSION:
                        raise StateError(
                            f"{self.path}: security database schema version {version}, this "
                            f"hub reads version {SCHEMA_VERSION} (wrong file, or migrate it)",
                            field="user_version",
                        )
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(self._pool, connect)
        except BaseException:
            self._pool.shutdown(wait=False)
            self._pool = None
            raise

    async def close(self) -> None:
        if self._pool is None:
            return
        conn, pool = self._conn, self._pool
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(pool, conn.close)
        self._conn = None
        self._pool = None
        pool.shutdown(wait=True)

    async def meta_get(self, key: str) -> str | None:
        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(Q["meta_get"], (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run(op)

    async def meta_set(self, key: str, value: str) -> None:
        await self._write(lambda conn: conn.execute(Q["meta_put"], (key, value)))

    async def meta_setdefault(self, key: str, value: str) -> str:
        def op(conn: sqlite3.Connection) -> str:
            conn.execute(Q["meta_put_if_absent"], (key, value))
            return str(conn.execute(Q["meta_get"], (key,)).fetchone()[0])

        return await self._write(op)

    # ------------------------------------------------------------------ audit

    async def audit_append(self, make: AppendFn) -> AuditEntry:
        def op(conn: sqlite3.Connection) -> AuditEntry:
            head = conn.execute(Q["audit_head"]).fetchone()
            seq, prev = (head[0], head[1]) if head else (0, GENESIS)
            entry, checkpoint = make(seq + 1, prev)
            conn.execute(
                Q["audit_insert"],
                (
                    entry.seq,
                    entry.at,
                    entry.actor_id,
                    entry.actor_department,
                    entry.actor_role,
                    entry.action,
                    entry.object,
                    entry.outcome,
                    entry.details,
                    entry.prev_hash,
                    entry.hash,
                ),
            )
            if checkpoint is not None:
                _insert_checkpoint(conn, checkpoint)
            return entry

        return await self._write(op)

    async def audit_checkpoint(self, make: CheckpointFn) -> CheckpointRow | None:
        def op(conn: sqlite3.Connection) -> CheckpointRow | None:
            head = conn.execute(Q["audit_head"]).fetchone()
            if head is None:
                return None
            cp = make(head[0], head[1])
            if cp is not None:
                _insert_checkpoint(conn, cp)
            return cp

        return await self._write(op)

    async def audit_page(self, after_seq: int, upto_seq: int, limit: int) -> list[AuditEntry]:
        def op(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute(Q["audit_page"], (after_seq, upto_seq, limit)).fetchall()
            return [AuditEntry(*r) for r in rows]

        return await self._run(op)

    async def audit_head(self) -> tuple[int, str] | None:
        def op(conn: sqlite3.Connection) -> tuple[int, str] | None:
            row = conn.execute(Q["audit_head"]).fetchone()
            return (int(row[0]), str(row[1])) if row else None

        return await self._run(op)

    async def audit_seq_range(self, start_at: str, end_at: str) -> tuple[int, int] | None:
        def op(conn: sqlite3.Connection) -> tuple[int, int] | None:
            row = conn.execute(Q["audit_seq_range"], (start_at, end_at)).fetchone()
            return None if row[0] is None else (int(row[0]), int(row[1]))

        return await self._run(op)

    async def audit_checkpoints(self, first_seq: int, last_seq: int) -> list[CheckpointRow]:
        def op(conn: sqlite3.Connection) -> list[CheckpointRow]:
            rows = conn.execute(Q["checkpoint_range"], (first_seq, last_seq)).fetchall()
            return [CheckpointRow(*r) for r in rows]

        return await self._run(op)

    # ------------------------------------------------------------------ tokens

    async def token_insert(self, row: TokenRow) -> None:
        import orjson

        values = (
            row.id,
            row.token_hash,
            row.name,
            row.department,
            orjson.dumps(list(row.roles)).decode(),
            row.system,
            orjson.dumps(list(row.grants)).decode(),
            row.created_at,
            row.expires_at,
            row.revoked_at,
            row.last_used_at,
        )
        await self._write(lambda conn: conn.execute(Q["token_insert"], values))

    async def token_get(self, token_id: str) -> TokenRow | None:
        def op(conn: sqlite3.Connection) -> TokenRow | None:
            row = conn.execute(Q["token_get"], (token_id,)).fetchone()
            return None if row is None else _token(row)

        return await self._run(op)

    async def token_list(self) -> list[TokenRow]:
        return await self._run(
            lambda conn: [_token(r) for r in conn.execute(Q["token_list"]).fetchall()]
        )

    async def token_revoke(self, token_id: str, at: float) -> bool:
        return await self._write(
            lambda conn: conn.execute(Q["token_revoke"], (at, token_id)).rowcount == 1
        )

    async def token_touch(self, token_id: str, at: float) -> None:
        await self._write(lambda conn: conn.execute(Q["token_touch"], (at, token_id)))

    # ------------------------------------------------------------------ data keys

    async def data_keys(self) -> list[DataKeyRow]:
        def op(conn: sqlite3.Connection) -> list[DataKeyRow]:
            rows = conn.execute(Q["data_key_list"]).fetchall()
            return [
                DataKeyRow(
                    id=r[0],
                    dataset=r[1],
                    algorithm=r[2],
                    wrapped=r[3],
                    master_key_id=r[4],
                    created_at=r[5],
                    active=bool(r[6]),
                )
                for r in rows
            ]

        return await self._run(op)

    async def data_key_add(self, row: DataKeyRow) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(Q["data_key_deactivate"], (row.dataset,))
            conn.execute(
                Q["data_key_insert"],
                (
                    row.id,
                    row.dataset,
                    row.algorithm,
                    row.wrapped,
                    row.master_key_id,
                    row.created_at,
                    1,
                ),
            )

        await self._write(op)

    async def data_keys_rewrap(self, rows: list[DataKeyRow], old_master_id: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            n = 0
            for r in rows:
                cur = conn.execute(
                    Q["data_key_rewrap"], (r.wrapped, r.master_key_id, r.id, old_master_id)
                )
                n += cur.rowcount
            if n != len(rows):
                raise StateError(
                    f"{len(rows) - n} data key(s) changed during the re-wrap; nothing was "
                    "changed, run it again",
                    field="master_key_id",
                )
            return n

        return await self._write(op)


def _insert_checkpoint(conn: sqlite3.Connection, cp: CheckpointRow) -> None:
    conn.execute(
        Q["checkpoint_insert"], (cp.seq, cp.at, cp.hash, cp.key_id, cp.algorithm, cp.signature)
    )


def _statements(script: str) -> list[str]:
    """Split a schema block into statements (triggers hold ``;`` inside BEGIN ... END)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines():
        if line.lstrip().startswith("--"):
            continue
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def open_security_db(settings: SecurityDBSettings, base_dir: Path = Path(".")) -> SecurityDB:
    """Build (not open) the security database named by ``settings``; relative paths are taken
    from ``base_dir`` (the folder of hub.yaml)."""
    path = settings.path if settings.path.is_absolute() else base_dir / settings.path
    return SQLiteSecurityDB(path, durability=settings.durability)
