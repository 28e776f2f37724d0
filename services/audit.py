"""The audit log: every write attempt, who made it, why, and how it ended.

A row is stored *before* the API call (outcome "pending") and completed after it; if the row can't be stored,
the write does not happen. One row per intent: the idempotency key is unique, so a double click or a rerun
that repeats the same intent updates its row instead of adding one. Rows left "pending" by a console process
that died (its lease expired, services/leases.py) are marked "unknown" by the processes still running, for a
person to settle by re-reading the customer.

Rows are stored in the console's database (services/store.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import Column, DateTime, Integer, String, Table, Text, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .leases import live_lease_ids
from .store import metadata, now as _now, open_store, utc as _utc

OUTCOMES = ("pending", "succeeded", "failed", "denied", "unknown")
AUDIT_COLUMNS = ["id", "at", "environment", "user", "subject", "role", "action", "organization_id", "parameters", "reason",
                 "outcome", "error", "request_id", "attempts", "completed_at"]

SETTLED_PREFIX = "Re-read by"  # an unknown outcome a person has looked at: its note starts so
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
    Column("environment", String(10)),  # sandbox, test or live: which money a row is about
    Column("subject", String(255)),  # the identity provider's id for the person, with single sign-on
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


class AuditLog:
    def __init__(self, store: Engine | str, boot_id: str | None = None, environment: str = "sandbox") -> None:
        """`store`: the console's engine, or a database URL to open (scripts and tests). `environment`
        ("sandbox", "test" or "live") is recorded on every row."""
        self.environment = environment
        self.engine: Engine = open_store(store) if isinstance(store, str) else store
        self.boot_id = boot_id or uuid.uuid4().hex

    # --- writes ---------------------------------------------------------------------------------------
    def begin(self, *, user: str, role: str, action: str, organization_id: str | None,
              parameters: dict[str, Any], reason: str, idempotency_key: str | None,
              subject: str | None = None) -> int:
        """Stores the intent before the call. Raises AuditUnavailable if it can't, so the call is not made."""
        row = {"at": _now(), "user": user, "role": role, "action": action, "organization_id": organization_id,
               "parameters": json.dumps(parameters, sort_keys=True, default=str, ensure_ascii=False), "reason": reason,
               "outcome": "pending", "idempotency_key": idempotency_key, "attempts": 1, "boot_id": self.boot_id,
               "environment": self.environment, "subject": subject}
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
               error: str | None = None, parameters: dict[str, Any] | None = None, reason: str = "",
               subject: str | None = None) -> None:
        """A one-shot row for an attempt that never reached the API (refused by role, throttled login)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(audit_events.insert().values(
                    at=_now(), user=user, role=role, action=action, organization_id=organization_id,
                    parameters=json.dumps(parameters or {}, sort_keys=True, default=str, ensure_ascii=False), reason=reason,
                    outcome=outcome, error=error, attempts=1, boot_id=self.boot_id, completed_at=_now(),
                    environment=self.environment, subject=subject))
        except SQLAlchemyError:
            pass

    def mark_interrupted(self) -> int:
        """Rows still pending from console processes that are gone: their outcome is unknown. A process is gone
        when it holds no live lease (services/leases.py): it crashed or stopped (the lease expired or was
        released) or it predates leases. Live processes' writes in flight are left alone. Runs at start and
        on every heartbeat of this process's lease; returns how many rows it marked."""
        with self.engine.begin() as conn:
            orphaned = ((audit_events.c.outcome == "pending") & (audit_events.c.boot_id != self.boot_id)
                        & audit_events.c.boot_id.not_in(live_lease_ids(conn)))
            # Looked for first: the beat finds none nearly always, and a read takes no write lock (SQLite).
            if conn.execute(select(audit_events.c.id).where(orphaned).limit(1)).first() is None:
                return 0
            return conn.execute(update(audit_events).where(orphaned).values(
                outcome="unknown", error="The console stopped before the API answered; re-read the customer "
                                        "to see whether the change happened.")).rowcount

    def settle(self, event_id: int, organization_id: str, note: str) -> bool:
        """Records that a person re-read the customer of an unknown outcome. Changes the row only if it is that
        organization's and still unknown and unsettled; returns whether it did."""
        with self.engine.begin() as conn:
            return conn.execute(update(audit_events).where(
                (audit_events.c.id == event_id) & (audit_events.c.organization_id == organization_id)
                & (audit_events.c.outcome == "unknown") & ~_settled()).values(
                error=f"{SETTLED_PREFIX} {note}", completed_at=_now())).rowcount == 1

    # --- reads ----------------------------------------------------------------------------------------
    def events(self, filters: AuditFilter | None = None, limit: int = 5000) -> pd.DataFrame:
        filters = filters or AuditFilter()
        query = select(audit_events).order_by(audit_events.c.at.desc(), audit_events.c.id.desc()).limit(limit)
        if filters.users:
            query = query.where(audit_events.c.user.in_(filters.users))
        if filters.organization.strip():
            query = query.where(audit_events.c.organization_id.contains(filters.organization.strip(), autoescape=True))
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

    def unsettled(self, organization_id: str) -> list[dict[str, Any]]:
        """Writes on an organization whose outcome is unknown and not yet settled by a re-read, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_events).where(
                (audit_events.c.organization_id == organization_id) & (audit_events.c.outcome == "unknown")
                & ~_settled()).order_by(audit_events.c.id.desc()))
            return [dict(row._mapping) for row in rows]


def _settled() -> Any:
    return func.coalesce(audit_events.c.error, "").startswith(SETTLED_PREFIX)
