"""Bulk jobs: a bulk lookup kept in the store, its ids and each result as it arrives (services/jobs/).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Two new tables: the console's role needs SELECT, INSERT, UPDATE, DELETE on both (`CONSOLE_GRANTS` in
services/store/; run `python -m services.store grant ROLE` after upgrading). `bulk_jobs`: one row per job (who
started it, status, counts, the worker holding its claim and until when). `bulk_job_items`: one row per
organization id of a job, in the order given, with its result (JSON) once fetched. Rows of jobs older than the
retention (30 days by default) are deleted by the workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_found", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker_id", sa.String(64)),
        sa.Column("lease_id", sa.String(40)),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("stopped_by", sa.String(255)),
    )
    op.create_index("ix_bulk_jobs_status", "bulk_jobs", ["status", "created_at"])
    op.create_index("ix_bulk_jobs_username", "bulk_jobs", ["username", "created_at"])
    op.create_table(
        "bulk_job_items",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("bulk_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("organization_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("fetched_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_bulk_job_items_pending", "bulk_job_items", ["job_id", "state", "position"])


def downgrade() -> None:
    op.drop_index("ix_bulk_job_items_pending", table_name="bulk_job_items")
    op.drop_table("bulk_job_items")
    op.drop_index("ix_bulk_jobs_username", table_name="bulk_jobs")
    op.drop_index("ix_bulk_jobs_status", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
