"""Revenue over time: a daily snapshot of the directory, the MRR movements between days, the first day each
organization paid, and the day and cohort rollups the Revenue page reads (services/revenue/).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

Append-only for the console's role (SELECT, INSERT: services/store/grants.py): a day is written once, in one
transaction, and never changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVEMENT_COLUMNS = ("new", "expansion", "reactivation", "contraction", "churn", "first_counted", "no_longer_counted")


def upgrade() -> None:
    op.create_table(
        "revenue_snapshots",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("organization_id", sa.String(120), primary_key=True),
        sa.Column("plan", sa.String(200)),
        sa.Column("price_cents", sa.Integer),
        sa.Column("currency", sa.String(8)),
        sa.Column("interval_unit", sa.String(16)),
        sa.Column("interval_count", sa.Integer),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean, nullable=False),
        sa.Column("mrr_cents", sa.Integer),
        sa.Column("carried", sa.Boolean, nullable=False),
    )
    op.create_index("ix_revenue_snapshots_organization", "revenue_snapshots", ["organization_id", "day"])
    op.create_table(
        "revenue_movements",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("organization_id", sa.String(120), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("from_mrr_cents", sa.Integer, nullable=False),
        sa.Column("to_mrr_cents", sa.Integer, nullable=False),
        sa.Column("from_plan", sa.String(200)),
        sa.Column("to_plan", sa.String(200)),
    )
    op.create_index("ix_revenue_movements_kind", "revenue_movements", ["kind", "day"])
    op.create_index("ix_revenue_movements_organization", "revenue_movements", ["organization_id", "day"])
    op.create_table(
        "revenue_customers",
        sa.Column("organization_id", sa.String(120), primary_key=True),
        sa.Column("first_paid_day", sa.Date, nullable=False),
    )
    op.create_table(
        "revenue_days",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("organizations", sa.Integer, nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("mrr_cents", sa.BigInteger, nullable=False),
        sa.Column("unknown", sa.Integer, nullable=False),
        sa.Column("carried", sa.Integer, nullable=False),
        sa.Column("trialing", sa.Integer, nullable=False),
        sa.Column("scheduled_churn_cents", sa.BigInteger, nullable=False),
        sa.Column("scheduled_churn_customers", sa.Integer, nullable=False),
        *(column for kind in MOVEMENT_COLUMNS for column in (
            sa.Column(f"{kind}_cents", sa.BigInteger, nullable=False),
            sa.Column(f"{kind}_count", sa.Integer, nullable=False))),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_by", sa.String(120), nullable=False),
    )
    op.create_table(
        "revenue_cohort_days",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("cohort", sa.Date, primary_key=True),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("mrr_cents", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("revenue_cohort_days", "revenue_days", "revenue_customers", "revenue_movements",
                  "revenue_snapshots"):
        op.drop_table(table)
