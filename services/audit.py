"""The audit log: every write attempt, who made it, why, and how it ended; append-only and hash-chained.

The intent is stored *before* the API call (outcome "pending"); if it can't be stored, the write does not
happen. Nothing is ever updated: how the write ended is a new row linked to the intent, and so is a repeat of
the same intent (a double click or a rerun with the same idempotency key: one intent per key, the attempt
counted by its own row). Pending writes of a console process that died (its lease expired,
services/leases.py) get an "unknown" row from the processes still running, and a person's re-read of the
customer settles it with one more row. Rows, their hash chain and the append lock: services/audit_chain.py;
the `audit_events` view folds them into one line per write attempt, which is what the pages read.
Verifying the chain: services/audit_verify.py, `python -m services.audit verify`.

Rows are stored in the console's database (services/store.py).
"""

from __future__ import annotations

import json
import threading
import time as clock
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, exists, func, or_, select, union
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from .audit_chain import append, append_lock, audit_events, audit_rows, require_supported
from .audit_verify import ChainReport, incremental
from .leases import live_lease_ids
from .store import now as _now, open_store, utc as _utc

__all__ = ["AUDIT_COLUMNS", "OUTCOMES", "SETTLED_PREFIX", "AuditFilter", "AuditLog", "AuditUnavailable",
           "audit_events", "audit_rows"]

OUTCOMES = ("pending", "succeeded", "failed", "denied", "unknown")
AUDIT_COLUMNS = ["id", "at", "environment", "user", "subject", "role", "action", "organization_id", "parameters",
                 "reason", "outcome", "error", "request_id", "attempts", "completed_at"]

SETTLED_PREFIX = "Re-read by"  # a settled unknown outcome's note starts so (rows before 0004 are told by it)
INTERRUPTED = ("The console stopped before the API answered; re-read the customer to see whether the change "
               "happened.")
