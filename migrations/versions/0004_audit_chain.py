"""An append-only, hash-chained audit log: audit_rows, the audit_events view, append-only triggers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

Until now an intent's row was UPDATEd with its outcome. From here every write is a new row in `audit_rows`
(services/audit/chain.py) carrying the SHA-256 of its content and of the row before it; `audit_events`
becomes a view folding an intent and its linked rows into one line, with the columns the table had, so what
read the table reads the same lines.

Every existing row is kept, with its id and every value, as an intent: a completed one already holds its
outcome. This migration hashes them in id order, so the chain covers them, but it vouches for them only from
now on: what they held before the migration is whatever they held when it ran. It then remembers the last row
as the first verified checkpoint.

Triggers refuse UPDATE, DELETE and TRUNCATE on `audit_rows`. On PostgreSQL they stop anyone but a superuser
(who can disable them, and whom the chain then catches); on SQLite, whoever holds the file can drop them, so
there they only stop mistakes.

Downgrading folds the rows back into the old one-row-per-intent table: the chain, and which attempt and which
outcome came when, are lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from services.audit.chain import GENESIS, row_hash

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000
SETTLED_PREFIX = "Re-read by"  # services/audit/: how a settled unknown outcome's note began before 0004
OLD_COLUMNS = ("id", "at", "user", "role", "action", "organization_id", "parameters", "reason", "outcome", "error",
               "request_id", "idempotency_key", "attempts", "boot_id", "completed_at", "environment", "subject")
INDEXED = ("at", "user", "action", "organization_id", "intent_id")


def _columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("intent_id", sa.Integer),
        sa.Column("settles_id", sa.Integer),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("environment", sa.String(10)),
        sa.Column("user", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(255)),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("organization_id", sa.String(120)),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("request_id", sa.String(100)),
        sa.Column("idempotency_key", sa.String(255), unique=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("boot_id", sa.String(40), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
    ]


def _old_columns() -> list[sa.Column]:
    """audit_events as 0001 + 0002 left it."""
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("organization_id", sa.String(120)),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("request_id", sa.String(100)),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("boot_id", sa.String(40), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("environment", sa.String(10)),
        sa.Column("subject", sa.String(255)),
    ]


# The intent with its latest outcome ("outcome" or "settled" row; none: the intent's own, as every row before
# 0004 holds it), attempts counted, and whether a person has settled an unknown outcome. Correlated subqueries
# on the indexed intent_id: the page asks for the newest few thousand lines, so only those are folded.
VIEW = f"""
CREATE VIEW audit_events AS
SELECT i.id, i.at, i.environment, i."user", i.subject, i.role, i.action,
       COALESCE(o.organization_id, i.organization_id) AS organization_id,
       COALESCE(o.parameters, i.parameters) AS parameters,
       i.reason,
       COALESCE(o.outcome, i.outcome) AS outcome,
       CASE WHEN o.id IS NULL THEN i.error ELSE o.error END AS error,
       CASE WHEN o.id IS NULL THEN i.request_id ELSE o.request_id END AS request_id,
       i.idempotency_key,
       i.attempts + (SELECT count(*) FROM audit_rows a WHERE a.intent_id = i.id AND a.kind = 'attempt') AS attempts,
       i.boot_id,
       CASE WHEN o.id IS NULL THEN i.completed_at ELSE o.completed_at END AS completed_at,
       CASE WHEN o.kind = 'settled' OR (o.id IS NULL AND i.error LIKE '{SETTLED_PREFIX}%') THEN 1 ELSE 0 END
           AS settled,
       o.id AS outcome_row_id
FROM audit_rows i
LEFT JOIN audit_rows o ON o.id = (SELECT max(x.id) FROM audit_rows x
                                  WHERE x.intent_id = i.id AND x.kind IN ('outcome', 'settled'))
