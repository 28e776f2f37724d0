"""The customer directory at a million organizations: newest-read order from an index, and misspelt names found
through the words of the names.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

Measured at 1,000,000 organizations (docs/performance.md): a search matching thousands (the start of an id, a
common word) sorted every match by the last read, hundreds of milliseconds; `(last_read_at, id)` lets it walk
newest first and stop at a page. A misspelt name searched by trigram similarity over every name (pg_trgm's `<%`,
the FTS5 table's ranked OR of trigrams) took hundreds of milliseconds on both stores; `directory_name_words` holds
each word of the names and the word with one letter left out (services/directory/table.py), so a misspelling is
an index probe per key. It is filled here from the names already kept; the console role may add and remove its
rows. PostgreSQL's trigram index over the names served only the old similarity search and goes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _variants(name_key: str) -> set[tuple[str, str]]:
    """As services/directory/table.py makes them on this day (a migration keeps its own copy of the rule)."""
    pairs = set()
    for word in re.findall(r"\w+", name_key):
        if 4 <= len(word) <= 40:
            pairs.add((word, word))
            pairs.update((word[:index] + word[index + 1:], word) for index in range(len(word)))
    return pairs


def upgrade() -> None:
    op.create_index("ix_directory_organizations_last_read", "directory_organizations", ["last_read_at", "id"])
    words = op.create_table(
        "directory_name_words",
        sa.Column("variant", sa.String(64), primary_key=True),
        sa.Column("word", sa.String(64), primary_key=True),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_directory_organizations_name_trgm")
    pairs: set[tuple[str, str]] = set()
    for (name_key,) in bind.execute(sa.text("SELECT DISTINCT name_key FROM directory_organizations")):
        pairs |= _variants(name_key)
    ordered = sorted(pairs)
    for start in range(0, len(ordered), 10_000):
        op.bulk_insert(words, [{"variant": variant, "word": word} for variant, word in ordered[start:start + 10_000]])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_directory_organizations_name_trgm ON directory_organizations "
                   "USING gin (name_key gin_trgm_ops)")
    op.drop_table("directory_name_words")
    op.drop_index("ix_directory_organizations_last_read", "directory_organizations")
