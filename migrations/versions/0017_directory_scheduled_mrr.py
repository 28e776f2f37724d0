"""The directory keeps the MRR a scheduled change leaves, so the accounts needing attention say what a scheduled
downgrade puts at stake (services/revenue/attention.py). Filled at each organization's next read.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both stores: a batch copy of the table on SQLite would lose its search triggers.
    op.add_column("directory_organizations", sa.Column("scheduled_mrr_cents", sa.Integer))


def downgrade() -> None:
    op.drop_column("directory_organizations", "scheduled_mrr_cents")
