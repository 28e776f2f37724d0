"""Needs attention: the accounts a person should look at today, most money at stake first (support, finance,
admin). From the customer directory as last read; opening one reads it from the API."""

from __future__ import annotations

import streamlit as st

from services.auth.roles import Page
from services.revenue import REASONS
from ui import guard, session
from ui.console import get_console
from ui.widgets import stop_on_read_error

actor = session.require_page(Page.ATTENTION)
desk = get_console().desk

st.title("Needs attention")
st.caption("Past due, cancelling at period end, a downgrade scheduled, a trial ending within 14 days: from the "
           "customer directory as last read (refreshed daily). Open one to read it now and act on it, the portal "
           "link included.")
reasons = st.pills("Reasons", REASONS, selection_mode="multi", default=list(REASONS), key="attention_reasons")
if not reasons:
    st.info("Choose at least one reason.")
    st.stop()
try:
    frame = desk.attention_list(actor, reasons)
except Exception as problem:
    stop_on_read_error(problem, "read the accounts needing attention")

count, stake, _ = st.columns([1, 1, 2])
count.metric("Accounts", f"{len(frame):,}")
stake.metric("MRR at stake", f"${frame['at_stake'].sum():,.2f}",
             help="Past due or cancelling: its MRR; a downgrade: the MRR it loses; a trial: none yet")
if frame.empty:
    st.success("Nothing needs attention for these reasons.", icon=":material/check_circle:")
    st.stop()
shown = frame.assign(open=[f"./customer?org={organization}" for organization in frame["organization_id"]])
st.dataframe(shown, hide_index=True, width="stretch", placeholder="",
             column_order=["name", "reasons", "at_stake", "date", "plan", "scheduled_plan", "email", "organization_id",
                           "last_read_at", "open"],
             column_config={"name": "Organization", "reasons": st.column_config.TextColumn("Why", width="medium"),
                            "at_stake": st.column_config.NumberColumn("MRR at stake", format="dollar"),
                            "date": st.column_config.DatetimeColumn("When", format="D MMM YYYY",
                                                                    help="Period end, downgrade date or trial end"),
                            "plan": "Plan", "scheduled_plan": "Moving to", "email": "E-mail",
                            "organization_id": "Id",
                            "last_read_at": st.column_config.DatetimeColumn("Read (UTC)", format="D MMM, HH:mm"),
                            "open": st.column_config.LinkColumn("Customer", display_text="Open")})
csv, excel, _ = st.columns([1, 1, 2])
csv.download_button("Download CSV", guard.download(desk.attention_export, "csv", reasons),
                    file_name="needs-attention.csv", mime="text/csv", icon=":material/download:", on_click="ignore",
                    key="attention_csv")
excel.download_button("Download Excel", guard.download(desk.attention_export, "xlsx", reasons),
                      file_name="needs-attention.xlsx", icon=":material/table:", on_click="ignore",
                      mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="attention_xlsx")
