"""The audit chain keyed and watched: rows name the key their hash is an HMAC under, the verified-rows checkpoint is
sealed with it, and every scheduled full re-hash of the chain is kept.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

- `audit_rows.key_id` (nullable): rows written before this release keep their SHA-256 hashes and no key id; the
  first console with a key appends a keyed cut-over row (services/audit/keys.py). Adding a nullable column leaves
  every stored hash valid (canonical content leaves NULL columns out).
- `audit_chain_checkpoints.mac` (nullable): "key id:HMAC" of the checkpoint.
- `audit_verifications`: one row per full verification (services/audit/watch.py), sealed with the key; the console
  role may read, add and complete them (`python -m services.store grant`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_rows", sa.Column("key_id", sa.String(16)))  # plain ADD COLUMN: the table is never copied
    op.add_column("audit_chain_checkpoints", sa.Column("mac", sa.String(80)))
    op.create_table(
        "audit_verifications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("slot", sa.Integer, unique=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("by", sa.String(100), nullable=False),
        sa.Column("rows", sa.Integer),
        sa.Column("last_id", sa.Integer),
        sa.Column("last_hash", sa.String(64)),
        sa.Column("ok", sa.Integer),
        sa.Column("findings", sa.Text),
        sa.Column("mac", sa.String(80)),
    )


def downgrade() -> None:
    op.drop_table("audit_verifications")
    with op.batch_alter_table("audit_chain_checkpoints") as batch:
        batch.drop_column("mac")
    # audit_rows keeps key_id: dropping a column would copy the append-only table (and its keyed rows could no
    # longer be told from unkeyed ones); a downgraded console writes NULL there.
