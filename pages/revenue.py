"""Revenue: MRR and ARR over time, each month's movements and rates, the cohorts, and the ledger behind every
number (finance, admin). Read from the directory's daily snapshots (services/revenue/)."""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from services.auth.roles import Page
from services.revenue import LABELS
from ui import guard, revenue, session
from ui.console import get_console
from ui.widgets import show_error, stop_on_read_error

actor = session.require_page(Page.REVENUE)
desk = get_console().desk

st.title("Revenue")
st.caption("From the daily snapshots of the customer directory, taken after each day's refresh.")
with st.expander("What each figure means", icon=":material/help:"):
    st.markdown(revenue.HELP)

today = date.today()
dates = st.date_input("Dates", value=(today - timedelta(days=364), today), max_value=today, format="YYYY-MM-DD")
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
months = list(figures.months["month"])
picked_month, picked_kind = months[-1], None
if cells:
    row, column = cells[0]
    picked_month = months[row]
    picked_kind = revenue.MONTH_TABLE.get(column, ("", None))[1]
kinds = [None, *LABELS]
month_column, kind_column = st.columns(2)
month = month_column.selectbox("Month", months, index=months.index(picked_month), key=f"ledger_month_{picked_month}")
kind = kind_column.selectbox("Movement", kinds, index=kinds.index(picked_kind),
                             format_func=lambda value: "Every movement" if value is None else LABELS[value],
                             key=f"ledger_kind_{picked_month}_{picked_kind}")
page = 0  # the first page on screen; the downloads hold every movement
try:
    frame, total = desk.revenue_ledger(actor, month, kind, start, end, page)
except Exception as problem:
    show_error(problem, "read the ledger")
else:
    what = "every movement" if kind is None else LABELS[kind].lower()
    st.caption(f"{total:,} movements ({what}) in {month}, largest first" + (f"; the first {len(frame)}"
                                                                          if total > len(frame) else ""))
    revenue.ledger_table(frame)
    ledger_csv, ledger_xlsx = st.columns(2)
    ledger_csv.download_button("Ledger CSV", guard.download(desk.revenue_export, "ledger", "csv", start, end, month,
                                                            kind), file_name=f"{stem}-ledger-{month}.csv",
                               mime="text/csv", icon=":material/download:", on_click="ignore", key="ledger_csv")
    ledger_xlsx.download_button("Ledger Excel", guard.download(desk.revenue_export, "ledger", "xlsx", start, end,
                                                               month, kind), file_name=f"{stem}-ledger-{month}.xlsx",
                                mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                icon=":material/table:", on_click="ignore", key="ledger_xlsx")

st.subheader("Cohorts")
st.caption("Customers by the month they first paid; each month since, the MRR they pay as a share of their first "
           "month's.")
revenue.cohort_table(figures.cohorts)
