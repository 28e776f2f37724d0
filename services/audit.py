"""The audit log: every write attempt, who made it, why, and how it ended.

A row is stored *before* the API call (outcome "pending") and completed after it; if the row can't be stored,
the write does not happen. One row per intent: the idempotency key is unique, so a double click or a rerun
that repeats the same intent updates its row instead of adding one. Rows left "pending" by a console that
died are marked "unknown" at the next start, for a person to settle by re-reading the customer.

SQLite under `.data/` by default; any SQLAlchemy URL (AUDIT_DATABASE_URL) can replace it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (Boolean, Column, DateTime, Integer, MetaData, String, Table, Text, create_engine, func,
                        select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

OUTCOMES = ("pending", "succeeded", "failed", "denied", "unknown")
AUDIT_COLUMNS = ["id", "at", "user", "role", "action", "organization_id", "parameters", "reason", "outcome",
                 "error", "request_id", "attempts", "completed_at"]

metadata = MetaData()
audit_events = Table(
    "audit_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("user", String(100), nullable=False, index=True),
    Column("role", String(20), nullable=False),
    Column("action", String(50), nullable=False, index=True),
    Column("organization_id", String(120), index=True),
    Column("parameters", Text, nullable=False, default="{}"),
    Column("reason", Text, nullable=False, default=""),
    Column("outcome", String(20), nullable=False, index=True),
    Column("error", Text),
    Column("request_id", String(100)),
    Column("idempotency_key", String(255), unique=True),
    Column("attempts", Integer, nullable=False, default=1),
    Column("boot_id", String(40), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
)
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


class AuditUnavailable(Exception):
    user_message = "The audit log can't be written right now, so nothing was changed. Try again shortly."


@dataclass(frozen=True)
class AuditFilter:
    users: tuple[str, ...] = ()
    organization: str = ""
    actions: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class AuditLog:
    def __init__(self, url: str, boot_id: str | None = None) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        metadata.create_all(self.engine)
        self.boot_id = boot_id or uuid.uuid4().hex

    # --- writes ---------------------------------------------------------------------------------------
    def begin(self, *, user: str, role: str, action: str, organization_id: str | None,
              parameters: dict[str, Any], reason: str, idempotency_key: str | None) -> int:
        """Stores the intent before the call. Raises AuditUnavailable if it can't, so the call is not made."""
        row = {"at": _now(), "user": user, "role": role, "action": action, "organization_id": organization_id,
               "parameters": json.dumps(parameters, sort_keys=True, default=str, ensure_ascii=False), "reason": reason,
               "outcome": "pending", "idempotency_key": idempotency_key, "attempts": 1, "boot_id": self.boot_id}
        try:
            with self.engine.begin() as conn:
                return int(conn.execute(audit_events.insert().values(**row)).inserted_primary_key[0])
        except IntegrityError:
            return self._retry_of(idempotency_key)
        except SQLAlchemyError:
            raise AuditUnavailable() from None

    def _retry_of(self, idempotency_key: str | None) -> int:
        """The same intent again (double click, rerun): count the attempt on its existing row."""
        try:
            with self.engine.begin() as conn:
                event_id = conn.execute(select(audit_events.c.id).where(
                    audit_events.c.idempotency_key == idempotency_key)).scalar_one()
                conn.execute(update(audit_events).where(audit_events.c.id == event_id).values(
                    attempts=audit_events.c.attempts + 1, boot_id=self.boot_id))
                return int(event_id)
        except SQLAlchemyError:
            raise AuditUnavailable() from None

    def complete(self, event_id: int, outcome: str, error: str | None = None, request_id: str | None = None,
                 result: dict[str, Any] | None = None, organization_id: str | None = None) -> None:
        values: dict[str, Any] = {"outcome": outcome, "error": error, "request_id": request_id,
                                  "completed_at": _now()}
        if organization_id:
            values["organization_id"] = organization_id
        try:
            with self.engine.begin() as conn:
                if result:
                    current = conn.execute(select(audit_events.c.parameters).where(
                        audit_events.c.id == event_id)).scalar_one()
                    values["parameters"] = json.dumps({**json.loads(current), "result": result}, sort_keys=True, ensure_ascii=False,
                                                      default=str)
                conn.execute(update(audit_events).where(audit_events.c.id == event_id).values(**values))
        except SQLAlchemyError:
            pass  # the intent row exists; at worst it reads "pending"/"unknown" and is settled by a re-read

    def record(self, *, user: str, role: str, action: str, organization_id: str | None, outcome: str,
               error: str | None = None, parameters: dict[str, Any] | None = None, reason: str = "") -> None:
        """A one-shot row for an attempt that never reached the API (refused by role, throttled login)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(audit_events.insert().values(
                    at=_now(), user=user, role=role, action=action, organization_id=organization_id,
                    parameters=json.dumps(parameters or {}, sort_keys=True, default=str, ensure_ascii=False), reason=reason,
                    outcome=outcome, error=error, attempts=1, boot_id=self.boot_id, completed_at=_now()))
        except SQLAlchemyError:
            pass

    def mark_interrupted(self) -> int:
        """Rows still pending from an earlier run of the console: their outcome is unknown."""
        with self.engine.begin() as conn:
            return conn.execute(update(audit_events).where(
                (audit_events.c.outcome == "pending") & (audit_events.c.boot_id != self.boot_id)).values(
                outcome="unknown", error="The console stopped before the API answered; re-read the customer "
                                        "to see whether the change happened.")).rowcount

    def settle(self, event_id: int, outcome: str, note: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(audit_events).where(audit_events.c.id == event_id).values(
                outcome=outcome, error=note, completed_at=_now()))

    # --- reads ----------------------------------------------------------------------------------------
    def events(self, filters: AuditFilter | None = None, limit: int = 5000) -> pd.DataFrame:
        filters = filters or AuditFilter()
        query = select(audit_events).order_by(audit_events.c.at.desc(), audit_events.c.id.desc()).limit(limit)
        if filters.users:
            query = query.where(audit_events.c.user.in_(filters.users))
        if filters.organization.strip():
            query = query.where(audit_events.c.organization_id.contains(filters.organization.strip()))
        if filters.actions:
            query = query.where(audit_events.c.action.in_(filters.actions))
        if filters.outcomes:
            query = query.where(audit_events.c.outcome.in_(filters.outcomes))
        if filters.since:
            query = query.where(audit_events.c.at >= datetime.combine(filters.since, time.min, timezone.utc))
        if filters.until:
            query = query.where(audit_events.c.at < datetime.combine(filters.until + timedelta(days=1), time.min,
                                                                     timezone.utc))
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=[*AUDIT_COLUMNS, "idempotency_key", "boot_id"])[AUDIT_COLUMNS]
        for column in ("at", "completed_at"):
            frame[column] = pd.to_datetime(frame[column].map(_utc), utc=True)
        return frame

    def distinct(self, column: str) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(value for (value,) in conn.execute(select(func.distinct(audit_events.c[column])))
                          if value)

    def pending_for(self, organization_id: str) -> list[dict[str, Any]]:
        """Writes on an organization whose outcome is unknown and not yet settled by a re-read, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_events).where(
                (audit_events.c.organization_id == organization_id)
                & (audit_events.c.outcome == "unknown") & ~audit_events.c.error.startswith("Re-read by")).order_by(audit_events.c.id.desc()))
            return [dict(row._mapping) for row in rows]

    # --- login attempts (throttling) -------------------------------------------------------------------
    def record_login(self, username: str, succeeded: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(login_attempts.insert().values(username=username, at=_now(), succeeded=succeeded))

    def record_logout(self, username: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(logouts.insert().values(username=username, at=_now()))

    def last_logout(self, username: str) -> datetime | None:
        with self.engine.connect() as conn:
            return _utc(conn.execute(select(func.max(logouts.c.at)).where(logouts.c.username == username)).scalar())

    def recent_failures(self, username: str, window: timedelta) -> list[datetime]:
        """Failed attempts within the window since the last success, oldest first."""
        since = _now() - window
        with self.engine.connect() as conn:
            last_success = conn.execute(select(func.max(login_attempts.c.at)).where(
                (login_attempts.c.username == username) & login_attempts.c.succeeded)).scalar()
            if last_success is not None and _utc(last_success) > since:  # type: ignore[operator]
                since = _utc(last_success)  # type: ignore[assignment]
            rows = conn.execute(select(login_attempts.c.at).where(
                (login_attempts.c.username == username) & (login_attempts.c.at > since)
                & ~login_attempts.c.succeeded).order_by(login_attempts.c.at))
            return [_utc(at) for (at,) in rows]  # type: ignore[misc]
