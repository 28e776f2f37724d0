"""The console's database: one engine per process and the schema every part of the console shares.

The audit log (services/audit.py) and the sign-in records (services/auth/sessions.py, throttle.py) declare
their tables on `metadata`; `open_store` connects and makes sure the tables exist. SQLite under `.data/` by
default; any SQLAlchemy URL (AUDIT_DATABASE_URL) can replace it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import Engine

metadata = MetaData()


def open_store(url: str) -> Engine:
    # The modules that declare tables must be imported before create_all sees them.
    from . import audit  # noqa: F401
    from .auth import sessions, throttle  # noqa: F401

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine


def now() -> datetime:
    return datetime.now(timezone.utc)


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
