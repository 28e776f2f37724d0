"""Bulk jobs: why a job ended as failed (the API refused the key, or stopped answering), in one sentence.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26

One nullable column on `bulk_jobs`; no new grants.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.add_column(sa.Column("failure", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.drop_column("failure")
