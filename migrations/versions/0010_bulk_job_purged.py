"""Bulk jobs: a purged job keeps which organizations it looked up (for each customer's history), not the results.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26

One nullable column on `bulk_jobs`, `purged_at`: the purge now empties a finished job's results (the customer
data) and marks it, instead of deleting the job with the ids it looked up. No new grants: the console already
updates both tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.execute("DELETE FROM bulk_job_items WHERE job_id IN (SELECT id FROM bulk_jobs WHERE purged_at IS NOT NULL)")
    op.execute("DELETE FROM bulk_jobs WHERE purged_at IS NOT NULL")  # as the purge did before 0010
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.drop_column("purged_at")
