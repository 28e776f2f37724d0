"""Revenue: MRR and ARR over time, each month's movements and rates, the cohorts, and the ledger behind every
number (finance, admin). Read from the directory's daily snapshots (services/revenue/)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import streamlit as st

from services.auth.roles import Page
from ui import guard, revenue, session
from ui.console import get_console
from ui.widgets import stop_on_read_error

actor = session.require_page(Page.REVENUE)
desk = get_console().desk

st.title("Revenue")
st.caption("From the daily snapshots of the customer directory, taken after each day's refresh.")
with st.expander("What each figure means", icon=":material/help:"):
    st.markdown(revenue.HELP)

today = datetime.now(timezone.utc).date()  # the snapshots' days are UTC days
year_ago = (today.replace(day=1) - timedelta(days=335)).replace(day=1)  # twelve whole months, this one included
dates = st.date_input("Dates", value=(year_ago, today), max_value=today, format="YYYY-MM-DD")
if not (isinstance(dates, tuple) and len(dates) == 2):
    st.info("Choose the last day of the range too.")
    st.stop()
start, end = dates
try:
    figures = desk.revenue_overview(actor, start, end)
except Exception as problem:
    stop_on_read_error(problem, "read the revenue figures")
if figures.empty:
    st.info("No snapshot in these dates yet. The first is taken after the directory's next daily refresh.")
    st.stop()

revenue.headline(figures)
left, right = st.columns(2)
with left:
    st.subheader("MRR")
    grain = st.segmented_control("Each point is a", ["Day", "Week", "Month"], default="Month", key="revenue_grain")
    revenue.mrr_chart(figures.days, grain or "Month")
with right:
    st.subheader("Movements by month")
    revenue.movements_chart(figures.months)

st.subheader("Month by month")
st.caption("Choose a number to list the movements behind it.")
chosen = revenue.month_table(figures.months)
cells = chosen.selection.cells if chosen else []
downloads = st.columns(4)
stem = f"revenue-{start:%Y%m%d}-{end:%Y%m%d}"
downloads[0].download_button("Monthly table CSV", guard.download(desk.revenue_export, "months", "csv", start, end),
                             file_name=f"{stem}-months.csv", mime="text/csv", icon=":material/download:",
                             on_click="ignore", key="months_csv")
downloads[1].download_button("Monthly table Excel", guard.download(desk.revenue_export, "months", "xlsx", start, end),
                             file_name=f"{stem}-months.xlsx", icon=":material/table:", on_click="ignore",
                             mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                             key="months_xlsx")

st.subheader("Ledger")
revenue.ledger_section(desk, actor, list(figures.months["month"]), cells, start, end, stem)

st.subheader("Cohorts")
st.caption("Customers by the month they first paid; each month since, the MRR they pay as a share of their first "
           "month's.")
revenue.cohort_table(figures.cohorts)
