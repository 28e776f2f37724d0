"""The audit log: every write attempt, who made it, why, and how it ended; append-only and hash-chained.

The intent is stored *before* the API call (outcome "pending"); if it can't be stored, the write does not
happen. Nothing is ever updated: how the write ended is a new row linked to the intent, and so is a repeat of
the same intent (a double click or a rerun with the same idempotency key: one intent per key, the attempt
counted by its own row). Pending writes of a console process that died (its lease expired,
services/store/leases.py) get an "unknown" row from the processes still running, and a person's re-read of the
customer settles it with one more row. Rows, their hash chain and the append lock: chain.py; the
`audit_events` view folds them into one line per write attempt, which is what the pages read (reads.py).
"""

from __future__ import annotations

import json
import threading
import time as clock
import uuid
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from ..store import now as _now, open_store
from ..store.leases import live_lease_ids
from .chain import append, append_lock, audit_rows, cut_over, require_supported
from .keys import AuditKeys
from .lines import SETTLED_PREFIX, AuditUnavailable, approval_request_named, json_text, line_of, lines_of
from .reads import AuditReads
from .watch import ChainStatus, status

INTERRUPTED = ("The console stopped before the API answered; re-read the customer to see whether the change "
               "happened.")
CHAIN_STATUS_TTL_SECONDS = 30.0  # how long the page's chain check is reused before rows added since are hashed


