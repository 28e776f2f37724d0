"""Alembic's entry point for the store's migrations (migrations/versions/).

Alembic is configured in code (services/store/), never from an alembic.ini: the store's URL is the
console's own setting and may hold a password, and every run must hold the migration lock and recognise
databases made before migrations. So the connection arrives here already locked, through
`config.attributes["connection"]`; run migrations with `python -m services.store upgrade`, not `alembic`.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise SystemExit("Run the store's migrations with `python -m services.store upgrade` (it takes the migration "
                     "lock); the bare alembic command is not configured.")

context.configure(
    connection=connection,
    # Only `revision --autogenerate` compares against the models; an upgrade never imports them.
    target_metadata=config.attributes.get("target_metadata"),
    include_name=config.attributes.get("include_name"),
    # Each migration commits on its own: a failure leaves the store at the last one that worked (PostgreSQL;
    # SQLite has no transactional DDL), and the error names the one that failed.
    transaction_per_migration=True,
    on_version_apply=config.attributes.get("on_version_apply"),
    # SQLite alters most of a table only by copying it; batch mode drafts migrations that way.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
