"""Audit log: every write attempt, filterable, downloadable as CSV."""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from services.audit import OUTCOMES, AuditFilter
from services.auth.roles import Page
from ui import session
from ui.console import get_console
from ui.widgets import show_error

CHAIN_HELP = ("Each audit row holds the SHA-256 of its content and of the row before it. This check re-hashes the "
              "rows added since the last one verified; the full walk is `python -m services.audit verify`.")

actor = session.require_page(Page.AUDIT)
desk = get_console().desk

st.title("Audit log")
st.caption("Every write attempt: who, what, on which organization, why, and how it ended. Links and keys are "
           "never recorded.")
with st.container(border=True):
    users_column, organization_column, actions_column = st.columns(3)
    users = users_column.multiselect("User", desk.audit_choices(actor, "user"))
    organization = organization_column.text_input("Organization contains", placeholder="org_…")
    actions = actions_column.multiselect("Action", desk.audit_choices(actor, "action"))
    outcomes_column, dates_column, _ = st.columns(3)
    outcomes = outcomes_column.multiselect("Outcome", list(OUTCOMES))
    today = date.today()
    dates = dates_column.date_input("Dates", value=(today - timedelta(days=30), today), max_value=today)

since, until = (dates if isinstance(dates, tuple) and len(dates) == 2 else (None, None))
filters = AuditFilter(tuple(users), organization, tuple(actions), tuple(outcomes), since, until)
events = desk.audit_events(actor, filters)

# Whether the hash chain verifies (services/audit_verify.py): the rows added since the last verified one are
# hashed, and the answer is reused for 30 s. Asked of the audit log itself, right after desk.audit_events has
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

summary = events.outcome.value_counts()
st.markdown(f"**{len(events)}** events" + "".join(f" · {count} {outcome}" for outcome, count in summary.items()))
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
st.download_button("Download CSV", lambda: desk.audit_csv(actor, filters), file_name=f"audit-{today}.csv",
                   mime="text/csv", icon=":material/download:", on_click="ignore")
