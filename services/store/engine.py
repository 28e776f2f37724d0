"""The store's engine and its transactions: one engine per process, SQLite under `.data/` by default, PostgreSQL in
production (`postgresql+psycopg://…`, psycopg 3), and the `metadata` every table module declares its tables on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url

from ..errors import ConfigError

metadata = MetaData()


class StoreError(ConfigError):
    """The store can't be reached or brought up to date: the console does not start (ui/console.py shows a
    generic sentence and logs this one)."""


def store_engine(url: str) -> Engine:
    """An engine for `url`, without touching the schema. A bare postgresql:// URL means psycopg 3, the only
    PostgreSQL driver installed (SQLAlchemy would otherwise look for psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, pool_pre_ping=True)
        event.listen(engine, "connect", _write_ahead_log)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def _write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
    """SQLite in write-ahead-log mode: a page reading the audit log never waits for a write being committed (in
    the default rollback journal a reader waits out every commit, up to the busy timeout, and on a loaded machine
    fails). The mode is kept in the file; full sync stays on, so a committed audit row survives a crash."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except Exception:  # another process holds the file in the old mode for a moment: it switches next time
        pass
    finally:
        cursor.close()


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that reads, then writes; committed when the block ends, rolled back if it raises. On SQLite
    the write lock is taken first (BEGIN IMMEDIATE, waiting up to the busy timeout): a deferred transaction
    would read under a shared lock, and two of them could then both act on what they read, or one be refused
    ("database is locked") when it turns to write. PostgreSQL's callers lock what they need themselves."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
