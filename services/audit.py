"""The audit log: every write attempt, who made it, why, and how it ended; append-only and hash-chained.

The intent is stored *before* the API call (outcome "pending"); if it can't be stored, the write does not
happen. Nothing is ever updated: how the write ended is a new row linked to the intent, and so is a repeat of
the same intent (a double click or a rerun with the same idempotency key: one intent per key, the attempt
counted by its own row). Pending writes of a console process that died (its lease expired,
services/leases.py) get an "unknown" row from the processes still running, and a person's re-read of the
customer settles it with one more row. Rows, their hash chain and the append lock: services/audit_chain.py;
the `audit_events` view folds them into one line per write attempt, which is what the pages read.
Verifying the chain: services/audit_verify.py; on a schedule, with a witness, and `python -m services.audit verify`:
services/audit_watch.py. The key its hashes are HMACs under: services/audit_keys.py.

Rows are stored in the console's database (services/store.py).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time as clock
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, BinaryIO

import pandas as pd
from sqlalchemy import (ColumnElement, CompoundSelect, Index, Integer, String, any_, bindparam, exists, false, func,
                        literal, or_, select, text, true, tuple_, union, union_all)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from .audit_chain import append, append_lock, audit_events, audit_rows, cut_over, require_supported
from .audit_keys import AuditKeys
from .audit_watch import ChainStatus, status
from .exports import SafeCsvWriter
from .leases import live_lease_ids
from .store import now as _now, open_store, utc as _utc

__all__ = ["AUDIT_COLUMNS", "OUTCOMES", "PAGE_SIZE", "SETTLED_PREFIX", "AuditCursor", "AuditFilter", "AuditLog",
           "AuditPage", "AuditSummary", "AuditUnavailable", "AuditUnreadable", "ChainStatus", "reading",
           "audit_events", "audit_rows"]

OUTCOMES = ("pending", "succeeded", "failed", "denied", "unknown")
AUDIT_COLUMNS = ["id", "at", "environment", "user", "subject", "role", "action", "organization_id", "parameters",
                 "reason", "outcome", "error", "request_id", "attempts", "completed_at"]

SETTLED_PREFIX = "Re-read by"  # a settled unknown outcome's note starts so (rows before 0004 are told by it)
INTERRUPTED = ("The console stopped before the API answered; re-read the customer to see whether the change "
               "happened.")
CHAIN_STATUS_TTL_SECONDS = 30.0  # how long the page's chain check is reused before rows added since are hashed
PAGE_SIZE = 100  # lines per page of the Audit page
# On PostgreSQL an organization filter's candidate intents are read once per page and handed to its reads as
# one array of ids, up to this many (more: each read finds them itself, as on SQLite).
READ_CANDIDATES_UP_TO = 100_000
EXPORT_BATCH = 5000  # lines per query of an export
DISTINCT_COLUMNS = ("user", "action")
NEWEST_FIRST = (audit_events.c.at.desc(), audit_events.c.id.desc())

# The read indexes of migration 0005, declared with the reads they serve so the models match the schema (once:
# `python -m services.audit` runs a second copy of this module).
if not any(index.name == "ix_audit_rows_intents_newest" for index in audit_rows.indexes):
    _INTENTS = audit_rows.c.kind == "intent"
    for _name, _columns in (("intents_newest", ("at", "id")), ("intents_user_at", ("user", "at")),
                            ("intents_action_at", ("action", "at"))):
        Index(f"ix_audit_rows_{_name}", *(audit_rows.c[column] for column in _columns),
              postgresql_where=_INTENTS, sqlite_where=_INTENTS)
    Index("ix_audit_rows_organization_at", audit_rows.c.organization_id, audit_rows.c.at,
          postgresql_ops={"organization_id": "varchar_pattern_ops"})


class AuditUnavailable(Exception):
    user_message = "The audit log can't be written right now, so nothing was changed. Try again shortly."


class AuditUnreadable(AuditUnavailable):
    """A read of the audit log failed (the store is down): the rest of the page still shows."""
    user_message = "The audit log can't be read right now (its database isn't answering). Try again shortly."


@contextmanager
def reading() -> Iterator[None]:
    """Around a read of the audit log: a store that isn't answering becomes one sentence, not a traceback."""
    try:
        yield
    except SQLAlchemyError:
        raise AuditUnreadable() from None


