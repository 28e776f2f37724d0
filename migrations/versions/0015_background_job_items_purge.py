"""An import's and a refresh's per-organization rows leave a week after the job: on PostgreSQL through a function
the store's owner keeps, so the console's role still may not delete job rows itself.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

A daily refresh leaves one `bulk_job_items` row per organization (a million a day at a million organizations);
what it read is in the directory, so its rows serve only a week's look at what failed. A person's bulk lookup keeps
its rows (who looked a customer up in bulk stays in the customer's history, migration 0010), and the console's role
has no DELETE on the table. `purge_background_job_items(finished_before, batch)` deletes up to `batch` rows of
imports and refreshes finished before that time and nothing else; it runs as its owner (SECURITY DEFINER, with
its own search path) and only the roles granted EXECUTE may call it (`python -m services.store grant`).
SQLite has no roles: the console deletes those rows itself (services/jobs/store.py `purge_background_items`).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "purge_background_job_items(timestamptz, integer)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE FUNCTION purge_background_job_items(finished_before timestamptz, batch integer) RETURNS integer
        LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
            WITH gone AS (
                DELETE FROM bulk_job_items WHERE (job_id, position) IN (
                    SELECT items.job_id, items.position FROM bulk_job_items AS items
                    JOIN bulk_jobs AS jobs ON jobs.id = items.job_id
                    WHERE jobs.kind IN ('import', 'refresh') AND jobs.finished_at < finished_before
                    LIMIT batch)
                RETURNING 1)
            SELECT count(*)::integer FROM gone
        $$""")
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC")  # EXECUTE is everyone's by default


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}")
