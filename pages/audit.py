"""Audit log: every write attempt, filterable, downloadable as CSV."""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from services.audit import OUTCOMES, PAGE_SIZE, AuditFilter
from services.exports import ZIP_ABOVE_ROWS
from services.auth.roles import Actor, Page
from ui import guard, paging, session
from ui.console import get_console
from ui.widgets import show_error, stop_on_read_error

CHAIN_HELP = ("Each audit row holds an HMAC, under a key the database never sees, of its content and of the row "
              "before it. A small log is re-hashed whole each time this page opens; a large one, the rows added since "
              "the last check here, while the whole chain is re-hashed every 15 minutes in the background and its head "
              "written to a witness outside the database (docs/security.md).")

actor = session.require_page(Page.AUDIT)
desk = get_console().desk

st.title("Audit log")
st.caption("Every write attempt: who, what, on which organization, why, and how it ended. Links and keys are "
           "never recorded.")
try:  # the store may be down: one sentence and a way to try again, never the generic failure
    choices = {column: desk.audit_choices(actor, column) for column in ("user", "action")}
except Exception as problem:
    stop_on_read_error(problem, "read the audit log")
with st.container(border=True):
    users_column, organization_column, match_column, actions_column = st.columns([3, 2, 1, 3])
    users = users_column.multiselect("User", choices["user"])
    asked = st.query_params.get("org")  # a customer's history links here with its organization
    organization = organization_column.text_input(
        "Organization", value=asked or "", placeholder="org_…", help="The exact id, or the ids starting with it: choose "
        "\"starts with\" or end it with *.")
    match = match_column.selectbox("Match", ["is", "starts with"], help="How the organization is matched")
    actions = actions_column.multiselect("Action", choices["action"])
    outcomes_column, dates_column, _ = st.columns(3)
    outcomes = outcomes_column.multiselect("Outcome", list(OUTCOMES))
    today = date.today()
    since = today - timedelta(days=3650 if asked else 30)  # a customer's whole history, else the last 30 days
    dates = dates_column.date_input("Dates", value=(since, today), max_value=today)

since, until = (dates if isinstance(dates, tuple) and len(dates) == 2 else (None, None))
filters = AuditFilter(tuple(users), organization, tuple(actions), tuple(outcomes), since, until,
                      "prefix" if match == "starts with" else "exact")
# Paging: the cursor (time, id) each page starts after, newest first; new filters start again at the first.
try:
    summary, page = desk.audit_page(actor, filters, paging.cursors("audit_paging", filters)[-1])
except Exception as problem:
    stop_on_read_error(problem, "read the audit log")
events = page.frame

# Whether the hash chain verifies (services/audit/verify.py): the rows added since the last verified one are
# hashed, and the answer is reused for 30 s. Asked of the audit log itself, right after desk.audit_page has
# checked that this person may read it.
try:
    chain = desk.audit_chain_status(actor)
except Exception as problem:
    show_error(problem, "check the audit chain")
else:
    if chain.ok:
        st.caption(f":material/verified_user: {chain.summary}", help=CHAIN_HELP)
    else:
        st.error(f"{chain.summary} Nothing on this page can be trusted until the operators have looked: "
                 "`python -m services.audit verify` lists every break (docs/deployment.md).", icon=":material/gpp_bad:")

breakdown = "".join(f" · {count:,} {outcome}" for outcome, count in (summary.outcomes or {}).items())
st.markdown(f"**{summary.total:,}** {'event matches' if summary.total == 1 else 'events match'}{breakdown}")
st.dataframe(
    events, hide_index=True, width="stretch", placeholder="",
    column_order=["at", "environment", "user", "role", "action", "organization_id", "outcome", "reason", "error",
                  "parameters", "request_id", "attempts", "completed_at", "id"],
    column_config={
        "id": st.column_config.NumberColumn("#", width="small"),
        "at": st.column_config.DatetimeColumn("Time (UTC)", format="D MMM YYYY, HH:mm:ss"),
        "environment": st.column_config.TextColumn("Env.", width="small",
                                                   help="sandbox, test key or live key: which money the row is about"),
        "user": "User", "role": "Role", "action": "Action", "organization_id": "Organization",
        "parameters": st.column_config.TextColumn("Parameters", width="medium"),
        "reason": st.column_config.TextColumn("Reason", width="medium"),
        "outcome": "Outcome", "error": st.column_config.TextColumn("Error", width="medium"),
        "request_id": "Request id", "attempts": st.column_config.NumberColumn("Tries", width="small"),
        "completed_at": st.column_config.DatetimeColumn("Completed (UTC)", format="D MMM YYYY, HH:mm:ss"),
    })


paging.pager("audit_paging", summary.total, PAGE_SIZE, page.next, shown=len(events), detail="events")


ZIPPED = summary.total > ZIP_ABOVE_ROWS  # Streamlit holds a download's bytes in memory: a big one goes zipped
CSV_NAME = f"audit-{today}.csv"


def _export(actor: Actor) -> bytes:
    """The file, made on the click in batches with every matching event up to the newest counted above, and
    handed over as bytes: Streamlit's deferred download takes bytes (or a BufferedReader), not the temporary
    file's BufferedRandom, and reads it whole anyway; the temporary file is closed (deleted) here."""
    with desk.audit_export(actor, filters, summary.newest, zip_as=CSV_NAME if ZIPPED else None) as exported:
        return exported.read()


download_column, note_column = st.columns([1, 3], vertical_alignment="center")
download_column.download_button("Download CSV", guard.download(_export), file_name=f"{CSV_NAME}.zip" if ZIPPED else CSV_NAME,
                                mime="application/zip" if ZIPPED else "text/csv", icon=":material/download:",
                                on_click="ignore")
note_column.caption(f"Download all {summary.total:,} matching "
                    f"{'event' if summary.total == 1 else 'events'}, newest first (formula-safe CSV"
                    f"{', zipped: over ' + format(ZIP_ABOVE_ROWS, ',') + ' events' if ZIPPED else ''}).")
