"""The jobs' tables and every query on them: create, list, claim with a lease, save a result, stop, purge.

Times are the store's clock (services/store/leases.py `store_now`), so workers on different hosts agree on when a
claim has expired.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (Column, DateTime, ForeignKey, Index, Integer, String, Table, Text, and_, case, delete,
                        func, insert, or_, select, text, tuple_, update)
from sqlalchemy.engine import Connection, Engine, Row

from ..inputs import InputRefused
from ..store.leases import live_lease_ids, store_now
from ..store import metadata, utc, write_transaction

QUEUED, RUNNING, STOPPING, STOPPED, DONE, FAILED = "queued", "running", "stopping", "stopped", "done", "failed"
ACTIVE = (QUEUED, RUNNING, STOPPING)  # a worker has something to do (stopping: end it as stopped)
FINISHED = (STOPPED, DONE, FAILED)
PENDING, FETCHED = "pending", "done"
MAX_IDS_PER_JOB = 5000
MAX_IDS_PER_IMPORT = 100_000  # a company's list of organizations, read into the directory
# A person's bulk lookup; filling the customer directory from a list; re-reading all of it (migration 0013).
LOOKUP, IMPORT, REFRESH = "lookup", "import", "refresh"
MAX_ACTIVE_PER_PERSON = 3
KEEP_DAYS = 30
# An import's or a refresh's per-organization rows (what they read is in the directory): a week to see what failed.
BACKGROUND_ITEMS_KEPT = timedelta(days=7)
ITEMS_PURGED_PER_TRANSACTION = 10_000

bulk_jobs = Table(
    "bulk_jobs", metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(255), nullable=False),
    Column("role", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(10), nullable=False),
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("not_found", Integer, nullable=False, server_default="0"),
    Column("worker_id", String(64)),  # the worker holding the claim, None when unclaimed
    Column("lease_id", String(40)),  # that worker's process lease (services/store/leases.py), if it keeps one
    Column("claim_expires_at", DateTime(timezone=True)),  # the claim is void after this
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("stopped_by", String(255)),
    Column("failure", Text),  # why it ended as failed, one sentence (migration 0008)
    # When its results were purged (migration 0010): the job and the ids it looked up stay, for each customer's
    # history; the results (the customer data) are gone. A purged job is no longer listed or opened.
    Column("purged_at", DateTime(timezone=True)),
    Column("kind", String(10), nullable=False, server_default=LOOKUP),  # LOOKUP, IMPORT or REFRESH
    Index("ix_bulk_jobs_status", "status", "created_at"),
    Index("ix_bulk_jobs_username", "username", "created_at"),
)

bulk_job_items = Table(
    "bulk_job_items", metadata,
    Column("job_id", String(32), ForeignKey("bulk_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),  # the order the ids were given in
    Column("organization_id", String(255), nullable=False),
    Column("state", String(10), nullable=False),  # pending | done
    Column("result", Text),  # JSON: the results table's row (services/bulk.py row_record)
    Column("error", Text),
    Column("fetched_at", DateTime(timezone=True)),
    Index("ix_bulk_job_items_pending", "job_id", "state", "position"),
    Index("ix_bulk_job_items_organization", "organization_id"),  # a customer's bulk lookups (migration 0009)
)


@dataclass(frozen=True)
class Job:
    id: str
    username: str
    role: str
    created_at: datetime
    status: str
    total: int
    done: int
    failed: int
    not_found: int
    worker_id: str | None
    lease_id: str | None
    claim_expires_at: datetime | None
    heartbeat_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    stopped_by: str | None
    failure: str | None
    purged_at: datetime | None
    kind: str
    now: datetime  # the store's clock when read

    @classmethod
    def of(cls, row: Row[Any], moment: datetime) -> Job:
        values = dict(row._mapping)
        for name in ("created_at", "claim_expires_at", "heartbeat_at", "started_at", "finished_at", "purged_at"):
            values[name] = utc(values[name])
        return cls(**values, now=utc(moment))  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def elapsed_seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        return max(0.0, ((self.finished_at or self.now) - self.started_at).total_seconds())

    @property
    def eta_seconds(self) -> float | None:
        """Time left at the pace so far (None before the first result, and once finished)."""
        if not self.active or self.done == 0 or self.started_at is None:
            return None
        return self.elapsed_seconds / self.done * (self.total - self.done)


def _free(conn: Connection, moment: datetime) -> Any:
    """Jobs with work to do and no live claim: never claimed, claim expired, or its worker's process lease over."""
    return and_(bulk_jobs.c.status.in_(ACTIVE),
                or_(bulk_jobs.c.worker_id.is_(None), bulk_jobs.c.claim_expires_at < moment,
                    and_(bulk_jobs.c.lease_id.is_not(None), bulk_jobs.c.lease_id.not_in(live_lease_ids(conn)))))


