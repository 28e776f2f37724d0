"""The store's schema lives in Alembic migrations (migrations/versions/): `upgrade` brings a database to the newest
one under a lock, so replicas starting together migrate once, and stamps a database made by the last release
before migrations so it upgrades in place. Alembic is configured here, in code, never from an alembic.ini."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from .engine import StoreError, store_engine

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# The schema of the last release made with create_all (3f600a6). Its databases have no version table; they are
# stamped at this revision and upgrade in place.
PRE_MIGRATION_REVISION = "0001"
# pg_advisory_lock's key for "migrating the store": any fixed 64-bit number, the same in every replica.
MIGRATION_LOCK_KEY = int.from_bytes(b"billdesk", "big") >> 1


def open_store(url: str) -> Engine:
    """The console's engine, its database migrated to the newest revision."""
    engine = store_engine(url)
    upgrade(engine)
    return engine


def upgrade(engine: Engine, revision: str = "heads") -> list[str]:
    """Brings the database to `revision` under the migration lock; returns the revisions applied. An
    unversioned database holding the old release's tables is first stamped PRE_MIGRATION_REVISION."""
    applied: list[str] = []
    pending: list[Any] = []
    started = False
    try:
        with migration_lock(engine) as conn:
            started = True
            config = alembic_config(conn, on_version_apply=lambda step, **_: applied.extend(step.up_revision_ids))
            current = _current(conn)
            stamp = current is None and inspect(conn).has_table("audit_events")
            # Alembic commits each migration itself only if it finds the connection outside a transaction.
            conn.commit()
            if stamp:
                command.stamp(config, PRE_MIGRATION_REVISION)
                conn.commit()
                applied.clear()  # a stamp is not a migration
                current = PRE_MIGRATION_REVISION
            pending = list(reversed(list(ScriptDirectory.from_config(config).iterate_revisions(revision, current))))
            if pending:
                command.upgrade(config, revision)
                conn.commit()
    except Exception as problem:
        raise _failure(engine, problem, started, pending, applied) from problem
    return applied


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _current(conn)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection that alone may migrate the store until the block ends: replicas starting together
    queue here, and the first one's work leaves the others nothing to do. The connection is handed back
    outside any transaction, so each migration commits on its own."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # A session-level advisory lock: it outlives the migrations' own commits, and it dies with the
            # connection if the process does.
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                try:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    conn.commit()
                except Exception:  # a broken connection: closing its session releases the lock
                    conn.invalidate()  # (and a pooled connection must never keep holding it)
        elif conn.dialect.name == "sqlite" and conn.engine.url.database not in (None, "", ":memory:"):
            # SQLite has no lock that outlives a transaction, and DDL there is not transactional: a lock file
            # beside the database, held by the OS (released if the process dies).
            with open(f"{conn.engine.url.database}.migration-lock", "a+b") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    conn.commit()
                    yield conn
                finally:
                    conn.rollback()
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
        else:  # in memory: one process by definition
            yield conn


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def alembic_config(conn: Connection | None = None, **attributes: Any) -> Config:
    """Alembic configured in code, not from alembic.ini: the URL is the console's own setting (it may hold a
    password), and every run must go through `upgrade` for the lock and the stamp of pre-migration databases."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes.update(connection=conn, **attributes)
    return config


def _failure(engine: Engine, problem: Exception, started: bool, pending: Sequence[Any],
             applied: Sequence[str]) -> StoreError:
    """One sentence for the operator: which migration failed and why, or that the store can't be reached."""
    original = getattr(problem, "orig", None) or problem  # the driver's own error, without SQLAlchemy's SQL dump
    lines = str(original).strip().splitlines()
    cause = f"{type(original).__name__}: {lines[0][:300]}" if lines else type(original).__name__
    where = engine.url.render_as_string(hide_password=True)
    failed = next((step for step in pending if step.revision not in applied), None)
    if not started or failed is None:
        return StoreError(f"The store at {where} can't be opened or its version read ({cause}). Check "
                          f"AUDIT_DATABASE_URL and that the database is running.")
    reached = applied[-1] if applied else (failed.down_revision or "no version")
    return StoreError(f"The store's migration {failed.revision} ({failed.doc}) failed at {where}: {cause}. The store "
                      f"stays at {reached}; fix the cause, then run `python -m services.store upgrade`.")
