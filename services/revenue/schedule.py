"""When a day's snapshot is taken: once the day's directory refresh has finished (all its jobs), or, with the
refresh off, at the first check of the day. Every console and worker process checks; the day's key lets one win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from ..directory.refresh import directory_refreshes
from ..jobs.store import FINISHED, JobStore
from ..periodic import PeriodicCheck
from ..store import now, utc
from .snapshots import TakenDay, take_snapshot

log = logging.getLogger("billing_desk.revenue")
# A refresh's day row is written before its jobs are queued (services/directory/refresh.py): one naming no job is
# still being queued for this long; after it, the directory was empty or filled another way (`make run`).
QUEUING_GRACE = timedelta(minutes=2)


class SnapshotSchedule:
    def __init__(self, engine: Engine, jobs: JobStore, *, refresh_on: bool, by: str, check_every: float = 60.0,
                 clock: Callable[[], datetime] = now) -> None:
        self.engine, self.jobs, self.refresh_on, self.by = engine, jobs, refresh_on, by
        self.check_every, self.clock = check_every, clock
        self._loop: PeriodicCheck | None = None

    def due(self) -> bool:
        """Whether today's snapshot may be taken now (not whether it has been)."""
        if not self.refresh_on:
            return True
        moment = self.clock()
        with self.engine.connect() as conn:
            refresh = conn.execute(select(directory_refreshes).where(
                directory_refreshes.c.day == moment.date().isoformat())).first()
        if refresh is None:
            return False  # today's refresh is not queued yet
        job_ids = [job_id for job_id in refresh.jobs.split(",") if job_id]
        if not job_ids:
            return moment - utc(refresh.started_at) >= QUEUING_GRACE
        return all((job := self.jobs.job(job_id)) is None or job.status in FINISHED for job_id in job_ids)

    def run_due(self) -> TakenDay | None:
        """Takes today's snapshot if it is due; what was written, or None."""
        if not self.due():
            return None
        return take_snapshot(self.engine, self.clock().date(), self.by, self.clock)

    def start(self) -> SnapshotSchedule:
        self._loop = PeriodicCheck(self.run_due, self.check_every, "revenue-snapshot",
                                   "The revenue snapshot could not be taken; it is tried again.", log).start()
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()
