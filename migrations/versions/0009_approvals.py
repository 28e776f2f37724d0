"""Four-eyes approvals: requests for the writes that lose revenue, kept until a second person decides.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26

`approval_requests`: one row per request (what the write will send, the customer as it was, who asked and why,
the idempotency key the write will use, when it expires, who decided and how the write ended). A partial unique
index lets one request wait per organization. The console's role needs SELECT, INSERT, UPDATE (no DELETE:
`CONSOLE_GRANTS` in services/store/grants.py; run `python -m services.store grant ROLE` after upgrading). Also an index
on `bulk_job_items.organization_id`, so a customer's page finds the bulk lookups that included it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("organization_id", sa.String(255), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("at_stake_cents", sa.Integer),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("requester_role", sa.String(20), nullable=False),
        sa.Column("requester_subject", sa.String(255)),
        sa.Column("idempotency_key", sa.String(80), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("decided_role", sa.String(20)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decision_reason", sa.Text),
        sa.Column("outcome", sa.String(10)),
        sa.Column("outcome_error", sa.Text),
        sa.Column("audit_id", sa.Integer),
    )
    op.create_index("ix_approval_requests_status", "approval_requests", ["status", "created_at"])
    op.create_index("ix_approval_requests_organization", "approval_requests", ["organization_id", "created_at"])
    op.create_index("ux_approval_requests_one_waiting", "approval_requests", ["organization_id"], unique=True,
                    postgresql_where=sa.text("status = 'waiting'"), sqlite_where=sa.text("status = 'waiting'"))
    op.create_index("ix_bulk_job_items_organization", "bulk_job_items", ["organization_id"])


def downgrade() -> None:
    op.drop_index("ix_bulk_job_items_organization", table_name="bulk_job_items")
    op.drop_index("ux_approval_requests_one_waiting", table_name="approval_requests")
    op.drop_index("ix_approval_requests_organization", table_name="approval_requests")
    op.drop_index("ix_approval_requests_status", table_name="approval_requests")
    op.drop_table("approval_requests")
