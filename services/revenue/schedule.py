"""When a day's snapshot is taken: once the day's directory refresh has finished (all its jobs), even if that is
after midnight, or, with the refresh off, at the first check of the day. Every console and worker process checks;
the day's key lets one win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

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

    def due_day(self, moment: datetime) -> date | None:
        """The day whose snapshot may be taken at `moment`, or None. With the refresh on: the day of the latest
        refresh once all its jobs have finished (a refresh running past midnight gives its own day, taken late);
        with it off: today. Whether that day is already taken is `take_snapshot`'s to say."""
        if not self.refresh_on:
            return moment.date()
        with self.engine.connect() as conn:
            refresh = conn.execute(select(directory_refreshes).order_by(directory_refreshes.c.day.desc())
                                   .limit(1)).first()
        if refresh is None:
            return None  # no refresh queued yet
        job_ids = [job_id for job_id in refresh.jobs.split(",") if job_id]
        if not job_ids and moment - utc(refresh.started_at) < QUEUING_GRACE:
            return None
        if not all((job := self.jobs.job(job_id)) is None or job.status in FINISHED for job_id in job_ids):
            return None  # still reading
        return date.fromisoformat(refresh.day)

    def run_due(self) -> TakenDay | None:
        """Takes the day that is due, if any and not taken yet; what was written, or None."""
        moment = self.clock()  # read once: a check at midnight must not mix two days
        day = self.due_day(moment)
        if day is None:
            return None
        return take_snapshot(self.engine, day, self.by, lambda: moment)

    def start(self) -> SnapshotSchedule:
        self._loop = PeriodicCheck(self.run_due, self.check_every, "revenue-snapshot",
                                   "The revenue snapshot could not be taken; it is tried again.", log).start()
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()
