"""Rate budgets: one row per API key, the key's request rate shared by every console process
(services/store/rate_budget.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

A new table, `rate_budgets`: the console's role needs SELECT, INSERT, UPDATE on it (`CONSOLE_GRANTS` in
services/store/; run `python -m services.store grant ROLE` after upgrading). `key_id` is the first 24 hex
digits of the API key's SHA-256, never the key; `tat` the theoretical arrival time of the key's next request
(GCRA), in epoch seconds of the store's clock; `burst` the largest burst a replica has asked for. The rows hold
nothing worth keeping: a lost row only lets the next requests go as after a quiet spell.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("key_id", sa.String(24), primary_key=True),
        sa.Column("tat", sa.Double, nullable=False),
        sa.Column("burst", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("rate_budgets")
