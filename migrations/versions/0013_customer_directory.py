"""The customer directory: one row per organization the console has read, searchable by any id, email or name.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

`directory_organizations` (services/directory/); `bulk_jobs.kind`: a person's bulk lookup, or an import of the
company's organization ids into the directory, or the daily refresh; `directory_refreshes`: one row a day, inserted
by the one process that queues that day's refresh. Its trigram index is each store's own: on PostgreSQL GIN indexes
with pg_trgm's `gin_trgm_ops` (the extension is created here; it is a trusted extension, so the store's owner may);
on SQLite an FTS5 table with the trigram tokenizer over the same folded text, kept in step by triggers. The
console role may read, add, update and delete rows (forgetting an organization, the retention purge).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE directory_search USING fts5(search_text, name_key, content='directory_organizations', "
    "content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER directory_search_insert AFTER INSERT ON directory_organizations BEGIN
        INSERT INTO directory_search(rowid, search_text, name_key) VALUES (new.id, new.search_text, new.name_key);
    END""",
    """CREATE TRIGGER directory_search_delete AFTER DELETE ON directory_organizations BEGIN
        INSERT INTO directory_search(directory_search, rowid, search_text, name_key)
        VALUES ('delete', old.id, old.search_text, old.name_key);
    END""",
    """CREATE TRIGGER directory_search_update AFTER UPDATE OF search_text, name_key ON directory_organizations BEGIN
        INSERT INTO directory_search(directory_search, rowid, search_text, name_key)
        VALUES ('delete', old.id, old.search_text, old.name_key);
        INSERT INTO directory_search(rowid, search_text, name_key) VALUES (new.id, new.search_text, new.name_key);
    END""",
)


def upgrade() -> None:
    op.create_table(
        "directory_organizations",
        # An explicit integer key: the FTS5 index points at it (SQLite's VACUUM may renumber an implicit rowid).
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("organization_id", sa.String(120), nullable=False),
        sa.Column("customer_id", sa.String(120)),
        sa.Column("name", sa.Text),
        sa.Column("email", sa.String(320)),
        sa.Column("plan", sa.String(200)),
        sa.Column("price_cents", sa.Integer),
        sa.Column("currency", sa.String(8)),
        sa.Column("interval_unit", sa.String(16)),
        sa.Column("interval_count", sa.Integer),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean, nullable=False),
        sa.Column("scheduled_plan", sa.String(200)),
        sa.Column("scheduled_at", sa.DateTime(timezone=True)),
        sa.Column("period_end", sa.DateTime(timezone=True)),
        sa.Column("trial_end", sa.DateTime(timezone=True)),
        sa.Column("mrr_cents", sa.Integer),
        sa.Column("first_read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_read_by", sa.String(40), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gone_at", sa.DateTime(timezone=True)),
        sa.Column("search_text", sa.Text, nullable=False),
        sa.Column("name_key", sa.Text, nullable=False),
    )
    op.create_table(
        "directory_refreshes",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(120), nullable=False),
        sa.Column("organizations", sa.Integer, nullable=False),
        sa.Column("jobs", sa.Text, nullable=False),
    )
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(10), nullable=False, server_default="lookup"))
    op.create_index("ix_directory_organizations_organization_id", "directory_organizations", ["organization_id"],
                    unique=True)
    op.create_index("ix_directory_organizations_customer_id", "directory_organizations", ["customer_id"])
    op.create_index("ix_directory_organizations_last_used_at", "directory_organizations", ["last_used_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_directory_organizations_search_trgm ON directory_organizations "
                   "USING gin (search_text gin_trgm_ops)")
        op.execute("CREATE INDEX ix_directory_organizations_name_trgm ON directory_organizations "
                   "USING gin (name_key gin_trgm_ops)")
    else:
        for statement in SQLITE_SEARCH:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS directory_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS directory_search")
    op.drop_table("directory_refreshes")
    op.drop_table("directory_organizations")
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.drop_column("kind")
