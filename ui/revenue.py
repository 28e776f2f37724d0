"""The Revenue page's pieces: headline figures, the MRR and movements charts, the monthly table whose numbers open
the ledger, the cohorts. Figures come from the desk (services/revenue/); this only draws them."""

from __future__ import annotations

from datetime import date
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from services.auth.roles import Actor
from services.desk import BillingDesk
from services.revenue import LABELS, LEDGER_CHOICES, LEDGER_PAGE, RevenueOverview

from . import guard
from .widgets import show_error

GROWTH_COLOURS = {"New": "#2e7d32", "Expansion": "#66bb6a", "Reactivation": "#a5d6a7",
                  "Contraction": "#ef9a9a", "Churn": "#c62828"}
# The monthly table's columns: label, and what its numbers open in the ledger (services/revenue LEDGER_CHOICES).
EVERY = "Every movement"
MONTH_TABLE: dict[str, tuple[str, str]] = {
    "month": ("Month", EVERY), "days": ("Days", EVERY), "mrr_start": ("MRR at start", EVERY),
    "new": ("New", "New"), "expansion": ("Expansion", "Expansion"), "reactivation": ("Reactivation", "Reactivation"),
    "contraction": ("Contraction", "Contraction"), "churn": ("Churn", "Churn"),
    "net_movement": ("Net", "Growth and loss (net)"), "first_counted": ("First counted", "First counted"),
    "no_longer_counted": ("No longer counted", "No longer counted"), "mrr_end": ("MRR at end", EVERY),
    "customers_end": ("Customers", EVERY), "customers_churned": ("Churned", "Churn"),
    "customer_churn_rate": ("Customer churn", "Churn"),
    "gross_mrr_churn": ("Gross MRR churn", "Loss (gross MRR churn)"),
    "net_mrr_churn": ("Net MRR churn", "Net MRR churn (contraction, churn, expansion, reactivation)"),
    "net_revenue_retention": ("NRR", "Retention (NRR: expansion, contraction, churn)"),
    "quick_ratio": ("Quick ratio", "Growth and loss (net)"), "arpa": ("ARPA", EVERY),
    "carried_days": ("Carried days", EVERY)}
RATES = ("customer_churn_rate", "gross_mrr_churn", "net_mrr_churn", "net_revenue_retention")
HELP = """
- **MRR**: each paying subscription's monthly price (a yearly price counts a twelfth, trials zero; past due counts
  until canceled), in US dollars (another currency is counted nowhere), as of each day's snapshot (taken after that
  day's refresh, early in the day UTC); **ARR** = MRR × 12; **customers**: organizations paying above zero.
- **New**: zero to paying, never paid before. **Reactivation**: zero to paying, paid before. **Expansion** and
  **Contraction**: a paying price up or down (an upgrade at once, a downgrade when it takes effect). **Churn**: paying
  to zero; a cancel at period end counts on the day the period ends, and until then shows as *scheduled churn*.
- **First counted**: already paying when the console first read it (an import, a first lookup), or its price first
  known: the directory's opening balance, not new MRR. **No longer counted**: forgotten, purged, or its price no
  longer known. MRR moves by exactly these movements, day after day.
- **Customer churn** = customers churned ÷ customers at the month's start. **Gross MRR churn** = (contraction +
  churn) ÷ MRR at the start; **net MRR churn** subtracts expansion and reactivation. **NRR** = (MRR at the start +
  expansion − contraction − churn) ÷ MRR at the start. **Quick ratio** = (new + expansion + reactivation) ÷
  (contraction + churn). **ARPA** = MRR ÷ customers. A rate with nothing to divide by is left empty.
- **Carried**: a day (or an organization on a day) the console read nothing for: the last known state stands.
- **Cohorts**: customers by the month they first paid; each later month, the MRR they pay as a share of their
  first month's.
"""