WHERE i.kind = 'intent'
"""

POSTGRESQL_TRIGGERS = [
    """CREATE FUNCTION audit_rows_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$""",
    "CREATE TRIGGER audit_rows_append_only BEFORE UPDATE OR DELETE ON audit_rows "
    "FOR EACH ROW EXECUTE FUNCTION audit_rows_append_only()",
    # TRUNCATE fires no row trigger: it gets its own.
    "CREATE TRIGGER audit_rows_no_truncate BEFORE TRUNCATE ON audit_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_rows_append_only()",
]
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_rows_no_{operation.lower()} BEFORE {operation} ON audit_rows "
    f"BEGIN SELECT RAISE(ABORT, 'audit rows are append-only: {operation} refused'); END"
    for operation in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    bind = op.get_bind()
    rows = op.create_table("audit_rows", *_columns())
    for column in INDEXED:
        op.create_index(f"ix_audit_rows_{column}", "audit_rows", [column])
    last = _seal_existing_rows(bind, sa.Table("audit_events", sa.MetaData(), *_old_columns()), rows)
    op.drop_table("audit_events")  # its indexes go with it
    op.execute(VIEW)
    for statement in POSTGRESQL_TRIGGERS if bind.dialect.name == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)
    if bind.dialect.name == "postgresql":  # statistics for the rows just copied, before the first query plans
        op.execute("ANALYZE audit_rows")
    checkpoints = op.create_table(
        "audit_chain_checkpoints",
        sa.Column("name", sa.String(20), primary_key=True),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True)),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
    )
    if last is not None:  # the rows just sealed are the chain's verified start
        last_id, last_hash, count, last_at = last
        op.bulk_insert(checkpoints, [{"name": "verified", "last_id": last_id, "last_hash": last_hash, "rows": count,
                                      "last_at": last_at, "verified_at": datetime.now(timezone.utc)}])


def _seal_existing_rows(bind: sa.engine.Connection, old: sa.Table,
                        rows: sa.Table) -> tuple[int, str, int, datetime] | None:
    """Copies every row, in id order and with its id, as an intent, hashing each onto the one before it.
    Read through typed columns, as services/audit/verify.py reads them back, so the hashes match; a page of
    rows at a time (by id), so a large log is never all in memory."""
    previous, count, last = GENESIS, 0, None
    while True:
        after = last[0] if last else 0
        page = bind.execute(sa.select(old).where(old.c.id > after).order_by(old.c.id).limit(BATCH)).all()
        if not page:
            break
        batch = []
        for source in page:
            values = {**{name: source._mapping[name] for name in OLD_COLUMNS}, "kind": "intent",
                      "prev_hash": previous}
            values["row_hash"] = previous = row_hash(values)
            batch.append(values)
            count, last = count + 1, (values["id"], previous, values["at"])
        bind.execute(rows.insert(), batch)
    return None if last is None else (last[0], last[1], count, last[2])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_rows_no_truncate ON audit_rows")
        op.execute("DROP TRIGGER audit_rows_append_only ON audit_rows")
        op.execute("DROP FUNCTION audit_rows_append_only()")
    else:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER audit_rows_no_{operation}")
    op.drop_table("audit_chain_checkpoints")
    # The folded lines go into a table of the old shape, which then takes the view's name.
    op.create_table("audit_events_0003", *_old_columns(),
                    sa.UniqueConstraint("idempotency_key", name="audit_events_idempotency_key_key"))
    names = ", ".join(f'"{name}"' for name in OLD_COLUMNS)
    op.execute(f"INSERT INTO audit_events_0003 ({names}) SELECT {names} FROM audit_events")
    op.execute("DROP VIEW audit_events")
    op.drop_table("audit_rows")
    op.rename_table("audit_events_0003", "audit_events")
    if bind.dialect.name == "postgresql":  # the id sequence carries on after the rows kept
        op.execute("ALTER SEQUENCE audit_events_0003_id_seq RENAME TO audit_events_id_seq")
        op.execute("SELECT setval('audit_events_id_seq', COALESCE((SELECT max(id) FROM audit_events), 0) + 1, false)")
    for column in ("at", "user", "action", "organization_id", "outcome"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])