@dataclass(frozen=True)
class AuditFilter:
    users: tuple[str, ...] = ()
    organization: str = ""
    actions: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    # "exact", or "prefix": the organization ids that start with it. A trailing "*" also means prefix.
    organization_match: str = "exact"

    def organization_filter(self) -> tuple[str, bool]:
        """The organization to match and whether as a prefix ("", False: no organization filter)."""
        value = self.organization.strip()
        prefix = self.organization_match == "prefix" or value.endswith("*")
        value = value.rstrip("*").strip()
        return value, prefix and bool(value)


@dataclass(frozen=True)
class AuditCursor:
    """Where a page ends: the (at, id) of its last line, as the store handed them back."""
    at: datetime
    id: int

    @classmethod
    def of(cls, row: Row[Any]) -> AuditCursor:
        return cls(row.at, int(row.id))


@dataclass(frozen=True)
class AuditPage:
    frame: pd.DataFrame
    next: AuditCursor | None  # the cursor of the page after this one; None: this is the last


@dataclass(frozen=True)
class AuditSummary:
    total: int
    outcomes: dict[str, int] | None  # lines per outcome; None when too many matched to fold them all
    newest: AuditCursor | None  # the newest matching line: the export goes no further


class AuditLog:
    def __init__(self, store: Engine | str, boot_id: str | None = None, environment: str = "sandbox",
                 keys: AuditKeys | None = None) -> None:
        """`store`: the console's engine, or a database URL to open (scripts and tests). `environment`
        ("sandbox", "test" or "live") is recorded on every row. `keys`: the audit key every new row's hash is an
        HMAC under (services/audit_keys.py; the console always has one, production requires it)."""
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
               "parameters": _json(parameters), "reason": reason, "outcome": "pending", "attempts": 1,
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
                line = _line(conn, event_id)
                if line is None:
                    return
                parameters = line.parameters
                if result:
                    parameters = _json({**json.loads(parameters), "result": result})
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
                              "organization_id": organization_id, "parameters": _json(parameters or {}),
                              "reason": reason, "outcome": outcome, "error": error, "attempts": 1,
                              "boot_id": self.boot_id, "completed_at": moment, "environment": self.environment,
                              "subject": subject}, self.keys)
        except SQLAlchemyError:
            if required:
                raise AuditUnavailable() from None

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
        return _lines(conn, orphans.scalars())

    def approval_request_of(self, event_id: int) -> str | None:
        """The four-eyes request a write was made for (its intent row's parameters name it), if any."""
        with self.engine.connect() as conn:
            line = _line(conn, event_id)
        return approval_request_named(line.parameters) if line is not None else None

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
                                      organization_id=organization_id), self.keys)
            return True

    def _linked(self, line: Row[Any], **values: Any) -> dict[str, Any]:
        """A row about the write `line` (a line of audit_events): it repeats who made it and why, so every
        row reads on its own, and says which process wrote it and when."""
        moment = _now()
        return {"intent_id": line.id, "at": moment, "completed_at": moment, "user": line.user, "role": line.role,
                "action": line.action, "reason": line.reason, "environment": line.environment,
                "subject": line.subject, "attempts": 1, "boot_id": self.boot_id, **values}

    # --- reads ----------------------------------------------------------------------------------------
    # The page and the export read through `_where`: every filter as a condition on the view that PostgreSQL
    # pushes down to the intent rows and their 0005 indexes (time, user and action are the intent's own
    # columns; the organization is found through the rows that carry it, then checked on the folded line).
    def events(self, filters: AuditFilter | None = None, limit: int = 5000) -> pd.DataFrame:
        """One line per write attempt, newest first: the intent with its latest outcome (the view). At most
        `limit` lines: the page reads `page`, the download `export`, which have no cap."""
        view = audit_events
        conditions = _where(filters or AuditFilter(), self.engine.dialect.name)
        query = select(view).where(*conditions).order_by(*NEWEST_FIRST).limit(limit)
        with self.engine.connect() as conn:
            return _frame(conn.execute(query))

    def page(self, filters: AuditFilter | None = None, after: AuditCursor | None = None,
             size: int = PAGE_SIZE, upto: AuditCursor | None = None) -> AuditPage:
        """The `size` newest matching lines older than `after` (None: the first page), by keyset on (at, id):
        an index range however deep the page. `next` is the cursor for the page after it (None: the last)."""
        with self.engine.connect() as conn:
            return _page(self._page_rows(conn, filters or AuditFilter(), after, upto, size), size)

    def summary_and_page(self, filters: AuditFilter | None = None, after: AuditCursor | None = None,
                         size: int = PAGE_SIZE, outcome_breakdown_up_to: int = 10_000
                         ) -> tuple[AuditSummary, AuditPage]:
        """What the Audit page shows: `summary` and `page(filters, after, size, upto=summary.newest)`, in fewer
        and cheaper reads. On the first page its top line *is* the newest match, so that needs no query of its
        own, and the count is bounded by it (the page and the count agree either way); an organization
        filter's candidates are read once for all the reads (`_candidates`). On a million events each read of
        a filter by organization folded every candidate again: most of a click's time (docs/performance.md)."""
        filters = filters or AuditFilter()
        with self.engine.connect() as conn:
            candidates = self._candidates(conn, filters)
            if after is None:  # the first page: its top line is the newest match
                rows = self._page_rows(conn, filters, None, None, size, candidates)
                top = AuditCursor.of(rows[0]) if rows else None
            else:
                top = self._newest(conn, filters, candidates)
                rows = self._page_rows(conn, filters, after, top, size, candidates) if top else []
            if top is None:
                return AuditSummary(0, {}, None), _page(rows, size)
            summary = self._counted(conn, filters, top, outcome_breakdown_up_to, candidates)
        return summary, _page(rows, size)

    def _candidates(self, conn: Connection, filters: AuditFilter) -> list[int] | None:
        """The intents an organization filter can match (`_carriers`), read once for all of a page's reads:
        each read then looks them up by id. Found again by each read instead, PostgreSQL's plan walks every
        intent of the date range to join them (tens of ms a read on a million events). None: no organization
        filter, not PostgreSQL (SQLite plans the subquery well), or over READ_CANDIDATES_UP_TO."""
        carriers = _carriers(filters, self.engine.dialect.name, distinct=False)
        if carriers is None or self.engine.dialect.name != "postgresql":
            return None
        # Not deduplicated by the store, so a filter with too many candidates costs a short read, not a full one.
        found = list(conn.execute(carriers.limit(READ_CANDIDATES_UP_TO + 1)).scalars())
        return sorted(set(found)) if len(found) <= READ_CANDIDATES_UP_TO else None

    def summary(self, filters: AuditFilter | None = None, outcome_breakdown_up_to: int = 10_000) -> AuditSummary:
        """How many lines match, the newest of them (the export's upper bound, so the file holds exactly the
        lines counted), and, when there are at most `outcome_breakdown_up_to`, how many of each outcome."""
        filters = filters or AuditFilter()
        with self.engine.connect() as conn:
            top = self._newest(conn, filters)
            if top is None:
                return AuditSummary(0, {}, None)
            return self._counted(conn, filters, top, outcome_breakdown_up_to)

    def _newest(self, conn: Connection, filters: AuditFilter,
                candidates: list[int] | None = None) -> AuditCursor | None:
        view = audit_events
        conditions = _where(filters, self.engine.dialect.name, candidates=candidates)
        newest = conn.execute(select(view.c.at, view.c.id).where(*conditions).order_by(*NEWEST_FIRST)
                              .limit(1)).first()
        return None if newest is None else AuditCursor.of(newest)

    def _page_rows(self, conn: Connection, filters: AuditFilter, after: AuditCursor | None,
                   upto: AuditCursor | None, size: int, candidates: list[int] | None = None) -> list[Row[Any]]:
        """Up to `size` + 1 matching lines, newest first: the extra one says whether there is a next page."""
        conditions = _where(filters, self.engine.dialect.name, after, upto, candidates)
        return list(conn.execute(select(audit_events).where(*conditions).order_by(*NEWEST_FIRST).limit(size + 1)))

    def _counted(self, conn: Connection, filters: AuditFilter, top: AuditCursor,
                 outcome_breakdown_up_to: int, candidates: list[int] | None = None) -> AuditSummary:
        """The summary of the lines matching `filters` no newer than `top` (the newest of them). Each outcome
        needs the line folded, so the outcomes are counted over a large match only if matching folds anyway."""
        view = audit_events
        bounded = _where(filters, self.engine.dialect.name, upto=top, candidates=candidates)
        by_outcome = (select(view.c.outcome, func.count()).where(*bounded).group_by(view.c.outcome)
                      .order_by(func.count().desc(), view.c.outcome))
        if _folds(filters):  # the fold is paid to match each line: count the outcomes in the same pass
            outcomes = {outcome: int(count) for outcome, count in conn.execute(by_outcome)}
            total = sum(outcomes.values())
            return AuditSummary(total, outcomes if total <= outcome_breakdown_up_to else None, top)
        # Nothing to fold to match: PostgreSQL counts the intents alone (it drops the outcome join).
        total = int(conn.execute(select(func.count()).select_from(view).where(*bounded)).scalar() or 0)
        if total > outcome_breakdown_up_to:
            return AuditSummary(total, None, top)
        return AuditSummary(total, {outcome: int(count) for outcome, count in conn.execute(by_outcome)}, top)

    def export(self, filters: AuditFilter | None, out: BinaryIO, upto: AuditCursor | None = None,
               batch: int = EXPORT_BATCH) -> int:
        """Writes every matching line (newest first, none newer than `upto`) to `out` as formula-safe CSV,
        `batch` lines per query (keyset on (at, id), each a short read), so memory holds one batch whatever
        the size. Returns how many lines it wrote."""
        filters = filters or AuditFilter()
        view = audit_events
        names = [column.name for column in view.columns]
        picks = [names.index(column) for column in AUDIT_COLUMNS]
        times = {AUDIT_COLUMNS.index("at"), AUDIT_COLUMNS.index("completed_at")}
        writer = SafeCsvWriter(out, AUDIT_COLUMNS)
        after: AuditCursor | None = None
        try:
            while True:
                with self.engine.connect() as conn:
                    conditions = _where(filters, self.engine.dialect.name, after, upto)
                    rows = conn.execute(select(view).where(*conditions).order_by(*NEWEST_FIRST).limit(batch)).all()
                for row in rows:
                    writer.write([_utc(row[pick]) if index in times else row[pick]
                                  for index, pick in enumerate(picks)])
                if len(rows) < batch:
                    return writer.rows
                after = AuditCursor.of(rows[-1])
        finally:
            writer.close()

    def export_file(self, filters: AuditFilter | None, upto: AuditCursor | None = None) -> BinaryIO:
        """The export in a temporary file (deleted when closed), rewound: what a download hands over."""
        spool = tempfile.TemporaryFile()
        try:
            self.export(filters, spool, upto)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def job_downloads(self, job_ids: Iterable[str], limit: int = 200) -> pd.DataFrame:
        """The downloads of these bulk jobs' results or summaries, newest first (a customer's history: which
        exports held it). Found among the download rows (an index range on the action) by the job they name."""
        job_ids = [job_id for job_id in job_ids if job_id and job_id.isalnum()]
        if not job_ids:
            return _frame([])
        view = audit_events
        naming = or_(*(view.c.parameters.like(f'%"job": "{job_id}"%') for job_id in job_ids))
        query = (select(view).where(view.c.action == "download bulk lookup", naming)
                 .order_by(*NEWEST_FIRST).limit(limit))
        with self.engine.connect() as conn:
            return _frame(conn.execute(query))

    def distinct(self, column: str) -> list[str]:
        """The values of an intent column (user, action) the filters can offer: a loose index scan (the
        next value after the last, each an index probe), not a pass over every row."""
        if column not in DISTINCT_COLUMNS:
            raise ValueError(f"no choices for {column!r}")
        quoted = self.engine.dialect.identifier_preparer.quote(column)
        walk = text(f"""WITH RECURSIVE v(value) AS (
                            SELECT min({quoted}) FROM audit_rows
                            UNION ALL
                            SELECT (SELECT min({quoted}) FROM audit_rows WHERE {quoted} > v.value) FROM v
                            WHERE v.value IS NOT NULL)
                        SELECT value FROM v WHERE value IS NOT NULL""")
        with self.engine.connect() as conn:
            return sorted(value for (value,) in conn.execute(walk) if value)

    def organization_version(self, organization_id: str) -> int | None:
        """The newest audit row about this organization: it changes whenever any console process records a
        write on it (intent, outcome, settlement), so a cached read keyed on it is never older than the last
        write another replica made. None when the store can't be read (reads then fall back to their TTL)."""
        try:
            with self.engine.connect() as conn:  # the organization index: a few rows per organization
                return conn.execute(select(func.max(audit_rows.c.id)).where(
                    audit_rows.c.organization_id == organization_id)).scalar() or 0
        except SQLAlchemyError:
            return None

    def count_since(self, user: str, action: str, since: datetime) -> int:
        """How many `action` events this person recorded since `since` (e.g. notes in the last hour); read through
        the (user, at) index of intents. AuditUnreadable when the store can't be read."""
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(audit_rows).where(
                    (audit_rows.c.kind == "intent") & (audit_rows.c.user == user) & (audit_rows.c.at >= since)
                    & (audit_rows.c.action == action))).scalar() or 0)
        except SQLAlchemyError:
            raise AuditUnreadable() from None

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
    def chain_status(self, ttl_seconds: float = CHAIN_STATUS_TTL_SECONDS) -> ChainStatus:
        """Whether the chain verifies, for the Audit page (services/audit_watch.py: a small log re-hashed whole,
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
        seals the unkeyed past; from it on every row is keyed (services/audit_keys.py). Returns its id, or None when
        the log is empty or already ends keyed. Production runs it by hand (`python -m services.audit cut-over`,
        whose output goes into the incident-free record): done automatically, it would also seal a log someone
        rewrote without the key. The sandbox on its own file does it at start."""
        return cut_over(self.engine, self.keys, self.boot_id, self.environment) if self.keys is not None else None