def headline(figures: RevenueOverview) -> None:
    last = figures.days.iloc[-1]
    month = figures.months.iloc[-1]
    mrr, arr, customers, arpa, scheduled = st.columns(5)
    mrr.metric("MRR", _money(last["mrr"]), _money(month["net_movement"]) + " net this month",
               help="As of the last day's snapshot")
    arr.metric("ARR", _money(last["arr"]))
    customers.metric("Paying customers", f"{int(last['customers']):,}")
    arpa.metric("ARPA", _money(month["arpa"]) if pd.notna(month["arpa"]) else "—")
    scheduled.metric("Scheduled churn", _money(month["scheduled_churn"]),
                     help="MRR of subscriptions set to cancel at period end: still in MRR until then")
    carried = figures.carried_days
    named = ", ".join(f"{day:%d %b %Y}" for day in carried[-5:]) + (" …" if len(carried) > 5 else "")
    st.caption(f"{int(last['organizations']):,} organizations in the directory on the last day · "
               f"{len(carried)} day{'s' if len(carried) != 1 else ''} carried, nothing read"
               + (f" ({named})" if carried else "") + f" · {int(last['carried']):,} organizations not read on "
               "the last day · a month not wholly within the dates shows how many days it has")


def mrr_chart(days: pd.DataFrame, grain: str) -> None:
    rule = {"Day": None, "Week": "W", "Month": "MS"}[grain]
    series = days.set_index("day")[["mrr", "arr"]]
    if rule:  # the value at each period's last day
        series = series.resample(rule).last().dropna()
    frame = series.reset_index().rename(columns={"day": "Day", "mrr": "MRR", "arr": "ARR"})
    st.altair_chart(alt.Chart(frame).mark_line(point=grain != "Day").encode(
        x=alt.X("Day:T", title=None), y=alt.Y("MRR:Q", title="MRR ($)"),
        tooltip=[alt.Tooltip("Day:T"), alt.Tooltip("MRR:Q", format="$,.2f"), alt.Tooltip("ARR:Q", format="$,.2f")]),
        use_container_width=True)


def movements_chart(months: pd.DataFrame) -> None:
    rows = []
    for record in months.to_dict("records"):
        for kind in ("new", "expansion", "reactivation", "contraction", "churn"):
            sign = -1 if kind in ("contraction", "churn") else 1
            rows.append({"Month": record["month"], "Movement": LABELS[kind], "MRR": sign * record[kind]})
    frame = pd.DataFrame(rows)
    net = months.rename(columns={"month": "Month", "net_movement": "Net"})[["Month", "Net"]]
    bars = alt.Chart(frame).mark_bar().encode(
        x=alt.X("Month:O", title=None), y=alt.Y("MRR:Q", title="MRR moved ($)"),
        color=alt.Color("Movement:N", scale=alt.Scale(domain=list(GROWTH_COLOURS),
                                                      range=list(GROWTH_COLOURS.values()))),
        tooltip=["Month", "Movement", alt.Tooltip("MRR:Q", format="$,.2f")])
    line = alt.Chart(net).mark_line(point=True, color="#263238").encode(
        x="Month:O", y="Net:Q", tooltip=["Month", alt.Tooltip("Net:Q", format="$,.2f")])
    st.altair_chart(bars + line, use_container_width=True)


def month_table(months: pd.DataFrame) -> Any:
    """The monthly table; a cell chosen opens its month's ledger. Returns the selection."""
    config: dict[str, Any] = {}
    for column, (label, _) in MONTH_TABLE.items():
        if column in RATES:
            config[column] = st.column_config.NumberColumn(label, format="percent")
        elif column == "quick_ratio":
            config[column] = st.column_config.NumberColumn(label, format="%.2f")
        elif column in ("month", "days", "customers_end", "customers_churned", "carried_days"):
            config[column] = st.column_config.Column(label)
        else:
            config[column] = st.column_config.NumberColumn(label, format="dollar")
    return st.dataframe(months, hide_index=True, column_order=list(MONTH_TABLE), column_config=config,
                        on_select="rerun", selection_mode="single-cell", key="revenue_months")