class JobStore:
    def __init__(self, engine: Engine, *, max_active: int = MAX_ACTIVE_PER_PERSON, max_ids: int = MAX_IDS_PER_JOB,
                 keep: timedelta = timedelta(days=KEEP_DAYS)) -> None:
        self.engine, self.max_active, self.max_ids, self.keep = engine, max_active, max_ids, keep

    # --- people -------------------------------------------------------------------------------------------
    def create(self, username: str, role: str, organization_ids: list[str], kind: str = LOOKUP,
               limited: bool = True) -> str:
        """A queued job for these ids (in this order); refuses past the limits with one sentence. An IMPORT (the
        company's list of organizations, read into the directory) may hold up to MAX_IDS_PER_IMPORT. `limited`:
        the person's limit of active jobs applies (not to the console's own scheduled refresh)."""
        if not organization_ids:
            raise InputRefused("organization ids", "Give at least one organization id to look up.")
        most = self.max_ids if kind == LOOKUP else MAX_IDS_PER_IMPORT
        if len(organization_ids) > most:
            what = "A bulk lookup" if kind == LOOKUP else "An import"
            raise InputRefused("organization ids", f"{what} takes at most {most:,} organization "
                                                   f"ids; this one has {len(organization_ids):,}, so split it.")
        job_id = uuid.uuid4().hex
        with write_transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":  # one person's jobs counted and added one at a time
                conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("bulk_jobs:" + username))))
            active = conn.execute(select(func.count()).select_from(bulk_jobs).where(
                bulk_jobs.c.username == username, bulk_jobs.c.status.in_(ACTIVE))).scalar_one()
            if limited and active >= self.max_active:
                raise InputRefused("organization ids", f"You already have {active} bulk lookups queued or running "
                                                       f"(at most {self.max_active}); wait for one to finish or "
                                                       f"stop one.")
            conn.execute(insert(bulk_jobs).values(id=job_id, username=username, role=role,
                                                   created_at=store_now(conn), status=QUEUED,
                                                   total=len(organization_ids), done=0, failed=0, not_found=0,
                                                   kind=kind))
            conn.execute(insert(bulk_job_items), [
                {"job_id": job_id, "position": position, "organization_id": organization_id, "state": PENDING}
                for position, organization_id in enumerate(organization_ids)])
        return job_id

    def jobs(self, username: str | None = None, limit: int = 200) -> list[Job]:
        """Newest first; one person's, or everyone's (not the purged)."""
        query = (select(bulk_jobs).where(bulk_jobs.c.purged_at.is_(None))
                 .order_by(bulk_jobs.c.created_at.desc(), bulk_jobs.c.id).limit(limit))
        if username is not None:
            query = query.where(bulk_jobs.c.username == username)
        with self.engine.connect() as conn:
            moment = store_now(conn)
            return [Job.of(row, moment) for row in conn.execute(query)]

    def jobs_including(self, organization_id: str, username: str | None = None, limit: int = 100) -> list[Job]:
        """The jobs (one person's, or everyone's) that looked this organization up, newest first, purged ones too
        (`purged_at` set): at most `limit`."""
        holding = select(bulk_job_items.c.job_id).where(bulk_job_items.c.organization_id == organization_id)
        query = (select(bulk_jobs).where(bulk_jobs.c.id.in_(holding), bulk_jobs.c.kind == LOOKUP)
                 .order_by(bulk_jobs.c.created_at.desc(), bulk_jobs.c.id).limit(limit))
        if username is not None:
            query = query.where(bulk_jobs.c.username == username)
        with self.engine.connect() as conn:
            moment = store_now(conn)
            return [Job.of(row, moment) for row in conn.execute(query)]

    def job(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(bulk_jobs).where(bulk_jobs.c.id == job_id,
                                                       bulk_jobs.c.purged_at.is_(None))).first()
            return Job.of(row, store_now(conn)) if row else None

    def results(self, job_id: str) -> list[dict[str, Any]]:
        """The rows fetched so far, in the order given."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(bulk_job_items.c.result).where(  # a purged job's are emptied: none
                bulk_job_items.c.job_id == job_id, bulk_job_items.c.state == FETCHED,
                bulk_job_items.c.result.is_not(None))
                .order_by(bulk_job_items.c.position))
            return [json.loads(result) for (result,) in rows]

    def request_stop(self, job_id: str, by: str) -> bool:
        """A queued job stops at once; a running one is asked to (its worker ends it as stopped). False when it
        had already finished."""
        with self.engine.begin() as conn:
            moment = store_now(conn)
            if conn.execute(update(bulk_jobs).where(bulk_jobs.c.id == job_id, bulk_jobs.c.status == QUEUED,
                                                    bulk_jobs.c.worker_id.is_(None))
                            .values(status=STOPPED, finished_at=moment, stopped_by=by)).rowcount:
                return True
            return bool(conn.execute(update(bulk_jobs).where(bulk_jobs.c.id == job_id,
                                                             bulk_jobs.c.status.in_((QUEUED, RUNNING)))
                                     .values(status=STOPPING, stopped_by=by)).rowcount)

    # --- workers ------------------------------------------------------------------------------------------
    def claim(self, worker_id: str, lease: timedelta, lease_id: str | None = None) -> Job | None:
        """Claims a job with work to do and no live claim, for `lease`: a person's bulk lookup before an import or
        a refresh (people first), then the oldest of the person with the fewest jobs being worked, so one
        person's three jobs don't hold every worker; None when there is none. A
        claim is dead when it expired, or when its worker's process lease (`lease_id`, services/store/leases.py) has
        ended: a console killed and restarted on the same machine resumes its jobs at once.
        PostgreSQL: the row locked with FOR UPDATE SKIP LOCKED, so workers never wait on each other. SQLite:
        the UPDATE repeats the condition, so of two workers racing for a job one updates a row and one none."""
        with self.engine.connect() as conn:  # looked for first without the write lock: idle polls only read
            if conn.execute(select(bulk_jobs.c.id).where(_free(conn, store_now(conn))).limit(1)).first() is None:
                return None
        with write_transaction(self.engine) as conn:
            moment = store_now(conn)
            free = _free(conn, moment)
            # Fair between people: the job of whoever has the fewest jobs being worked goes first, then the oldest.
            others = bulk_jobs.alias("others")
            working = (select(func.count()).select_from(others)
                       .where(others.c.username == bulk_jobs.c.username, others.c.worker_id.is_not(None),
                              others.c.claim_expires_at >= moment).scalar_subquery())
            background = case((bulk_jobs.c.kind == LOOKUP, 0), else_=1)
            query = (select(bulk_jobs.c.id).where(free).order_by(background, working, bulk_jobs.c.created_at)
                     .limit(1))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            job_id = conn.execute(query).scalar()
            if job_id is None:
                return None
            claimed = conn.execute(update(bulk_jobs).where(bulk_jobs.c.id == job_id, free).values(
                worker_id=worker_id, lease_id=lease_id, claim_expires_at=moment + lease, heartbeat_at=moment,
                started_at=func.coalesce(bulk_jobs.c.started_at, moment),
                status=func.coalesce(func.nullif(bulk_jobs.c.status, QUEUED), RUNNING))).rowcount
            if not claimed:
                return None
            return Job.of(conn.execute(select(bulk_jobs).where(bulk_jobs.c.id == job_id)).one(), moment)

    def person_waiting(self) -> bool:
        """Whether a person's bulk lookup has work and no worker: an import or a refresh being worked gives its
        worker back (services/jobs/worker.py), so the lookup is claimed first."""
        with self.engine.connect() as conn:
            return conn.execute(select(bulk_jobs.c.id).where(_free(conn, store_now(conn)), bulk_jobs.c.kind == LOOKUP)
                                .limit(1)).first() is not None

    def renew(self, job_id: str, worker_id: str, lease: timedelta) -> str | None:
        """Extends this worker's claim; returns the job's status, or None when the claim is no longer its own
        (it expired and another worker took the job)."""
        with self.engine.begin() as conn:
            moment = store_now(conn)
            mine = and_(bulk_jobs.c.id == job_id, bulk_jobs.c.worker_id == worker_id)
            if not conn.execute(update(bulk_jobs).where(mine).values(claim_expires_at=moment + lease,
                                                                     heartbeat_at=moment)).rowcount:
                return None
            return conn.execute(select(bulk_jobs.c.status).where(bulk_jobs.c.id == job_id)).scalar_one()

    def pending(self, job_id: str) -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            return [(position, organization_id) for position, organization_id in conn.execute(
                select(bulk_job_items.c.position, bulk_job_items.c.organization_id).where(
                    bulk_job_items.c.job_id == job_id, bulk_job_items.c.state == PENDING)
                .order_by(bulk_job_items.c.position))]

    def save(self, job_id: str, position: int, record: dict[str, Any]) -> bool:
        """One id's result; the job's counts move with it in the same transaction. False when it was already
        saved (by a worker whose claim had expired and is still finishing)."""
        status, error = record.get("status"), record.get("error")
        with self.engine.begin() as conn:
            saved = conn.execute(update(bulk_job_items).where(
                bulk_job_items.c.job_id == job_id, bulk_job_items.c.position == position,
                bulk_job_items.c.state == PENDING).values(
                state=FETCHED, result=json.dumps(record, default=_json_default), error=error,
                fetched_at=store_now(conn))).rowcount
            if saved:
                conn.execute(update(bulk_jobs).where(bulk_jobs.c.id == job_id).values(
                    done=bulk_jobs.c.done + 1, failed=bulk_jobs.c.failed + int(status == "error"),
                    not_found=bulk_jobs.c.not_found + int(status == "not found")))
            return bool(saved)

    def finish(self, job_id: str, worker_id: str, status: str, failure: str | None = None) -> bool:
        """Ends the job as done, stopped or failed (saying why, `failure`), if this worker still holds it."""
        with self.engine.begin() as conn:
            return bool(conn.execute(update(bulk_jobs).where(
                bulk_jobs.c.id == job_id, bulk_jobs.c.worker_id == worker_id).values(
                status=status, finished_at=store_now(conn), worker_id=None, lease_id=None,
                claim_expires_at=None, failure=failure)).rowcount)

    def release(self, job_id: str, worker_id: str) -> None:
        """Gives the claim up without finishing (a worker shutting down): another worker takes it at once."""
        with self.engine.begin() as conn:
            conn.execute(update(bulk_jobs).where(bulk_jobs.c.id == job_id, bulk_jobs.c.worker_id == worker_id)
                         .values(worker_id=None, lease_id=None, claim_expires_at=None))

    def purge(self) -> int:
        """Empties the results of the jobs finished longer ago than the retention and marks them purged; returns
        how many. Which organizations each looked up, who started it and when stay: a customer's history says
        who looked them up in bulk for as long as the audit log keeps the downloads."""
        with write_transaction(self.engine) as conn:
            moment = store_now(conn)
            old = select(bulk_jobs.c.id).where(bulk_jobs.c.status.in_(FINISHED), bulk_jobs.c.purged_at.is_(None),
                                               bulk_jobs.c.finished_at < moment - self.keep)
            job_ids = list(conn.execute(old).scalars())
            if not job_ids:
                return 0
            conn.execute(update(bulk_job_items).where(bulk_job_items.c.job_id.in_(job_ids))
                         .values(result=None, error=None))
            marked = conn.execute(update(bulk_jobs).where(bulk_jobs.c.id.in_(job_ids), bulk_jobs.c.purged_at.is_(None))
                                  .values(purged_at=moment))  # another replica's purge may have marked some
            return marked.rowcount

    def purge_background_items(self, kept: timedelta = BACKGROUND_ITEMS_KEPT) -> int:
        """Deletes the per-organization rows of the imports and refreshes finished longer ago than `kept`, in
        transactions of ITEMS_PURGED_PER_TRANSACTION; returns how many. A person's bulk lookup keeps its rows. On
        PostgreSQL through the owner's `purge_background_job_items` (migration 0015): the console's role may not
        delete job rows itself."""
        deleted = 0
        while True:
            with write_transaction(self.engine) as conn:
                before = store_now(conn) - kept
                if conn.dialect.name == "postgresql":
                    gone = conn.execute(text("SELECT purge_background_job_items(:before, :batch)"),
                                        {"before": before, "batch": ITEMS_PURGED_PER_TRANSACTION}).scalar_one()
                else:
                    finished = select(bulk_jobs.c.id).where(bulk_jobs.c.kind.in_((IMPORT, REFRESH)),
                                                            bulk_jobs.c.finished_at < before)
                    batch = select(bulk_job_items.c.job_id, bulk_job_items.c.position).where(
                        bulk_job_items.c.job_id.in_(finished)).limit(ITEMS_PURGED_PER_TRANSACTION)
                    gone = conn.execute(delete(bulk_job_items).where(
                        tuple_(bulk_job_items.c.job_id, bulk_job_items.c.position).in_(batch))).rowcount
            deleted += gone
            if gone < ITEMS_PURGED_PER_TRANSACTION:
                return deleted


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy and pandas scalars
        return value.item()
    return str(value)
