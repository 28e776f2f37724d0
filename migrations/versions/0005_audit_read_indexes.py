"""Indexes for reading the audit log at scale: the Audit page's pages and filters, and its export.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Indexes only: no table, column or row changes, so nothing needs a grant. The Audit page reads newest first a
page at a time, by keyset on (at, id) (services/audit/), and each filter is an index range on the intent
rows the `audit_events` view folds:

- `ix_audit_rows_intents_newest` (at, id) of intents: the first page and every page after it, and the date
  filter;
- `ix_audit_rows_intents_user_at`, `ix_audit_rows_intents_action_at`: a user's or an action's intents by time;
- `ix_audit_rows_organization_at` (organization_id, at) of every row (an outcome can re-file a write under
  another organization): the exact organization, and on PostgreSQL with `varchar_pattern_ops`, so a prefix
  (`LIKE 'org_12%'`) is a range whatever the database's collation.

On PostgreSQL, CREATE INDEX blocks appends to `audit_rows` while it builds (seconds for a million rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INTENTS = sa.text("kind = 'intent'")


def upgrade() -> None:
    op.create_index("ix_audit_rows_intents_newest", "audit_rows", ["at", "id"],
                    postgresql_where=INTENTS, sqlite_where=INTENTS)
    op.create_index("ix_audit_rows_intents_user_at", "audit_rows", ["user", "at"],
                    postgresql_where=INTENTS, sqlite_where=INTENTS)
    op.create_index("ix_audit_rows_intents_action_at", "audit_rows", ["action", "at"],
                    postgresql_where=INTENTS, sqlite_where=INTENTS)
    op.create_index("ix_audit_rows_organization_at", "audit_rows", ["organization_id", "at"],
                    postgresql_ops={"organization_id": "varchar_pattern_ops"})
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE audit_rows")


def downgrade() -> None:
    for name in ("ix_audit_rows_organization_at", "ix_audit_rows_intents_action_at", "ix_audit_rows_intents_user_at",
                 "ix_audit_rows_intents_newest"):
        op.drop_index(name, table_name="audit_rows")