def ledger_table(frame: pd.DataFrame) -> None:
    shown = frame.assign(kind=frame["kind"].map(LABELS), open=[f"./customer?org={organization}"
                                                              for organization in frame["organization_id"]])
    st.dataframe(shown, hide_index=True, column_order=["day", "name", "organization_id", "kind", "from_plan",
                                                       "to_plan", "from_mrr", "to_mrr", "change", "open"],
                 column_config={"day": st.column_config.DateColumn("Date", format="D MMM YYYY"),
                                "name": "Organization", "organization_id": "Id", "kind": "Movement",
                                "from_plan": "From plan", "to_plan": "To plan",
                                "from_mrr": st.column_config.NumberColumn("From MRR", format="dollar"),
                                "to_mrr": st.column_config.NumberColumn("To MRR", format="dollar"),
                                "change": st.column_config.NumberColumn("Change", format="dollar"),
                                "open": st.column_config.LinkColumn("Customer", display_text="Open")})


def ledger_section(desk: BillingDesk, actor: Actor, months: list[str], cells: list[Any], start: date, end: date,
                   stem: str) -> None:
    """The movements behind a month's figure: the cell chosen in the monthly table picks the month and what its
    number is made of; 50 a page, largest first; the downloads hold every one."""
    picked_month, picked = months[-1], EVERY
    if cells:
        row, column = cells[0]
        picked_month, picked = months[row], MONTH_TABLE.get(column, ("", EVERY))[1]
    choices = list(LEDGER_CHOICES)
    month_column, kind_column = st.columns(2)
    month = month_column.selectbox("Month", months, index=months.index(picked_month),
                                   key=f"ledger_month_{picked_month}")
    choice = kind_column.selectbox("Movement", choices, index=choices.index(picked),
                                   key=f"ledger_kind_{picked_month}_{picked}")
    kinds = LEDGER_CHOICES[choice]
    pages: dict[tuple[str, str], int] = st.session_state.setdefault("revenue_ledger_pages", {})
    page = pages.get((month, choice), 0)
    try:
        frame, total = desk.revenue_ledger(actor, month, kinds, start, end, page)
    except Exception as problem:
        show_error(problem, "read the ledger")
        return
    first = page * LEDGER_PAGE
    shown = f"; {first + 1:,}–{first + len(frame):,} shown" if total > len(frame) else ""
    st.caption(f"{total:,} movement{'' if total == 1 else 's'} ({choice.lower()}) in {month}, largest first{shown}")
    ledger_table(frame)
    earlier, later, csv, excel = st.columns(4)
    if earlier.button("Previous 50", key="ledger_previous", disabled=page == 0, icon=":material/chevron_left:"):
        pages[(month, choice)] = page - 1
        st.rerun()
    if later.button("Next 50", key="ledger_next", disabled=first + len(frame) >= total,
                    icon=":material/chevron_right:"):
        pages[(month, choice)] = page + 1
        st.rerun()
    csv.download_button("Ledger CSV", guard.download(desk.revenue_export, "ledger", "csv", start, end, month, kinds),
                        file_name=f"{stem}-ledger-{month}.csv", mime="text/csv", icon=":material/download:",
                        on_click="ignore", key="ledger_csv")
    excel.download_button("Ledger Excel", guard.download(desk.revenue_export, "ledger", "xlsx", start, end, month,
                                                         kinds), file_name=f"{stem}-ledger-{month}.xlsx",
                          mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                          icon=":material/table:", on_click="ignore", key="ledger_xlsx")


def cohort_table(cohorts: pd.DataFrame) -> None:
    if cohorts.empty:
        st.caption("No cohort has its first paid month within these dates.")
        return
    config: dict[str, Any] = {"cohort": "First paid", "customers": "Customers",
                              "mrr_first_month": st.column_config.NumberColumn("MRR, first month", format="dollar")}
    config.update({column: st.column_config.NumberColumn(column.capitalize(), format="percent")
                   for column in cohorts.columns if column.startswith("month ")})
    st.dataframe(cohorts, hide_index=True, column_config=config, placeholder="")  # a month not reached yet: blank


def _money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"