class AuditLog(AuditReads):
    """The audit log: its writes here, its reads in reads.py."""

    def __init__(self, store: Engine | str, boot_id: str | None = None, environment: str = "sandbox",
                 keys: AuditKeys | None = None) -> None:
        """`store`: the console's engine, or a database URL to open (scripts and tests). `environment`
        ("sandbox", "test" or "live") is recorded on every row. `keys`: the audit key every new row's hash is an
        HMAC under (services/audit/keys.py; the console always has one, production requires it)."""
        self.environment, self.keys = environment, keys
        self.engine: Engine = open_store(store) if isinstance(store, str) else store
        require_supported(self.engine)
        self.boot_id = boot_id or uuid.uuid4().hex
        # Intents below this id all have an outcome row (they can't become pending again: ids grow under the
        # append lock), so mark_interrupted, on every heartbeat, looks only from here on.
        self._resolved_below = 0
        self._chain: tuple[float, ChainStatus] | None = None
        self._chain_lock = threading.Lock()

    # --- writes ---------------------------------------------------------------------------------------
    def begin(self, *, user: str, role: str, action: str, organization_id: str | None,
              parameters: dict[str, Any], reason: str, idempotency_key: str | None,
              subject: str | None = None) -> int:
        """Stores the intent before the call; returns its id. The same idempotency key again is the same
        intent: an "attempt" row is linked to it. Raises AuditUnavailable if it can't, so the call is not made."""
        row = {"at": _now(), "user": user, "role": role, "action": action, "organization_id": organization_id,
               "parameters": json_text(parameters), "reason": reason, "outcome": "pending", "attempts": 1,
               "boot_id": self.boot_id, "environment": self.environment, "subject": subject}
        try:
            with append_lock(self.engine) as conn:  # looked up under the lock: a double click can't add two
                intent_id = conn.execute(select(audit_rows.c.id).where(
                    audit_rows.c.idempotency_key == idempotency_key)).scalar() if idempotency_key else None
                if intent_id is None:
                    return append(conn, {**row, "kind": "intent", "idempotency_key": idempotency_key}, self.keys)
                append(conn, {**row, "kind": "attempt", "intent_id": intent_id}, self.keys)
                return int(intent_id)
        except SQLAlchemyError:
            raise AuditUnavailable() from None

    def complete(self, event_id: int, outcome: str, error: str | None = None, request_id: str | None = None,
                 result: dict[str, Any] | None = None, organization_id: str | None = None) -> None:
        """How the write ended: an "outcome" row linked to its intent. `result` joins the parameters;
        `organization_id` re-files the write (the API named the real organization)."""
        try:
            with append_lock(self.engine) as conn:
                line = line_of(conn, event_id)
                if line is None:
                    return
                parameters = line.parameters
                if result:
                    parameters = json_text({**json.loads(parameters), "result": result})
                append(conn, self._linked(line, kind="outcome", outcome=outcome, error=error, request_id=request_id,
                                          parameters=parameters,
                                          organization_id=organization_id or line.organization_id), self.keys)
        except SQLAlchemyError:
            pass  # the intent row exists; at worst it reads "pending"/"unknown" and is settled by a re-read

    def record(self, *, user: str, role: str, action: str, organization_id: str | None, outcome: str,
               error: str | None = None, parameters: dict[str, Any] | None = None, reason: str = "",
               subject: str | None = None, required: bool = False) -> None:
        """A one-shot row for an attempt that never reached the API (refused by role, throttled login), or for
        an act recorded as it is done (a bulk job started, a download). `required`: raise AuditUnavailable if
        it can't be stored, so the act is not done."""
        moment = _now()
        try:
            with append_lock(self.engine) as conn:
                append(conn, {"kind": "intent", "at": moment, "user": user, "role": role, "action": action,
                              "organization_id": organization_id, "parameters": json_text(parameters or {}),
                              "reason": reason, "outcome": outcome, "error": error, "attempts": 1,
                              "boot_id": self.boot_id, "completed_at": moment, "environment": self.environment,
                              "subject": subject}, self.keys)
        except SQLAlchemyError:
            if required:
                raise AuditUnavailable() from None

    def mark_interrupted(self) -> int:
        """Writes still pending from console processes that are gone get an "unknown" outcome row. A process
        is gone when it holds no live lease (services/store/leases.py): it crashed or stopped (the lease expired or
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
                                          parameters=intent.parameters, organization_id=intent.organization_id),
                       self.keys)
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
        return lines_of(conn, orphans.scalars())

    def approval_request_of(self, event_id: int) -> str | None:
        """The four-eyes request a write was made for (its intent row's parameters name it), if any."""
        with self.engine.connect() as conn:
            line = line_of(conn, event_id)
        return approval_request_named(line.parameters) if line is not None else None

    def settle(self, event_id: int, organization_id: str, note: str) -> bool:
        """Records that a person re-read the customer of an unknown outcome: a "settled" row linked to the
        unknown one. Only for an intent of that organization whose latest outcome is unknown and unsettled;
        returns whether it recorded one."""
        with append_lock(self.engine) as conn:  # checked under the lock: two people can't both settle it
            line = line_of(conn, event_id)
            if line is None or line.organization_id != organization_id or line.outcome != "unknown" or line.settled:
                return False
            append(conn, self._linked(line, kind="settled", settles_id=line.outcome_row_id or line.id,
                                      outcome="unknown", error=f"{SETTLED_PREFIX} {note}",
                                      request_id=line.request_id, parameters=line.parameters,
                                      organization_id=organization_id), self.keys)
            return True

    def _linked(self, line: Row[Any], **values: Any) -> dict[str, Any]:
        """A row about the write `line` (a line of audit_events): it repeats who made it and why, so every
        row reads on its own, and says which process wrote it and when."""
        moment = _now()
        return {"intent_id": line.id, "at": moment, "completed_at": moment, "user": line.user, "role": line.role,
                "action": line.action, "reason": line.reason, "environment": line.environment,
                "subject": line.subject, "attempts": 1, "boot_id": self.boot_id, **values}

    # --- the chain ------------------------------------------------------------------------------------
    def chain_status(self, ttl_seconds: float = CHAIN_STATUS_TTL_SECONDS) -> ChainStatus:
        """Whether the chain verifies, for the Audit page (services/audit/watch.py: a small log re-hashed whole,
        a large one from the checkpoint, beside the newest scheduled full verification); the answer is reused
        for `ttl_seconds`."""
        with self._chain_lock:  # one check at a time per process; the others wait for its answer
            cached = self._chain
            if cached is not None and clock.monotonic() - cached[0] < ttl_seconds:
                return cached[1]
            report = status(self.engine, self.keys)
            self._chain = (clock.monotonic(), report)
            return report

    def cut_over(self) -> int | None:
        """Once, for a store hashed before it had a key: one keyed cut-over row, chained onto the last unkeyed one,
        seals the unkeyed past; from it on every row is keyed (services/audit/keys.py). Returns its id, or None when
        the log is empty or already ends keyed. Production runs it by hand (`python -m services.audit cut-over`,
        whose output goes into the incident-free record): done automatically, it would also seal a log someone
        rewrote without the key. The sandbox on its own file does it at start."""
        return cut_over(self.engine, self.keys, self.boot_id, self.environment) if self.keys is not None else None