def _where(filters: AuditFilter, dialect: str, after: AuditCursor | None = None,
           upto: AuditCursor | None = None, candidates: Sequence[int] | None = None) -> list[ColumnElement[bool]]:
    """The filters, and the keyset bounds (older than `after`, no newer than `upto`), as conditions on the view
    (`dialect`: the store's, for the organization prefix). `candidates`: the intents `_carriers` found for the
    organization filter, already read (None: found again by this query)."""
    view = audit_events
    conditions: list[ColumnElement[bool]] = [true()]
    since = _since(filters)
    if filters.users:
        conditions.append(view.c.user.in_(filters.users))
    if filters.actions:
        conditions.append(view.c.action.in_(filters.actions))
    if filters.outcomes:
        conditions.append(view.c.outcome.in_(filters.outcomes))
    if since is not None:
        conditions.append(view.c.at >= since)
    if filters.until:
        conditions.append(view.c.at < datetime.combine(filters.until + timedelta(days=1), time.min, timezone.utc))
    organization, prefix = filters.organization_filter()
    if "\x00" in organization:  # no id holds one, and PostgreSQL text can't
        conditions.append(false())
    elif organization:
        # The folded line must match too: the candidates are the intents whose rows carry it (`_carriers`).
        conditions += [_among(view.c.id, candidates) if candidates is not None
                       else view.c.id.in_(_carriers(filters, dialect)),
                       _matches(view.c.organization_id, organization, prefix, dialect)]
    if after is not None:
        conditions.append(tuple_(view.c.at, view.c.id) < tuple_(literal(after.at, audit_events.c.at.type),
                                                                 literal(after.id)))
    if upto is not None:
        conditions.append(tuple_(view.c.at, view.c.id) <= tuple_(literal(upto.at, audit_events.c.at.type),
                                                                  literal(upto.id)))
    return conditions


