"""Real staging databases for the ``db_staging`` tests: a SQLite file, PostgreSQL 15 and
MariaDB on 127.0.0.1. Each test gets its own uniquely named tables, dropped afterwards."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pymysql

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL_URL = "mysql://root@127.0.0.1:3306/test"
KINDS = ["sqlite", "postgresql", "mysql"]


@dataclass
class StagingDatabase:
    """One real database plus the tables a test made in it (dropped by :meth:`cleanup`)."""

    kind: str
    url: str
    path: Path | None = None
    tables: list[str] = field(default_factory=list)

    def new_table(self, prefix: str = "stg") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.tables.append(name)
        return name

    @property
    def mark(self) -> str:
        return "?" if self.kind == "sqlite" else "%s"

    @property
    def text(self) -> str:
        """A text column type that also works in a MariaDB unique index."""
        return "VARCHAR(400)" if self.kind == "mysql" else "TEXT"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction (as the department would)."""
        if self.kind == "sqlite":
            assert self.path is not None
            with sqlite3.connect(self.path) as conn:
                rows = conn.execute(sql, tuple(params)).fetchall()
            conn.close()
            return rows
        if self.kind == "postgresql":
            with psycopg.connect(self.url) as pg, pg.cursor() as cur:
                cur.execute(sql, tuple(params))  # type: ignore[arg-type]
                return list(cur.fetchall()) if cur.description else []
        conn = pymysql.connect(host="127.0.0.1", user="root", database="test", charset="utf8mb4")
        try:
            with conn.cursor() as cur:
                cur.execute(sql, tuple(params))
                rows = list(cur.fetchall()) if cur.description else []
            conn.commit()
            return rows
        finally:
            conn.close()

    def insert(self, table: str, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join([self.mark] * len(row))
        self.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values()))

    def cleanup(self) -> None:
        for t in self.tables:
            self.execute(f"DROP TABLE IF EXISTS {t}")


def open_database(kind: str, tmp: Path) -> StagingDatabase:
    if kind == "sqlite":
        path = tmp / "staging.db"
        sqlite3.connect(path).close()
        return StagingDatabase(kind, f"sqlite://{path}", path)
    if kind == "postgresql":
        return StagingDatabase(kind, PG_URL)
    return StagingDatabase(kind, MYSQL_URL)
