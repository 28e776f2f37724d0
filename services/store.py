"""The console's database: one engine per process, and the schema every part of the console shares.

The audit log (services/audit.py), the sign-in records (services/auth/sessions.py, throttle.py) and the console
leases (services/leases.py) declare their tables on `metadata`, but the schema itself lives in Alembic
migrations (migrations/versions/): `open_store` upgrades the database to the newest one as the console starts,
under a lock, so replicas starting together migrate once. SQLite under `.data/` by default; PostgreSQL in
production (`postgresql+psycopg://…`, psycopg 3); AUDIT_DATABASE_URL names it.

By hand: `python -m services.store upgrade` (or `current`, or `grant ROLE`) with AUDIT_DATABASE_URL set or `--url`.
The full schema of the code (every module that declares tables) is gathered above this module, in
services/schema.py, which also drafts the next migration: this module imports none of the modules that use it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url

from .config import ConfigError

metadata = MetaData()

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# The schema of the last release made with create_all (3f600a6). Its databases have no version table; they are
# stamped at this revision and upgrade in place.
PRE_MIGRATION_REVISION = "0001"
# pg_advisory_lock's key for "migrating the store": any fixed 64-bit number, the same in every replica.
MIGRATION_LOCK_KEY = int.from_bytes(b"billdesk", "big") >> 1


class StoreError(ConfigError):
    """The store can't be reached or brought up to date: the console does not start (ui/console.py shows a
    generic sentence and logs this one)."""


def open_store(url: str) -> Engine:
    """The console's engine, its database migrated to the newest revision."""
    engine = store_engine(url)
    upgrade(engine)
    return engine


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


# --- migrations ------------------------------------------------------------------------------------------------
def upgrade(engine: Engine, revision: str = "heads") -> list[str]:
    """Brings the database to `revision` under the migration lock; returns the revisions applied. An
    unversioned database holding the old release's tables is first stamped PRE_MIGRATION_REVISION."""
    applied: list[str] = []
    pending: list[Any] = []
    started = False
    try:
        with migration_lock(engine) as conn:
            started = True
            config = _alembic_config(conn, on_version_apply=lambda step, **_: applied.extend(step.up_revision_ids))
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
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


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


def _alembic_config(conn: Connection | None = None, **attributes: Any) -> Config:
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


# --- transactions that read, then write ------------------------------------------------------------------------
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


# --- the console's database role (PostgreSQL) ------------------------------------------------------------------
# What the console's own role may do, table by table (docs/deployment.md): append-only on the audit rows, no DDL.
# A migration that adds a table adds it here; `python -m services.store grant ROLE` applies this, as the owner.
CONSOLE_GRANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SELECT, INSERT", ("audit_rows",)),  # append-only: no UPDATE, DELETE, TRUNCATE
    ("SELECT", ("audit_events", "alembic_version")),  # the view the pages read; the revision checked at start
    ("SELECT, INSERT, UPDATE", ("audit_chain_checkpoints", "rate_budgets",  # the last verified row; the key's rate
                                "audit_verifications",  # the scheduled full re-hashes, kept
                                "outbox_messages",  # e-mail, kept; a sent one's body emptied
                                "approval_requests",  # requests are decided, never deleted
                                "bulk_jobs", "bulk_job_items")),  # a purge empties results, keeps the jobs
    ("SELECT, INSERT, UPDATE, DELETE", ("sign_in_sessions", "sessions_valid_from", "login_throttles",
                                        "console_leases")),
)


def grant_console(engine: Engine, role: str) -> list[str]:
    """Gives `role` exactly what the console needs on every table the store has, in one transaction: what an
    earlier release granted and this one doesn't (DELETE on the bulk-job tables before migration 0010) is
    revoked first. Returns the statements run."""
    if engine.dialect.name != "postgresql":
        raise StoreError("Grants are for PostgreSQL; a SQLite store has no roles.")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise StoreError(f"{role!r} is not a plain PostgreSQL role name (lower case letters, digits, _).")
    statements = []
    with engine.begin() as conn:
        present = set(inspect(conn).get_table_names()) | set(inspect(conn).get_view_names())
        statements.append(f"GRANT USAGE ON SCHEMA public TO {role}")
        for privileges, tables in CONSOLE_GRANTS:
            names = [name for name in tables if name in present]
            if names:
                statements.append(f"REVOKE ALL ON {', '.join(names)} FROM {role}")
                statements.append(f"GRANT {privileges} ON {', '.join(names)} TO {role}")
        for statement in statements:
            conn.execute(text(statement))
    return statements


# --- python -m services.store ------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.store", description="The console's store: "
                                     "migrate it, show its revision, or grant the console's role (drafting the next "
                                     "migration: python -m services.schema revision).")
    parser.add_argument("--url", default=os.environ.get("AUDIT_DATABASE_URL"),
                        help="the store's SQLAlchemy URL (default: AUDIT_DATABASE_URL)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("upgrade", help="migrate the store to the newest revision (under the migration lock)")
    actions.add_parser("current", help="print the store's revision and the newest one")
    grant = actions.add_parser("grant", help="grant the console's database role what it needs (PostgreSQL, as "
                                             "the owner, after every upgrade)")
    grant.add_argument("role", help="the console's role, e.g. billing_desk_console")
    options = parser.parse_args(argv)
    if not options.url:
        parser.error("give --url or set AUDIT_DATABASE_URL")
    engine = store_engine(options.url)
    try:
        if options.action == "upgrade":
            applied = upgrade(engine)
            print(f"Applied {', '.join(applied)}." if applied else "Nothing to apply.",
                  f"The store is at {current_revision(engine)}.")
        elif options.action == "grant":
            for statement in grant_console(engine, options.role):
                print(f"{statement};")
        else:
            print(f"The store is at {current_revision(engine) or 'no revision'}; the newest is {head_revision()}.")
    except StoreError as problem:
        print(problem, file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


# --- times -------------------------------------------------------------------------------------------------
def now() -> datetime:
    return datetime.now(timezone.utc)


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


if __name__ == "__main__":
    # Run as `python -m services.store`: hand over to the imported module, whose `metadata` the models use
    # (this file as __main__ is a second copy of it).
    from services.store import main as store_main

    raise SystemExit(store_main())