CHAIN_STATUS_TTL_SECONDS = 30.0  # how long the page's chain check is reused before rows added since are hashed


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
        require_supported(self.engine)
        self.boot_id = boot_id or uuid.uuid4().hex
        # Intents below this id all have an outcome row (they can't become pending again: ids grow under the
        # append lock), so mark_interrupted, on every heartbeat, looks only from here on.
        self._resolved_below = 0
        self._chain: tuple[float, ChainReport] | None = None
        self._chain_lock = threading.Lock()

    # --- writes ---------------------------------------------------------------------------------------
    def begin(self, *, user: str, role: str, action: str, organization_id: str | None,
              parameters: dict[str, Any], reason: str, idempotency_key: str | None,
              subject: str | None = None) -> int:
        """Stores the intent before the call; returns its id. The same idempotency key again is the same
        intent: an "attempt" row is linked to it. Raises AuditUnavailable if it can't, so the call is not made."""
        row = {"at": _now(), "user": user, "role": role, "action": action, "organization_id": organization_id,
               "parameters": _json(parameters), "reason": reason, "outcome": "pending", "attempts": 1,
               "boot_id": self.boot_id, "environment": self.environment, "subject": subject}
        try:
            with append_lock(self.engine) as conn:  # looked up under the lock: a double click can't add two
                intent_id = conn.execute(select(audit_rows.c.id).where(
                    audit_rows.c.idempotency_key == idempotency_key)).scalar() if idempotency_key else None
                if intent_id is None:
                    return append(conn, {**row, "kind": "intent", "idempotency_key": idempotency_key})
                append(conn, {**row, "kind": "attempt", "intent_id": intent_id})
                return int(intent_id)
        except SQLAlchemyError:
            raise AuditUnavailable() from None

    def complete(self, event_id: int, outcome: str, error: str | None = None, request_id: str | None = None,
                 result: dict[str, Any] | None = None, organization_id: str | None = None) -> None:
        """How the write ended: an "outcome" row linked to its intent. `result` joins the parameters;
        `organization_id` re-files the write (the API named the real organization)."""
        try:
            with append_lock(self.engine) as conn:
                line = _line(conn, event_id)
                if line is None:
                    return
                parameters = line.parameters
                if result:
                    parameters = _json({**json.loads(parameters), "result": result})
                append(conn, self._linked(line, kind="outcome", outcome=outcome, error=error, request_id=request_id,
                                          parameters=parameters,
                                          organization_id=organization_id or line.organization_id))
        except SQLAlchemyError:
            pass  # the intent row exists; at worst it reads "pending"/"unknown" and is settled by a re-read

    def record(self, *, user: str, role: str, action: str, organization_id: str | None, outcome: str,
               error: str | None = None, parameters: dict[str, Any] | None = None, reason: str = "",
               subject: str | None = None) -> None:
        """A one-shot row for an attempt that never reached the API (refused by role, throttled login)."""
        moment = _now()
        try:
            with append_lock(self.engine) as conn:
                append(conn, {"kind": "intent", "at": moment, "user": user, "role": role, "action": action,
                              "organization_id": organization_id, "parameters": _json(parameters or {}),
                              "reason": reason, "outcome": outcome, "error": error, "attempts": 1,
                              "boot_id": self.boot_id, "completed_at": moment, "environment": self.environment,
                              "subject": subject})
        except SQLAlchemyError:
            pass

    def mark_interrupted(self) -> int:
        """Writes still pending from console processes that are gone get an "unknown" outcome row. A process
        is gone when it holds no live lease (services/leases.py): it crashed or stopped (the lease expired or
        was released) or it predates leases. A write is left alone while any process that sent it (the
        intent's, or a retry's) is this one or alive. Runs at start and on every heartbeat of this process's
        lease; returns how many rows it added."""
        # Looked for first without the append lock: the beat finds none nearly always, and on SQLite the
        # lock is the database's write lock.
        with self.engine.connect() as conn:
            if not self._orphans(conn, advance=True):
                return 0
        with append_lock(self.engine) as conn:
            orphans = self._orphans(conn)  # again under the lock: another process may have marked them
            for intent in orphans:
                append(conn, self._linked(intent, kind="outcome", outcome="unknown", error=INTERRUPTED,
                                          parameters=intent.parameters, organization_id=intent.organization_id))
            return len(orphans)

    def _orphans(self, conn: Connection, advance: bool = False) -> list[Row[Any]]:
        """Pending intents (no outcome row) whose every sender is gone. `advance`: move the watermark past
        intents that are all resolved. In steps, each a plain query: the pending ids (an anti-join over the
        ids past the watermark, never MIN() over it, which a planner may turn into a nested loop that scans
        for each row), which of those are orphaned, then their lines."""
        intent, linked = audit_rows, audit_rows.alias("linked")
        newest = conn.execute(select(func.max(audit_rows.c.id))).scalar() or 0  # before: later intents are larger
        pending = list(conn.execute(select(intent.c.id).where(
            (intent.c.kind == "intent") & (intent.c.outcome == "pending") & (intent.c.id >= self._resolved_below)
            & ~exists().where((linked.c.intent_id == intent.c.id) & linked.c.kind.in_(("outcome", "settled")))
        )).scalars())
        if advance:
            self._resolved_below = min(pending, default=newest + 1)
        if not pending:
            return []
        live = live_lease_ids(conn)
        sent_by_someone_alive = or_(
            intent.c.boot_id == self.boot_id, intent.c.boot_id.in_(live),
            exists().where((linked.c.intent_id == intent.c.id) & (linked.c.kind == "attempt")
                           & ((linked.c.boot_id == self.boot_id) | linked.c.boot_id.in_(live))))
        orphans = conn.execute(select(intent.c.id).where(intent.c.id.in_(pending) & ~sent_by_someone_alive))
        return _lines(conn, orphans.scalars())

    def settle(self, event_id: int, organization_id: str, note: str) -> bool:
        """Records that a person re-read the customer of an unknown outcome: a "settled" row linked to the
        unknown one. Only for an intent of that organization whose latest outcome is unknown and unsettled;
        returns whether it recorded one."""
        with append_lock(self.engine) as conn:  # checked under the lock: two people can't both settle it
            line = _line(conn, event_id)
            if line is None or line.organization_id != organization_id or line.outcome != "unknown" or line.settled:
                return False
            append(conn, self._linked(line, kind="settled", settles_id=line.outcome_row_id or line.id,
                                      outcome="unknown", error=f"{SETTLED_PREFIX} {note}",
                                      request_id=line.request_id, parameters=line.parameters,
                                      organization_id=organization_id))
            return True

    def _linked(self, line: Row[Any], **values: Any) -> dict[str, Any]:
        """A row about the write `line` (a line of audit_events): it repeats who made it and why, so every
        row reads on its own, and says which process wrote it and when."""
        moment = _now()
        return {"intent_id": line.id, "at": moment, "completed_at": moment, "user": line.user, "role": line.role,
                "action": line.action, "reason": line.reason, "environment": line.environment,
                "subject": line.subject, "attempts": 1, "boot_id": self.boot_id, **values}

    # --- reads ----------------------------------------------------------------------------------------
    def events(self, filters: AuditFilter | None = None, limit: int = 5000) -> pd.DataFrame:
        """One line per write attempt, newest first: the intent with its latest outcome (the view)."""
        filters = filters or AuditFilter()
        view = audit_events
        query = select(view).order_by(view.c.at.desc(), view.c.id.desc()).limit(limit)
        if filters.users:
            query = query.where(view.c.user.in_(filters.users))
        if filters.organization.strip():
            query = query.where(view.c.organization_id.contains(filters.organization.strip(), autoescape=True))
        if filters.actions:
            query = query.where(view.c.action.in_(filters.actions))
        if filters.outcomes:
            query = query.where(view.c.outcome.in_(filters.outcomes))
        if filters.since:
            query = query.where(view.c.at >= datetime.combine(filters.since, time.min, timezone.utc))
        if filters.until:
            query = query.where(view.c.at < datetime.combine(filters.until + timedelta(days=1), time.min, timezone.utc))
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=[column.name for column in view.columns])[AUDIT_COLUMNS]
        for column in ("at", "completed_at"):
            frame[column] = pd.to_datetime(frame[column].map(_utc), utc=True)
        return frame

    def distinct(self, column: str) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(value for (value,) in conn.execute(select(func.distinct(audit_events.c[column])))
                          if value)

    def unsettled(self, organization_id: str) -> list[dict[str, Any]]:
        """Writes on an organization whose outcome is unknown and not yet settled by a re-read, newest first."""
        rows = audit_rows
        # Found through the indexed organization of the rows that can say "unknown", then folded.
        candidates = union(
            select(rows.c.id).where((rows.c.organization_id == organization_id) & (rows.c.kind == "intent")
                                    & (rows.c.outcome == "unknown")),
            select(rows.c.intent_id).where((rows.c.organization_id == organization_id) & (rows.c.kind == "outcome")
                                           & (rows.c.outcome == "unknown")))
        view = audit_events
        with self.engine.connect() as conn:
            lines = _lines(conn, conn.execute(candidates).scalars(), (view.c.organization_id == organization_id)
                           & (view.c.outcome == "unknown") & (view.c.settled == 0), newest_first=True)
            return [dict(line._mapping) for line in lines]

    # --- the chain ------------------------------------------------------------------------------------
    def chain_status(self, ttl_seconds: float = CHAIN_STATUS_TTL_SECONDS) -> ChainReport:
        """Whether the chain verifies, for the Audit page: the rows added since the stored checkpoint are
        hashed (services/audit_verify.py), and the answer is reused for `ttl_seconds`."""
        with self._chain_lock:  # one check at a time per process; the others wait for its answer
            cached = self._chain
            if cached is not None and clock.monotonic() - cached[0] < ttl_seconds:
                return cached[1]
            report = incremental(self.engine)
            self._chain = (clock.monotonic(), report)
            return report


def _line(conn: Connection, event_id: int) -> Row[Any] | None:
    return conn.execute(select(audit_events).where(audit_events.c.id == event_id)).first()


def _lines(conn: Connection, event_ids: Iterable[int], condition: ColumnElement[bool] | None = None,
           newest_first: bool = False) -> list[Row[Any]]:
    """The audit_events lines of these intents (that also meet `condition`), by id."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return []
    query = select(audit_events).where(audit_events.c.id.in_(wanted))
    if condition is not None:
        query = query.where(condition)
    return list(conn.execute(query.order_by(audit_events.c.id.desc() if newest_first else audit_events.c.id)))


def _json(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=str, ensure_ascii=False)


if __name__ == "__main__":
    # Run as `python -m services.audit verify`: the command lives with the verification. (This file as
    # __main__ is a second copy of the module; it declares no tables, so the copy is harmless.)
    from services.audit_verify import main

    raise SystemExit(main())
