"""Sign-in records in the store; audit rows say which environment and which identity-provider subject.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

audit_events gains `environment` (sandbox, test or live) and `subject` (single sign-on). New tables: password
sign-in sessions, each user's "sessions valid from" time, and the login throttle's counters. login_attempts
and logouts go: the throttle and the sessions replace what they recorded (the old release's sign-in cookies
are not sessions here, so everyone signs in again anyway).

Every step first looks at what is there. Between 3f600a6 and the first migration, the console still ran
`create_all`, so an unversioned database (stamped 0001 by services/store/) may already hold some of these
tables or columns; create_all never dropped or altered anything, so the old tables may be there too.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    audit_columns = {column["name"] for column in inspector.get_columns("audit_events")}
    if "environment" not in audit_columns:
        op.add_column("audit_events", sa.Column("environment", sa.String(10)))
    if "subject" not in audit_columns:
        op.add_column("audit_events", sa.Column("subject", sa.String(255)))
    if "sign_in_sessions" not in tables:
        op.create_table(
            "sign_in_sessions",
            sa.Column("token_hash", sa.String(64), primary_key=True),
            sa.Column("username", sa.String(100), nullable=False),
            sa.Column("role", sa.String(20), nullable=False),
            sa.Column("fingerprint", sa.String(64), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("ended_at", sa.DateTime(timezone=True)),
        )
        op.create_index("ix_sign_in_sessions_username", "sign_in_sessions", ["username"])
    if "sessions_valid_from" not in tables:
        op.create_table(
            "sessions_valid_from",
            sa.Column("username", sa.String(100), primary_key=True),
            sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        )
    if "login_throttles" not in tables:
        op.create_table(
            "login_throttles",
            sa.Column("key", sa.String(200), primary_key=True),
            sa.Column("failures", sa.Integer, nullable=False),
            sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        )
    for old in ("login_attempts", "logouts"):
        if old in tables:
            op.drop_table(old)  # its index goes with it


def downgrade() -> None:
    """Back to 0001's shape; the sign-in records are lost and login_attempts and logouts come back empty."""
    op.create_table(
        "logouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_logouts_username", "logouts", ["username"])
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded", sa.Boolean, nullable=False),
    )
    op.create_index("ix_login_attempts_username", "login_attempts", ["username"])
    op.drop_table("login_throttles")
    op.drop_table("sessions_valid_from")
    op.drop_table("sign_in_sessions")
    with op.batch_alter_table("audit_events") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("subject")
        batch.drop_column("environment")
