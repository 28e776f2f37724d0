"""Bulk lookup: a pasted or uploaded list of organizations becomes a job kept in the store (services/jobs/), run
by a worker under the API's rate limit; it survives reloads, logouts and restarts, and ?job=ID opens it."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from services.auth.roles import Page
from services.bulk import MAX_IDS, MAX_PASTE_CHARACTERS, ParsedIds, ids_from_csv, ids_from_text, parse_ids
from services.inputs import InputRefused
from ui import bulk_jobs as jobs_ui
from ui import session
from ui.console import get_console
from ui.widgets import show_error

actor = session.require_page(Page.BULK)
desk = get_console().desk


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


def _parsed(text: str, upload: UploadedFile | None, uploaded_ids: list[str]) -> ParsedIds:
    """Parsed once per change of the inputs, not on every run of the page (a 4 MB paste would otherwise cost
    seconds of the shared console's CPU on every click)."""
    inputs = (hash(text), upload.file_id if upload else None)
    cached = st.session_state.get("bulk_parsed")
    if cached is None or cached[0] != inputs:
        cached = (inputs, parse_ids(ids_from_text(text[:MAX_PASTE_CHARACTERS]) + uploaded_ids))
        st.session_state["bulk_parsed"] = cached
    return cached[1]


st.title("Bulk lookup")
st.caption(f"Look up many organizations at once: a renewal list, an incident's blast radius, a churn review. "
           f"Up to {MAX_IDS:,} ids a job; jobs run on the server under the Payments API's rate limit and keep "
           f"going if you reload, log out or close the tab.")

if st.session_state.pop("bulk_started", False):  # a job was just started from these ids: empty the inputs
    st.session_state["bulk_text"] = ""
    st.session_state["bulk_inputs"] = st.session_state.get("bulk_inputs", 0) + 1
paste_column, upload_column = st.columns([3, 2])
text = paste_column.text_area("Organization ids", key="bulk_text", height=140, max_chars=MAX_PASTE_CHARACTERS,
                              placeholder="org_abc123, org_def456 …  (any separators: lines, commas, spaces)")
upload = upload_column.file_uploader("…or a CSV with an id column", type=["csv"],
                                     key=f"bulk_csv_{st.session_state.get('bulk_inputs', 0)}",
                                     help="A column named organization_id, org_id, org or id; else the first column.")


parsed = _parsed(text, upload, _uploaded_ids(upload))
if len(text) >= MAX_PASTE_CHARACTERS:
    paste_column.warning(f"The box holds {MAX_PASTE_CHARACTERS:,} characters, so the end of the paste was cut off: "
                         "upload the list as a CSV instead.", icon=":material/content_cut:")

if parsed.valid or parsed.duplicates or parsed.invalid_count:
    notes = [f"**{len(parsed.valid):,}** to look up"]
    if parsed.duplicates:
        notes.append(f"{len(parsed.duplicates):,} duplicates skipped")
    if parsed.invalid_count:
        notes.append(f"{parsed.invalid_count:,} invalid, not sent")
    if parsed.over_limit:
        notes.append(f"{parsed.over_limit:,} beyond the {MAX_IDS:,} limit, not sent")
    st.markdown(" · ".join(notes))
    if parsed.invalid:
        with st.expander(f"Invalid ids ({parsed.invalid_count:,})"):
            st.dataframe([{"Given": given, "Problem": problem} for given, problem in parsed.invalid],
                         hide_index=True, width="stretch")
            if parsed.invalid_unlisted:
                st.caption(f"…and {parsed.invalid_unlisted:,} more, not listed. Check the list's format.")
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
        jobs_ui.open_job(started)
        st.rerun()

if opened := st.query_params.get("job"):
    with st.container(border=True):
        jobs_ui.job_panel(desk, actor, opened)
jobs_ui.jobs_list(desk)
