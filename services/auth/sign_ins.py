"""Sign-in records: login attempts (for throttling) and logouts (a logout ends every session of that person)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Boolean, Column, DateTime, Integer, String, Table, func, select
from sqlalchemy.engine import Engine

from ..store import metadata, now, utc

login_attempts = Table(
    "login_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("succeeded", Boolean, nullable=False),
)
logouts = Table(
    "logouts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
)


class SignInRecords:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_login(self, username: str, succeeded: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(login_attempts.insert().values(username=username, at=now(), succeeded=succeeded))

    def record_logout(self, username: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(logouts.insert().values(username=username, at=now()))

    def last_logout(self, username: str) -> datetime | None:
        with self.engine.connect() as conn:
            return utc(conn.execute(select(func.max(logouts.c.at)).where(logouts.c.username == username)).scalar())

    def recent_failures(self, username: str, window: timedelta) -> list[datetime]:
        """Failed attempts within the window since the last success, oldest first."""
        since = now() - window
        with self.engine.connect() as conn:
            last_success = utc(conn.execute(select(func.max(login_attempts.c.at)).where(
                (login_attempts.c.username == username) & login_attempts.c.succeeded)).scalar())
            if last_success is not None and last_success > since:
                since = last_success
            rows = conn.execute(select(login_attempts.c.at).where(
                (login_attempts.c.username == username) & (login_attempts.c.at > since)
                & ~login_attempts.c.succeeded).order_by(login_attempts.c.at))
            return [moment for (at,) in rows if (moment := utc(at)) is not None]
