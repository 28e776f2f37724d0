"""Bulk lookups: durable jobs of many organization ids that the workers read (services/jobs/), their results
and downloads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from .. import exports, tables
from ..audit import reading
from ..auth.roles import Action, Actor, allowed
from ..bulk import RESULT_COLUMNS
from ..inputs import InputRefused
from ..jobs.store import Job
from ..payments import validation
from ..tables import CUSTOMER_COLUMNS, typed_customer_frame
from .core import DeskCore


# A job's results table: the columns the Bulk page showed, then the rest of each customer's record (with the
# amounts the finance summary needs, services/tables.py).
JOB_COLUMNS = list(dict.fromkeys(RESULT_COLUMNS + CUSTOMER_COLUMNS + list(getattr(tables, "FINANCE_COLUMNS", []))))


@dataclass(frozen=True)
class BulkJobView:
    job: Job
    results: pd.DataFrame  # one row per id fetched, in the order given (empty when not asked for)


def _job_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return typed_customer_frame(records, JOB_COLUMNS)


def _naive_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Excel has no time zones: UTC times written as plain times (every time in the console is UTC)."""
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


class BulkJobs(DeskCore):
    """Starting, following, stopping and downloading bulk lookups."""

    def start_bulk_job(self, actor: Actor, organization_ids: list[str]) -> str:
        """Queues a bulk lookup of these ids (in this order) for the workers; returns its id. Refused past the
        limits (ids per job, jobs queued or running per person) with one sentence."""
        self._authorize(actor, Action.BULK_LOOKUP, parameters={"organizations": len(organization_ids)})
        if len(organization_ids) > self.jobs.max_ids:
            raise InputRefused("organization ids", f"A bulk lookup takes at most {self.jobs.max_ids:,} organization "
                                                   f"ids; this one has {len(organization_ids):,}, so split it.")
        ids = [validation.organization_id(org) for org in organization_ids]
        job_id = self.jobs.create(actor.username, actor.role.value, ids)
        self.audit.record(user=actor.username, role=actor.role.value, action="start bulk lookup",
                          organization_id=None, outcome="succeeded", subject=actor.subject,
                          parameters={"job": job_id, "organizations": len(ids)})
        self.on_job_started()
        return job_id

    def bulk_jobs(self, actor: Actor, everyone: bool = False) -> list[Job]:
        """The person's bulk lookups, newest first; everyone's for a role that may see them (admin)."""
        self._authorize(actor, Action.BULK_LOOKUP)
        if everyone:
            self._authorize(actor, Action.SEE_ALL_BULK_JOBS)
        with reading():
            return self.jobs.jobs(None if everyone else actor.username)

    def bulk_job(self, actor: Actor, job_id: str, results: bool = True) -> BulkJobView:
        """One job's progress and (with `results`) the rows fetched so far, in the order given; only its owner
        and those who may see everyone's jobs may open it."""
        self._authorize(actor, Action.BULK_LOOKUP)
        with reading():
            job = self._visible_job(actor, job_id)
            frame = _job_frame(self.jobs.results(job.id) if results else [])
        return BulkJobView(job, frame)

    def stop_bulk_job(self, actor: Actor, job_id: str) -> bool:
        """Asks the job's worker to stop (a queued job stops at once); what was fetched is kept. False when it
        had already finished."""
        self._authorize(actor, Action.BULK_LOOKUP)
        job = self._visible_job(actor, job_id)
        stopped = self.jobs.request_stop(job.id, actor.username)
        if stopped:
            self.audit.record(user=actor.username, role=actor.role.value, action="stop bulk lookup",
                              organization_id=None, outcome="succeeded", subject=actor.subject,
                              parameters={"job": job.id, "owner": job.username, "fetched": job.done,
                                          "organizations": job.total})
        return stopped

    def bulk_job_export(self, actor: Actor, job_id: str, what: str = "results", fmt: str = "csv") -> bytes:
        """The job's results, or their finance summary (finance, admin), as CSV or Excel, formula-neutralised.
        Every download is an audit row (who, which job, how many rows); if it can't be stored, no file."""
        self._authorize(actor, Action.BULK_LOOKUP)
        if what not in ("results", "summary") or fmt not in ("csv", "xlsx"):
            raise InputRefused("download", "Download the results or the summary, as CSV or Excel.")
        if what == "summary":
            self._authorize(actor, Action.FINANCE_SUMMARY, parameters={"job": job_id})
        with reading():
            job = self._visible_job(actor, job_id)
            frame = _job_frame(self.jobs.results(job.id))
        summary = None
        if what == "results":
            sheets = {"Results": frame}
        else:
            from .. import finance  # the finance summary (services/finance.py)

            summary = finance.summarize(frame, datetime.now(timezone.utc).date())
            sheets = finance.summary_frames(summary)
        self.audit.record(user=actor.username, role=actor.role.value, action="download bulk lookup",
                          organization_id=None, outcome="succeeded", subject=actor.subject, required=True,
                          parameters={"job": job.id, "owner": job.username, "what": what, "format": fmt,
                                      "rows": len(frame)})
        if fmt == "xlsx" and summary is not None:  # the summary's sheets, then the results it was made from
            return finance.summary_xlsx(summary, _naive_times(frame))
        if fmt == "xlsx":
            return exports.xlsx_bytes({name: _naive_times(sheet) for name, sheet in sheets.items()})
        if len(sheets) == 1:
            return exports.csv_bytes(next(iter(sheets.values())))
        return exports.csv_bytes(pd.concat([sheet.assign(table=name)[["table", *sheet.columns]]
                                            for name, sheet in sheets.items()], ignore_index=True))

    def _visible_job(self, actor: Actor, job_id: str) -> Job:
        job = self.jobs.job(str(job_id)[:64]) if job_id else None
        if job is None or (job.username != actor.username and not allowed(actor.role, Action.SEE_ALL_BULK_JOBS)):
            raise InputRefused("job", "There is no bulk lookup with that id that you may see (results are kept "
                                      f"{self.jobs.keep.days} days).")
        return job
