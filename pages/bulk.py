"""Bulk lookup: a pasted or uploaded list of organizations becomes a job kept in the store (services/jobs/), run
by a worker under the API's rate limit; it survives reloads, logouts and restarts, and ?job=ID opens it."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from services.auth.roles import Action, Page, allowed
from services.bulk import MAX_IDS, ids_from_csv, ids_from_text, parse_ids
from services.inputs import InputRefused
from ui import bulk_jobs as jobs_ui
from ui import session
from ui.console import get_console
from ui.widgets import show_error

actor = session.require_page(Page.BULK)
desk = get_console().desk
everyone = allowed(actor.role, Action.SEE_ALL_BULK_JOBS)


def _uploaded_ids(upload: UploadedFile | None) -> list[str]:
    """The upload's ids, read once per file (not on every rerun); a file that can't be read gets its sentence."""
    if upload is None:
        return []
    file_id, ids, problem = st.session_state.get("bulk_upload", (None, [], None))
    if file_id != upload.file_id:
        try:
            ids, problem = ids_from_csv(upload.getvalue()), None
        except InputRefused as refused:
            ids, problem = [], refused.user_message
        st.session_state["bulk_upload"] = (upload.file_id, ids, problem)
    if problem:
        upload_column.error(problem, icon=":material/description:")
    return ids


def _open(job_id: str | None) -> None:
    if job_id:
        st.query_params["job"] = job_id
    else:
        st.query_params.pop("job", None)


st.title("Bulk lookup")
st.caption(f"Look up many organizations at once: a renewal list, an incident's blast radius, a churn review. "
           f"Up to {MAX_IDS:,} ids a job; jobs run on the server under the Payments API's rate limit and keep "
           f"going if you reload, log out or close the tab.")

if st.session_state.pop("bulk_started", False):  # a job was just started from these ids: empty the inputs
    st.session_state["bulk_text"] = ""
    st.session_state["bulk_inputs"] = st.session_state.get("bulk_inputs", 0) + 1
paste_column, upload_column = st.columns([3, 2])
text = paste_column.text_area("Organization ids", key="bulk_text", height=140,
                              placeholder="org_abc123, org_def456 …  (any separators: lines, commas, spaces)")
upload = upload_column.file_uploader("…or a CSV with an id column", type=["csv"],
                                     key=f"bulk_csv_{st.session_state.get('bulk_inputs', 0)}",
                                     help="A column named organization_id, org_id, org or id; else the first column.")
tokens = ids_from_text(text) + _uploaded_ids(upload)
parsed = parse_ids(tokens)

if tokens:
    notes = [f"**{len(parsed.valid):,}** to look up"]
    if parsed.duplicates:
        notes.append(f"{len(parsed.duplicates):,} duplicates skipped")
    if parsed.invalid:
        notes.append(f"{len(parsed.invalid):,} invalid, not sent")
    if parsed.over_limit:
        notes.append(f"{parsed.over_limit:,} beyond the {MAX_IDS:,} limit, not sent")
    st.markdown(" · ".join(notes))
    if parsed.invalid:
        with st.expander(f"Invalid ids ({len(parsed.invalid):,})"):
            st.dataframe([{"Given": given, "Problem": problem} for given, problem in parsed.invalid],
                         hide_index=True, width="stretch")
    limit = desk.requests_per_minute
    st.caption(f"At {limit:,} requests a minute this takes at least "
               f"{jobs_ui.duration(len(parsed.valid) / limit * 60)}.")

if st.button(f"Look up {len(parsed.valid):,} organizations" if parsed.valid else "Look up", type="primary",
             icon=":material/search:", disabled=not parsed.valid, key="bulk_start"):
    try:
        started = desk.start_bulk_job(actor, parsed.valid)
    except Exception as problem:
        show_error(problem, "start the bulk lookup")
    else:
        st.session_state["bulk_started"] = True
        _open(started)
        st.rerun()

opened = st.query_params.get("job")


@st.fragment(run_every=2.0)
def jobs_list() -> None:
    st.subheader("Everyone's jobs" if everyone else "Your jobs")
    try:
        jobs = desk.bulk_jobs(actor, everyone=everyone)
    except Exception as problem:
        show_error(problem, "list the bulk lookups")
        return
    if not jobs:
        st.caption("No bulk lookups yet. Results are kept 30 days.")
        return
    clicked = jobs_ui.jobs_table(jobs, key="bulk_jobs_table")
    if clicked != st.session_state.get("bulk_clicked"):  # a new click (the selection outlives the refreshes)
        st.session_state["bulk_clicked"] = clicked
        if clicked and clicked != st.query_params.get("job"):
            _open(clicked)
            st.rerun()


def _job_panel(job_id: str) -> None:
    try:
        job = desk.bulk_job(actor, job_id, results=False).job
    except Exception as problem:
        show_error(problem, "open the bulk lookup")
        job = None

    @st.fragment(run_every=1.0 if job and job.active else None)
    def live() -> None:
        current = desk.bulk_job(actor, job_id, results=False).job
        if job.active and not current.active:
            st.rerun()  # the whole page: results below, and polling stops
        jobs_ui.heading(current)
        if current.status == "queued":
            st.info("Queued: it starts as soon as a worker is free.", icon=":material/schedule:")
        st.progress(current.done / current.total if current.total else 1.0, text=jobs_ui.progress_line(current))
        if current.status in ("queued", "running"):
            if st.button("Stop", icon=":material/stop:", key="bulk_stop"):
                try:
                    desk.stop_bulk_job(actor, job_id)
                except Exception as problem:
                    show_error(problem, "stop the bulk lookup")
        elif current.status == "stopping":
            st.caption("Stopping: the lookups in flight finish, then it stops.")

    if job is not None:
        live()
        if not job.active:
            jobs_ui.results(desk, actor, job, desk.bulk_job(actor, job_id).results)
    if st.button("Close", icon=":material/close:", key="bulk_close"):
        _open(None)
        st.rerun()


if opened:
    with st.container(border=True):
        _job_panel(opened)
jobs_list()
