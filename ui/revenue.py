"""The Revenue page's pieces: headline figures, the MRR and movements charts, the monthly table whose numbers open
the ledger, the cohorts. Figures come from the desk (services/revenue/); this only draws them."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from services.revenue import LABELS, RevenueOverview

GROWTH_COLOURS = {"New": "#2e7d32", "Expansion": "#66bb6a", "Reactivation": "#a5d6a7",
                  "Contraction": "#ef9a9a", "Churn": "#c62828"}
# The monthly table's columns: label, and the movement its numbers open in the ledger (None: every movement).
MONTH_TABLE: dict[str, tuple[str, str | None]] = {
    "month": ("Month", None), "mrr_start": ("MRR at start", None), "new": ("New", "new"),
    "expansion": ("Expansion", "expansion"), "reactivation": ("Reactivation", "reactivation"),
    "contraction": ("Contraction", "contraction"), "churn": ("Churn", "churn"), "net_movement": ("Net", None),
    "first_counted": ("First counted", "first_counted"),
    "no_longer_counted": ("No longer counted", "no_longer_counted"),
    "mrr_end": ("MRR at end", None), "customers_end": ("Customers", None), "customers_churned": ("Churned", "churn"),
    "customer_churn_rate": ("Customer churn", "churn"), "gross_mrr_churn": ("Gross MRR churn", None),
    "net_mrr_churn": ("Net MRR churn", None), "net_revenue_retention": ("NRR", None),
    "quick_ratio": ("Quick ratio", None), "arpa": ("ARPA", None), "carried_days": ("Carried days", None)}
RATES = ("customer_churn_rate", "gross_mrr_churn", "net_mrr_churn", "net_revenue_retention")
HELP = """
- **MRR**: each paying subscription's monthly price (a yearly price counts a twelfth, trials zero; past due counts
  until canceled), at each day's end; **ARR** = MRR × 12; **customers**: organizations paying above zero.
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
               help="At the end of the last day shown")
    arr.metric("ARR", _money(last["arr"]))
    customers.metric("Paying customers", f"{int(last['customers']):,}")
    arpa.metric("ARPA", _money(month["arpa"]) if pd.notna(month["arpa"]) else "—")
    scheduled.metric("Scheduled churn", _money(month["scheduled_churn"]),
                     help="MRR of subscriptions set to cancel at period end: still in MRR until then")
    carried = len(figures.filled_days)
    st.caption(f"{int(last['organizations']):,} organizations in the directory on the last day · "
               f"{carried} day{'s' if carried != 1 else ''} carried (nothing read) · "
               f"{int(last['carried']):,} organizations not read on the last day")


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
        elif column in ("month", "customers_end", "customers_churned", "carried_days"):
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
