"""The whole schema the code declares, gathered from above: every module that owns tables, imported here, so
that services/store/ (the engine, migrations, grants) never imports the modules that build on it.

Used to compare the models with the migrations (tests/test_store_migrations.py) and to draft the next migration:
`python -m services.schema revision -m "…" [--autogenerate] [--url …]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence

from alembic import command
from sqlalchemy import MetaData

from . import audit  # noqa: F401  (each declares its tables on store.metadata)
from .store import leases, rate_budget  # noqa: F401
from .approvals import store as approvals_store  # noqa: F401
from .auth import sessions, throttle  # noqa: F401
from .directory import refresh as directory_refresh, table as directory_table  # noqa: F401
from .jobs import store as jobs_store  # noqa: F401
from .outbox import store as outbox_store  # noqa: F401
from .revenue import tables as revenue_tables  # noqa: F401
from .store import alembic_config, head_revision, metadata, store_engine, upgrade


def model_metadata() -> MetaData:
    """`metadata` with every table the code uses (the modules that declare them are imported above)."""
    return metadata


# What each store builds beside the models, by its own means (migration 0013): SQLite's FTS5 table and its shadow
# tables, PostgreSQL's trigram indexes. Left out when the models are compared with a store.
NOT_IN_THE_MODELS = ("directory_search", "ix_directory_organizations_search_trgm",
                     "ix_directory_organizations_name_trgm")  # migration 0014 drops it


def compared(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name`: whether a table or index of the store is compared with the models."""
    return not (name or "").startswith(NOT_IN_THE_MODELS)


def draft(message: str, autogenerate: bool, url: str | None) -> int:
    """A new migration numbered after the newest; with --autogenerate, drafted from the models' differences."""
    next_id = f"{int(head_revision() or 0) + 1:04d}"
    with tempfile.TemporaryDirectory() as scratch:
        engine = store_engine(url or f"sqlite:///{scratch}/draft.sqlite3")
        try:
            upgrade(engine)
            with engine.connect() as conn:
                command.revision(alembic_config(conn, target_metadata=model_metadata(), include_name=compared),
                                 message=message, autogenerate=autogenerate, rev_id=next_id)
        finally:
            engine.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.schema", description="Draft the next migration.")
    actions = parser.add_subparsers(dest="action", required=True)
    revision = actions.add_parser("revision", help="draft the next migration in migrations/versions/")
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--autogenerate", action="store_true",
                          help="compare the models with a store at the newest revision (a scratch SQLite one "
                               "unless --url is given)")
    revision.add_argument("--url", default=os.environ.get("AUDIT_DATABASE_URL"))
    options = parser.parse_args(argv)
    return draft(options.message, options.autogenerate, options.url)


if __name__ == "__main__":
    raise SystemExit(main())
