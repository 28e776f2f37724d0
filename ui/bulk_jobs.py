"""The Bulk page's pieces: the jobs table, one job's progress, its results and downloads, the finance panel."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from services.auth.roles import Action, Actor, Page, allowed
from services.bulk import status_counts
from services.desk import BillingDesk
from services.jobs.store import Job

from . import guard
from .present import status_label
from .widgets import show_error

JOB_STATUS = {"queued": "Queued", "running": "Running", "stopping": "Stopping…", "stopped": "Stopped",
              "done": "Done", "failed": "Failed"}
RESULT_COLUMNS = {
    "organization_id": "Organization", "name": "Name", "status": "Status", "plan": "Plan",
    "price": st.column_config.NumberColumn("Price", format="dollar"), "interval": "Billed",
    "period_end": st.column_config.DatetimeColumn("Period ends", format="D MMM YYYY"),
    "cancel_at_period_end": st.column_config.CheckboxColumn("Cancelling"),
    "card_last4": "Card", "email": "Email", "address": "Address", "error": "Error"}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, rest = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def jobs_frame(jobs: list[Job]) -> pd.DataFrame:
    return pd.DataFrame([{
        "id": job.id, "who": job.username, "started": job.created_at, "ids": job.total,
        "progress": job.done / job.total if job.total else 1.0,
        "fetched": f"{job.done:,} of {job.total:,}" + (f" · {job.not_found:,} not found" if job.not_found else "")
        + (f" · {job.failed:,} failed" if job.failed else ""),
        "left": duration(job.eta_seconds) if job.active else "—", "status": JOB_STATUS.get(job.status, job.status),
    } for job in jobs], columns=["id", "who", "started", "ids", "progress", "fetched", "left", "status"])


def jobs_table(jobs: list[Job], key: str) -> str | None:
    """The jobs, newest first; returns the id of the one the person clicked, if any."""
    frame = jobs_frame(jobs)
    event = st.dataframe(frame, hide_index=True, width="stretch", key=key, on_select="rerun",
                         selection_mode="single-row", column_order=[
                             "who", "started", "ids", "progress", "fetched", "left", "status"], column_config={
        "who": "Who", "started": st.column_config.DatetimeColumn("Started", format="D MMM, HH:mm"),
        "ids": st.column_config.NumberColumn("Ids", format="localized"),
        "progress": st.column_config.ProgressColumn("Progress", min_value=0.0, max_value=1.0, format="percent"),
        "fetched": "Looked up", "left": "Time left", "status": "Status"})
    rows = event.selection.rows if event is not None else []
    return str(frame.id.iloc[rows[0]]) if rows else None


def progress_line(job: Job) -> str:
    line = (f"{job.done:,} of {job.total:,} looked up · {job.not_found:,} not found · {job.failed:,} failed · "
            f"{duration(job.elapsed_seconds)} elapsed")
    if job.active and job.eta_seconds is not None:
        line += f" · about {duration(job.eta_seconds)} left"
    return line


def heading(job: Job) -> None:
    started = job.created_at.astimezone(timezone.utc).strftime("%d %b %Y, %H:%M UTC")
    st.subheader(f"Bulk lookup of {job.total:,} organizations")
    st.caption(f"Started by **{job.username}** ({job.role}) on {started} · status **{JOB_STATUS.get(job.status)}**"
               + (f" · stopped by {job.stopped_by}" if job.stopped_by and job.status == "stopped" else "")
               + f" · job `{job.id}`")


def results(desk: BillingDesk, actor: Actor, job: Job, frame: pd.DataFrame) -> None:
    if job.status == "stopped" and job.done < job.total:
        st.warning(f"Stopped: {job.done:,} of {job.total:,} were looked up; their results are below.")
    if job.status == "failed":
        st.error(f"{job.failure or 'The job failed.'} {job.done:,} of {job.total:,} were looked up; their results "
                 "are below.", icon=":material/error:")
    if frame.empty:
        st.info("No results: nothing was looked up.")
        return
    counts = status_counts(frame)
    counts["label"] = counts.status.map(status_label)
    for column, (_, row) in zip(st.columns(max(len(counts), 4)), counts.iterrows()):
        column.metric(row.label, f"{row.organizations:,}")
    st.dataframe(frame, hide_index=True, width="stretch", placeholder="—", column_order=list(RESULT_COLUMNS),
                 column_config=RESULT_COLUMNS)
    downloads(desk, actor, job, "results", "bulk-lookup")
    if allowed(actor.role, Action.FINANCE_SUMMARY):
        finance_panel(desk, actor, job, frame)


def downloads(desk: BillingDesk, actor: Actor, job: Job, what: str, name: str) -> None:
    """CSV and Excel, each made (and audited) on the click."""
    left, right, _ = st.columns([1, 1, 1])
    stem = f"{name}-{job.created_at:%Y%m%d-%H%M}"
    left.download_button(f"Download {what} CSV", guard.download(desk.bulk_job_export, job.id, what, "csv"),
                         file_name=f"{stem}.csv", mime="text/csv", icon=":material/download:", on_click="ignore",
                         key=f"download_{what}_csv")
    right.download_button(f"Download {what} Excel", guard.download(desk.bulk_job_export, job.id, what, "xlsx"),
                          file_name=f"{stem}.xlsx", icon=":material/table:", on_click="ignore",
                          mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                          key=f"download_{what}_xlsx")


def finance_panel(desk: BillingDesk, actor: Actor, job: Job, frame: pd.DataFrame) -> None:
    st.subheader("Finance summary")
    try:
        from services.finance import summarize
        from ui.finance import show_summary

        show_summary(summarize(frame, datetime.now(timezone.utc).date()))
    except Exception as problem:
        show_error(problem, "make the finance summary")
        return
    downloads(desk, actor, job, "summary", "bulk-lookup-summary")


def open_job(job_id: str | None) -> None:
    if job_id:
        st.query_params["job"] = job_id
    else:
        st.query_params.pop("job", None)


@guard.fragment(run_every=2.0, page=Page.BULK)
def jobs_list(desk: BillingDesk, actor: Actor) -> None:
    """Your jobs (an admin: everyone's), refreshed every 2 s; each refresh checks the session first, so a page
    left open after a logout elsewhere stops showing jobs at its next refresh."""
    everyone = allowed(actor.role, Action.SEE_ALL_BULK_JOBS)
    st.subheader("Everyone's jobs" if everyone else "Your jobs")
    try:
        jobs = desk.bulk_jobs(actor, everyone=everyone)
    except Exception as problem:
        show_error(problem, "list the bulk lookups")
        return
    if not jobs:
        st.caption("No bulk lookups yet. Results are kept 30 days.")
        return
    clicked = jobs_table(jobs, key="bulk_jobs_table")
    if clicked != st.session_state.get("bulk_clicked"):  # a new click (the selection outlives the refreshes)
        st.session_state["bulk_clicked"] = clicked
        if clicked and clicked != st.query_params.get("job"):
            open_job(clicked)
            st.rerun()


def job_panel(desk: BillingDesk, actor: Actor, job_id: str) -> None:
    """One job: its live progress (polled while it runs), then its results and downloads."""
    try:
        job = desk.bulk_job(actor, job_id, results=False).job
    except Exception as problem:
        show_error(problem, "open the bulk lookup")
        job = None
    if job is not None:
        (_live_polling if job.active else _live_still)(desk, job_id, job.active)
        if not job.active:
            results(desk, actor, job, desk.bulk_job(actor, job_id).results)
    if st.button("Close", icon=":material/close:", key="bulk_close"):
        open_job(None)
        st.rerun()


def _live(desk: BillingDesk, job_id: str, was_active: bool, actor: Actor) -> None:
    current = desk.bulk_job(actor, job_id, results=False).job
    if was_active and not current.active:
        st.rerun()  # the whole page: results below, and polling stops
    heading(current)
    if current.status == "queued":
        st.info("Queued: it starts as soon as a worker is free.", icon=":material/schedule:")
    st.progress(current.done / current.total if current.total else 1.0, text=progress_line(current))
    if current.status in ("queued", "running"):
        if st.button("Stop", icon=":material/stop:", key="bulk_stop"):
            try:
                desk.stop_bulk_job(actor, job_id)
            except Exception as problem:
                show_error(problem, "stop the bulk lookup")
    elif current.status == "stopping":
        st.caption("Stopping: the lookups in flight finish, then it stops.")


_live_polling = guard.fragment(run_every=1.0, page=Page.BULK)(_live)  # while the job runs
_live_still = guard.fragment(page=Page.BULK)(_live)
