"""A customer's history and internal notes, under the customer on the Customer page.

Drawn only while its expander is open (`.open`, on_change="rerun"), so a lookup costs nothing more than before;
opening it reads the store through the desk: the console's actions on this organization, a page at a time,
newest first, and the bulk lookups that included it.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from services.auth.roles import Action, Actor, allowed
from services.desk import BULK_LOOKUPS_SHOWN, BillingDesk
from services.inputs import MAX_NOTE_LENGTH
from services.revenue import LABELS

from . import guard
from .paging import cursors, pager
from .present import short_id
from .widgets import show_error

PAGE = 20
COLUMNS = {
    "at": st.column_config.DatetimeColumn("Time (UTC)", format="D MMM YYYY, HH:mm"),
    "user": "Who", "action": "What",
    "reason": st.column_config.TextColumn("Reason or note", width="large"),
    "outcome": "Outcome", "request": st.column_config.TextColumn("Approval request", width="small"),
    "request_id": st.column_config.TextColumn("API request id", width="small"),
}


@guard.callback
def _save_note(desk: BillingDesk, organization_id: str, actor: Actor) -> None:
    """The form's callback: the text box is emptied only once the note is stored (refused, the text stays)."""
    try:
        desk.add_note(actor, organization_id, st.session_state.get("customer_note_text", ""))
    except Exception as problem:
        st.session_state["customer_note_problem"] = problem
    else:
        st.session_state["customer_note_text"] = ""
        st.session_state["customer_note_added"] = True


def _add_note(desk: BillingDesk, organization_id: str) -> None:
    with st.form("customer_note", clear_on_submit=False, enter_to_submit=False, border=False):
        st.text_area("Internal note", key="customer_note_text", max_chars=MAX_NOTE_LENGTH, height=80,
                     placeholder="e.g. Called about the March invoice; promised a credit note by Friday.",
                     help="Seen by the team only, never by the customer. Kept with your name; it can't be edited, "
                          "only followed by a newer note.")
        st.form_submit_button("Add note", icon=":material/note_add:", on_click=_save_note,
                              args=(desk, organization_id))
    problem = st.session_state.pop("customer_note_problem", None)
    if problem is not None:
        show_error(problem, "add the note")
    if st.session_state.pop("customer_note_added", False):
        st.toast("Note added to the customer's history.", icon=":material/check:")


def history(desk: BillingDesk, actor: Actor, organization_id: str) -> None:
    panel = st.expander("History and notes", key="customer_history_open", icon=":material/history:",
                        on_change="rerun")
    if not panel.open:
        return
    with panel:
        if allowed(actor.role, Action.ADD_NOTE):
            _add_note(desk, organization_id)
        try:
            summary, page = desk.customer_history(actor, organization_id,
                                                  cursors("history_paging", organization_id)[-1], PAGE)
            lookups = desk.customer_bulk_lookups(actor, organization_id)
        except Exception as problem:
            show_error(problem, "read the customer's history")
            return
        heading = (f"**{summary.total:,}** console {'action' if summary.total == 1 else 'actions'} on this "
                   f"organization, newest first" if summary.total else "Nothing has been done to this organization "
                   "from the console yet.")
        st.markdown(heading)
        if summary.total:
            frame = page.frame.assign(request=page.frame.request.map(short_id))
            st.dataframe(frame, hide_index=True, width="stretch", placeholder="", column_config=COLUMNS,
                         column_order=list(COLUMNS), row_height=None)
            pager("history_paging", summary.total, PAGE, page.next, labels=("Newer", "Older"))
        if not lookups.empty:
            shown = lookups.job.nunique()
            newest = f" (the newest {shown:,})" if shown >= BULK_LOOKUPS_SHOWN else ""
            st.markdown(f"**Bulk lookups that included it**{newest}")
            st.dataframe(_lookups_frame(lookups), hide_index=True, width="stretch", column_config={
                "at": st.column_config.DatetimeColumn("Time (UTC)", format="D MMM YYYY, HH:mm"),
                "user": "Who", "what": "What", "job": "Job"})
        _revenue(desk, actor, organization_id)
        if allowed(actor.role, Action.READ_AUDIT_LOG):
            st.page_link("pages/audit.py", label="Open this organization in the Audit log", icon=":material/policy:",
                         query_params={"org": organization_id})


def _lookups_frame(lookups: pd.DataFrame) -> pd.DataFrame:
    return lookups.assign(job=lookups.job.map(short_id))


def _revenue(desk: BillingDesk, actor: Actor, organization_id: str) -> None:
    """Its MRR by day from the daily snapshots (a small chart) and its MRR movements (docs/revenue.md)."""
    try:
        days, movements = desk.customer_mrr_history(actor, organization_id)
    except Exception as problem:
        show_error(problem, "read the customer's MRR history")
        return
    if days.empty:
        return  # not in any daily snapshot yet
    st.markdown("**MRR over the last year** (from the daily snapshots)")
    st.altair_chart(alt.Chart(days.rename(columns={"day": "Day", "mrr": "MRR", "plan": "Plan"})).mark_line(
        interpolate="step-after").encode(x=alt.X("Day:T", title=None), y=alt.Y("MRR:Q", title="MRR ($)"),
                                         tooltip=[alt.Tooltip("Day:T"), alt.Tooltip("MRR:Q", format="$,.2f"), "Plan"]),
                    height=160, use_container_width=True)
    if not movements.empty:
        st.dataframe(movements.assign(kind=movements.kind.map(LABELS)), hide_index=True, width="stretch",
                     placeholder="",
                     column_config={"day": st.column_config.DateColumn("Date", format="D MMM YYYY"),
                                    "kind": "MRR movement", "from_plan": "From plan", "to_plan": "To plan",
                                    "change": st.column_config.NumberColumn("Change", format="dollar")})