def _since(filters: AuditFilter) -> datetime | None:
    return datetime.combine(filters.since, time.min, timezone.utc) if filters.since else None


def _carriers(filters: AuditFilter, dialect: str, distinct: bool = True) -> CompoundSelect | None:
    """The ids of the intents an organization filter can match (None: no organization filter). A line's
    organization is its latest outcome's, else the intent's: the candidates are the intents that carry it and
    the intents of outcome rows that do (an index range on each). An outcome is written after its intent, so
    `since` bounds both. `distinct=False`: an id may come twice, and a LIMIT stops the read early."""
    organization, prefix = filters.organization_filter()
    if not organization or "\x00" in organization:
        return None
    rows, since = audit_rows, _since(filters)
    carrying = ([_matches(rows.c.organization_id, organization, prefix, dialect)]
                + ([rows.c.at >= since] if since is not None else []))
    return (union if distinct else union_all)(
        select(rows.c.id).where(rows.c.kind == "intent", *carrying),
        select(rows.c.intent_id).where(rows.c.kind.in_(("outcome", "settled")), *carrying))


def _among(column: ColumnElement[int], ids: Sequence[int]) -> ColumnElement[bool]:
    """`column` is one of `ids`, as one PostgreSQL array parameter (`= ANY`): a list of thousands of
    parameters costs it more to plan than to run."""
    return column == any_(bindparam(None, list(ids), type_=postgresql.ARRAY(Integer)))


