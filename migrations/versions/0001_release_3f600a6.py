"""The schema of release 3f600a6, the last made by create_all: audit log, login attempts, logouts.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

That release made these tables with `metadata.create_all` (services/audit.py at 3f600a6). Its databases carry
no version, so services/store/ stamps them at this revision and they upgrade in place; an empty database
runs it from scratch. Table, index and constraint names are create_all's, so both kinds look the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
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
        sa.Column("idempotency_key", sa.String(255), unique=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("boot_id", sa.String(40), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
    )
    for column in ("at", "user", "action", "organization_id", "outcome"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded", sa.Boolean, nullable=False),
    )
    op.create_index("ix_login_attempts_username", "login_attempts", ["username"])
    op.create_table(
        "logouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_logouts_username", "logouts", ["username"])


def downgrade() -> None:
    op.drop_table("logouts")
    op.drop_table("login_attempts")
    op.drop_table("audit_events")
