"""Bulk lookup: customer info for a pasted or uploaded list of organizations, under the API's rate limit."""

from __future__ import annotations

import altair as alt
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from services.auth.roles import Page
from services.inputs import InputRefused
from services.bulk import MAX_IDS, BulkLookup, ids_from_csv, ids_from_text, parse_ids, status_counts
from ui import session
from ui.console import get_console
from ui.present import status_label
from ui.widgets import show_error

actor = session.require_page(Page.BULK)
desk = get_console().desk


def _start(organization_ids: list[str]) -> bool:
    previous = st.session_state.get("bulk_job")
    try:
        lookup = desk.start_bulk_lookup(actor, organization_ids)
    except Exception as problem:
        show_error(problem, "start the bulk lookup")
        return False
    if previous is not None:
        previous.stop()
    st.session_state["bulk_job"] = lookup
    return True


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


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


st.title("Bulk lookup")
st.caption(f"Look up many organizations at once: a renewal list, an incident's blast radius, a churn review. "
           f"Up to {MAX_IDS:,} ids; the lookup keeps under the Payments API's rate limit.")

job: BulkLookup | None = st.session_state.get("bulk_job")
running = job is not None and not job.progress().finished

paste_column, upload_column = st.columns([3, 2])
text = paste_column.text_area("Organization ids", key="bulk_text", height=160,
                              placeholder="org_abc123, org_def456 …  (any separators: lines, commas, spaces)")
upload = upload_column.file_uploader("…or a CSV with an id column", type=["csv"], key="bulk_csv",
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
    st.caption(f"At {limit:,} requests a minute this takes at least {_duration(len(parsed.valid) / limit * 60)}.")

if st.button(f"Look up {len(parsed.valid):,} organizations" if parsed.valid else "Look up", type="primary",
             icon=":material/search:", disabled=not parsed.valid or running, key="bulk_start"):
    if _start(parsed.valid):
        st.rerun()


@st.fragment(run_every=0.5 if running else None)
def progress_and_results() -> None:
    current: BulkLookup | None = st.session_state.get("bulk_job")
    if current is None:
        return
    progress = current.progress()
    if running and progress.finished:
        st.rerun()  # the whole page, to stop polling
    fraction = progress.done / progress.total if progress.total else 1.0
    label = (f"{progress.done:,} of {progress.total:,} looked up · {progress.not_found:,} not found · "
             f"{progress.failed:,} failed · {_duration(progress.elapsed)} elapsed")
    if not progress.finished:
        label += f" · about {_duration(progress.eta_seconds)} left"
    st.progress(fraction, text=label)
    if progress.rate_limited:
        st.caption(f"The API asked us to slow down {progress.rate_limited:,} times; those ids were retried.")
    if not progress.finished:
        if st.button("Stop", icon=":material/stop:", key="bulk_stop"):
            current.stop()
        return
    if progress.stopped and progress.done < progress.total:
        st.warning(f"Stopped: {progress.done:,} of {progress.total:,} were looked up; their results are below.")
    frame = current.frame()
    if frame.empty:
        return
    counts = status_counts(frame)
    counts["label"] = counts.status.map(status_label)
    metric_columns = st.columns(max(len(counts), 4))
    for column, (_, row) in zip(metric_columns, counts.iterrows()):
        column.metric(row.label, f"{row.organizations:,}")
    st.altair_chart(alt.Chart(counts).mark_bar().encode(
        x=alt.X("organizations:Q", title="Organizations", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("label:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False)),
        tooltip=[alt.Tooltip("label:N", title="Status"), alt.Tooltip("organizations:Q", title="Organizations")],
    ).properties(height=36 * len(counts) + 40), width="stretch")
    st.dataframe(frame, hide_index=True, width="stretch", placeholder="—", column_config={
        "organization_id": "Organization", "name": "Name", "status": "Status", "plan": "Plan",
        "price": st.column_config.NumberColumn("Price", format="dollar"), "interval": "Billed",
        "period_end": st.column_config.DatetimeColumn("Period ends", format="D MMM YYYY"),
        "cancel_at_period_end": st.column_config.CheckboxColumn("Cancelling"),
        "card_last4": "Card", "email": "Email", "address": "Address", "error": "Error"})
    st.download_button("Download CSV", lambda: desk.bulk_csv(actor, current), file_name="bulk-lookup.csv",
                       mime="text/csv", icon=":material/download:", on_click="ignore")


progress_and_results()