def _matches(column: ColumnElement[Any], organization: str, prefix: bool, dialect: str) -> ColumnElement[bool]:
    return _starts_with(column, organization, dialect) if prefix else column == organization


def _starts_with(column: ColumnElement[Any], prefix: str, dialect: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, taken literally (`%`, `_` and the escape character are escaped), in a
    form each store answers with an index range: LIKE 'prefix%' on PostgreSQL (its 0005 pattern index); on
    SQLite, whose LIKE ignores case and so skips the index, a range of the binary-ordered index, checked
    exactly by substr."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    # Inlined, not a parameter: a prepared statement's generic plan can't turn `LIKE $1` into a range.
    like = column.like(bindparam(None, escaped + "%", String(), literal_execute=True), escape="\\")
    ranged = ((column >= prefix) & (column < prefix + "\U0010ffff")
              & (func.substr(column, 1, len(prefix)) == prefix))
    return like if dialect == "postgresql" else ranged


def _folds(filters: AuditFilter) -> bool:
    """Whether matching `filters` reads each line's latest outcome (its outcome and organization are the
    latest outcome row's), so every candidate line is folded whatever is asked of it."""
    return bool(filters.outcomes) or bool(filters.organization_filter()[0])


def _page(rows: list[Row[Any]], size: int) -> AuditPage:
    """A page from up to `size` + 1 lines read newest first (`_page_rows`)."""
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage(_frame(rows), AuditCursor.of(rows[-1]) if more else None)


def _frame(rows: Iterable[Row[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame([dict(row._mapping) for row in rows],
                         columns=[column.name for column in audit_events.columns])[AUDIT_COLUMNS]
    for column in ("at", "completed_at"):
        frame[column] = pd.to_datetime(frame[column].map(_utc), utc=True)
    return frame


def approval_request_named(parameters: str | None) -> str | None:
    """The approval request an audit line is about (its parameters' "request"), if any."""
    try:
        value = json.loads(parameters or "{}").get("request")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


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
    from services.audit_watch import main

    raise SystemExit(main())
