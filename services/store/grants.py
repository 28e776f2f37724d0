"""The console's database role on PostgreSQL: what it may do, table by table (docs/deployment.md)."""

from __future__ import annotations

import re

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from .engine import StoreError

# What the console's own role may do, table by table (docs/deployment.md): append-only on the audit rows, no DDL.
# A migration that adds a table adds it here; `python -m services.store grant ROLE` applies this, as the owner.
CONSOLE_GRANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SELECT, INSERT", ("audit_rows",  # append-only: no UPDATE, DELETE, TRUNCATE
                        "revenue_snapshots", "revenue_movements", "revenue_customers",  # a day is written once
                        "revenue_days", "revenue_cohort_days")),
    ("SELECT", ("audit_events", "alembic_version")),  # the view the pages read; the revision checked at start
    ("SELECT, INSERT, UPDATE", ("audit_chain_checkpoints", "rate_budgets",  # the last verified row; the key's rate
                                "audit_verifications",  # the scheduled full re-hashes, kept
                                "outbox_messages",  # e-mail, kept; a sent one's body emptied
                                "approval_requests",  # requests are decided, never deleted
                                "bulk_jobs", "bulk_job_items")),  # a purge empties results, keeps the jobs
    ("SELECT, INSERT, UPDATE, DELETE", ("sign_in_sessions", "sessions_valid_from", "login_throttles",
                                        "console_leases",
                                        "directory_organizations",  # forgetting one; the retention purge
                                        "directory_name_words",  # a word no name holds any more
                                        "directory_refreshes")),  # a day given back if its refresh failed
)
# The sequences behind the keys the console's inserts draw (nextval needs USAGE).
CONSOLE_SEQUENCES: tuple[str, ...] = ("directory_organizations_id_seq",)
# The owner's functions the console may call (EXECUTE): deleting the rows of old imports and refreshes (0015).
CONSOLE_FUNCTIONS: tuple[str, ...] = ("purge_background_job_items(timestamptz, integer)",)


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
        sequences = [name for name in CONSOLE_SEQUENCES if name in set(inspect(conn).get_sequence_names())]
        if sequences:
            statements.append(f"REVOKE ALL ON SEQUENCE {', '.join(sequences)} FROM {role}")
            statements.append(f"GRANT USAGE ON SEQUENCE {', '.join(sequences)} TO {role}")
        kept = set(conn.execute(text("SELECT p.oid::regprocedure::text FROM pg_proc p "
                                     "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"))
                   .scalars())
        for function in CONSOLE_FUNCTIONS:
            if _signature(function) in {_signature(name) for name in kept}:
                statements.append(f"REVOKE ALL ON FUNCTION {function} FROM {role}")
                statements.append(f"GRANT EXECUTE ON FUNCTION {function} TO {role}")
        for statement in statements:
            conn.execute(text(statement))
    return statements


def _signature(function: str) -> str:
    """`name(type, type)` as PostgreSQL's regprocedure writes it (`timestamp with time zone` for timestamptz)."""
    return function.replace("timestamptz", "timestamp with time zone").replace(" ", "")
