"""Console leases: one heartbeat row per running console process (services/store/leases.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

A process's lease id is the boot id its audit rows carry, so a pending row whose lease has expired (or was
never taken) belongs to a process that is gone, and its outcome is unknown. `pid_namespace` says where
`process_id` can be checked: a process on the same machine and namespace can see the holder has died.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_leases",
        sa.Column("lease_id", sa.String(40), primary_key=True),
        sa.Column("process_id", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pid_namespace", sa.String(80)),
    )


def downgrade() -> None:
    op.drop_table("console_leases")
