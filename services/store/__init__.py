"""The console's database: one engine per process, its migrations, and the shared tables below everything else.

| module            | what it holds                                                                          |
|-------------------|----------------------------------------------------------------------------------------|
| `engine.py`       | `metadata` (every table module declares its tables on it), `store_engine`,              |
|                   | `write_transaction`, `StoreError`                                                      |
| `clock.py`        | `now`, `utc`: every stored time is UTC                                                 |
| `migrations.py`   | `open_store` (an engine, migrated), `upgrade` under a lock, the revisions              |
| `grants.py`       | what the console's PostgreSQL role may do, table by table; `grant_console`             |
| `leases.py`       | each console process's lease: who is alive (its table: `console_leases`)               |
| `rate_budget.py`  | one API key's rate shared by every process (its table: `rate_budgets`)                |
| `command.py`      | `python -m services.store upgrade | current | grant ROLE`                               |

The other tables belong to the parts that use them (services/audit/, services/auth/, services/jobs/,
services/approvals/, services/outbox/), each declaring them on `metadata`. This package imports none of them:
the full schema is gathered above it, in services/schema.py, which also drafts the next migration. SQLite under
`.data/` by default; PostgreSQL in production (`postgresql+psycopg://…`, psycopg 3); AUDIT_DATABASE_URL names it.
"""

from __future__ import annotations

from .clock import now, utc
from .engine import StoreError, metadata, store_engine, write_transaction
from .grants import CONSOLE_GRANTS, grant_console
from .migrations import (MIGRATIONS, PRE_MIGRATION_REVISION, alembic_config, current_revision, head_revision,
                         migration_lock, open_store, upgrade)

__all__ = ["CONSOLE_GRANTS", "MIGRATIONS", "PRE_MIGRATION_REVISION", "StoreError", "alembic_config", "current_revision",
           "grant_console", "head_revision", "metadata", "migration_lock", "now", "open_store", "store_engine",
           "upgrade", "utc", "write_transaction"]
