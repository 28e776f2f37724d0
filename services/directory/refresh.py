"""The whole directory re-read once a day, queued by exactly one process among every replica and worker.

Each console process and each worker process runs a `RefreshSchedule`. Once the day's refresh hour has come
(UTC, `BILLING_DESK_REFRESH_HOUR`, default 3; `BILLING_DESK_REFRESH=off` turns it off), each tries to insert the
day's row in `directory_refreshes`: the day is its key, so one insert wins and only that process queues the
refresh, as jobs of kind "refresh" (services/jobs/). The job workers then read them like any job (durable: a
worker killed mid-refresh is replaced and the job resumes), in the background: a refresh leaves the API key's
rate to people first (services/payments/rate_pacer.py). `python -m services.directory refresh` queues one now.

Why the project's own job tables and not a scheduler or queue library: procrastinate and pgqueuer need
PostgreSQL, and the embedded SQLite default must keep working; APScheduler's job stores would be a second place
where work is kept, next to the jobs that already give a refresh what it needs (durable, resumable after a kill,
one worker per job, the key's shared rate, audited, visible on the Bulk page); and the schedule itself needs only a
once-a-day claim, which one row with the day as its key gives on both stores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Column, DateTime, Integer, String, Table, Text, delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ..audit import AuditLog
from ..periodic import PeriodicCheck
from ..jobs.store import MAX_IDS_PER_IMPORT, REFRESH, JobStore
from ..store import metadata, now
from .store import Directory

log = logging.getLogger("billing_desk.directory")
SCHEDULER = "billing-desk (scheduled refresh)"  # who the jobs and the audit rows name

directory_refreshes = Table(
    "directory_refreshes", metadata,
    Column("day", String(10), primary_key=True),  # the UTC day, e.g. 2026-12-07: one refresh a day
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("started_by", String(120), nullable=False),  # the process that won the day
    Column("organizations", Integer, nullable=False),
    Column("jobs", Text, nullable=False),  # the refresh jobs' ids, comma-separated
)


def queue_refresh(directory: Directory, jobs: JobStore, audit: AuditLog, who: str, role: str = "system"
                  ) -> list[str]:
    """Every organization of the directory queued for re-reading, in jobs of at most MAX_IDS_PER_IMPORT; each
    job is an audit row ("refresh directory"). Returns the jobs' ids."""
    ids = list(directory.organization_ids())
    queued = []
    for start in range(0, len(ids), MAX_IDS_PER_IMPORT):
        chunk = ids[start:start + MAX_IDS_PER_IMPORT]
        job_id = jobs.create(who, role, chunk, kind=REFRESH, limited=role != "system")
        audit.record(user=who, role=role, action="refresh directory", organization_id=None, outcome="succeeded",
                     parameters={"job": job_id, "organizations": len(chunk)}, required=True)
        queued.append(job_id)
    return queued


class RefreshSchedule:
    def __init__(self, engine: Engine, directory: Directory, jobs: JobStore, audit: AuditLog, *, hour: int = 3,
                 by: str = "console", check_every: float = 60.0, clock: Callable[[], datetime] = now,
                 on_queued: Callable[[], object] = lambda: None) -> None:
        """`hour`: the UTC hour from which the day's refresh is due; `by`: this process, as the day's row names
        it; `on_queued` wakes this process's job workers."""
        self.engine, self.directory, self.jobs, self.audit = engine, directory, jobs, audit
        self.hour, self.by, self.check_every, self.clock, self.on_queued = hour, by, check_every, clock, on_queued
        self._loop: PeriodicCheck | None = None

    def run_due(self) -> list[str] | None:
        """Queues today's refresh if it is due and no process has; the jobs queued, or None."""
        moment = self.clock()
        if moment.hour < self.hour:
            return None
        day = moment.date().isoformat()
        with self.engine.connect() as conn:  # looked at first: no insert that fails every minute of the day
            if conn.execute(select(directory_refreshes.c.day).where(directory_refreshes.c.day == day)).first():
                return None
        try:
            with self.engine.begin() as conn:  # the day's row first: whoever inserts it queues the refresh
                conn.execute(insert(directory_refreshes).values(day=day, started_at=moment, started_by=self.by,
                                                                organizations=0, jobs=""))
        except IntegrityError:
            return None  # another process has the day
        try:
            queued = queue_refresh(self.directory, self.jobs, self.audit, SCHEDULER)
        except Exception:  # nothing (or not all) queued: the day is given back, and tried again at the next check
            with self.engine.begin() as conn:
                conn.execute(delete(directory_refreshes).where(directory_refreshes.c.day == day))
            raise
        with self.engine.begin() as conn:
            conn.execute(directory_refreshes.update().where(directory_refreshes.c.day == day).values(
                organizations=sum(job.total for job in map(self.jobs.job, queued) if job), jobs=",".join(queued)))
        log.info("Queued the directory's refresh of %s in %d jobs.", day, len(queued))
        self.on_queued()
        return queued

    def claim_today(self, by: str) -> bool:
        """Marks today's refresh done without queuing one (a sandbox console has just read every organization
        into its directory); whether this process had the day."""
        moment = self.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(directory_refreshes).values(day=moment.date().isoformat(), started_at=moment,
                                                                started_by=by, organizations=0, jobs=""))
            return True
        except IntegrityError:
            return False

    def start(self) -> RefreshSchedule:
        self._loop = PeriodicCheck(self.run_due, self.check_every, "directory-refresh",
                                   "The directory's refresh could not be queued; it is tried again.", log).start()
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()
