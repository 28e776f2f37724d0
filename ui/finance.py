"""The finance summary of a bulk lookup on screen: headline figures, MRR by plan, what is at risk, trials ending.

Figures come from services/finance.py (exact, in Decimal); here they are only shown. Text from the API (names,
plans) goes into tables and the chart, which show it literally, never into markdown unescaped.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import streamlit as st

from services.finance import FinanceSummary, summary_frames
from ui.present import status_label


def money_text(amount: Decimal | None, currency: str = "USD") -> str:
    """$12,345.67 (or 12,345.67 EUR); an em dash for nothing."""
    if amount is None:
        return "—"
    if currency.upper() == "USD":
        return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"
    return f"{amount:,.2f} {currency.upper()}"


_NUMBER_FORMATS = {"USD": "dollar", "EUR": "euro", "JPY": "yen"}


def _money_column(label: str, currency: str, help: str | None = None) -> Any:
    preset = _NUMBER_FORMATS.get(currency)
    return st.column_config.NumberColumn(label if preset else f"{label} ({currency})", help=help,
                                         format=preset or "localized")


def _as_floats(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Decimal money as Float64 for the screen's table (the figures themselves were summed exactly)."""
    shown = frame.copy()
    for column in columns:
        if column in shown:
            shown[column] = pd.array([None if value is None or pd.isna(value) else float(value)
                                      for value in shown[column]], dtype="Float64")
    return shown


SECURE, AT_RISK = "Not at risk", "At risk"


def mrr_by_plan_data(by_plan: pd.DataFrame) -> pd.DataFrame:
    """The chart's rows: per plan, its MRR not at risk and at risk (floats for the chart only)."""
    rows = []
    for item in by_plan.itertuples(index=False):
        at_risk = float(item.mrr_at_risk or 0)
        common = {"plan": item.plan, "mrr": float(item.mrr), "arr": float(item.arr),
                  "subscriptions": int(item.subscriptions), "at_risk": at_risk}
        rows.append({**common, "part": SECURE, "amount": float(item.mrr) - at_risk})
        rows.append({**common, "part": AT_RISK, "amount": at_risk})
    return pd.DataFrame(rows, columns=["plan", "part", "amount", "mrr", "arr", "subscriptions", "at_risk"])


def mrr_by_plan_spec(plans: list[str], currency: str = "USD") -> dict[str, Any]:
    """A plain Vega-Lite spec (no expressions: it runs under the console's CSP): one bar per plan (highest MRR
    first), its MRR at risk stacked in orange."""
    axis_format = "$,.0f" if currency == "USD" else ",.0f"
    exact = axis_format.replace(".0f", ".2f")
    return {
        "mark": {"type": "bar"},
        "height": {"step": 34},  # a fixed height squeezes the bars under a top legend
        "encoding": {
            "y": {"field": "plan", "type": "nominal", "sort": plans, "title": None,
                  "axis": {"labelOverlap": False, "labelLimit": 220}},
            "x": {"field": "amount", "type": "quantitative", "stack": "zero", "axis": {"format": axis_format},
                  "title": "MRR" if currency == "USD" else f"MRR ({currency})"},
            "color": {"field": "part", "type": "nominal", "title": None, "legend": {"orient": "top"},
                      "scale": {"domain": [SECURE, AT_RISK], "range": ["#1f77b4", "#ff7f0e"]}},
            "order": {"field": "part", "sort": "descending"},
            "tooltip": [
                {"field": "plan", "type": "nominal", "title": "Plan"},
                {"field": "mrr", "type": "quantitative", "title": "MRR", "format": exact},
                {"field": "at_risk", "type": "quantitative", "title": "MRR at risk", "format": exact},
                {"field": "arr", "type": "quantitative", "title": "ARR", "format": exact},
                {"field": "subscriptions", "type": "quantitative", "title": "Subscriptions", "format": ","},
            ],
        },
    }


def show_summary(summary: FinanceSummary) -> None:
    """The summary for a finance lead: four figures, MRR by plan, the at-risk list, the trials ending."""
    currency = summary.currency
    frames = summary_frames(summary)
    at_risk_count = sum(count for _, count, _ in summary.at_risk_by_reason)
    share = summary.at_risk_share
    first, second, third, fourth = st.columns(4)
    first.metric("MRR", money_text(summary.mrr, currency), border=True,
                 help="Monthly recurring revenue of active and past-due subscriptions; a yearly price counts a "
                      "twelfth a month. Trials, canceled and incomplete subscriptions count zero.")
    second.metric("ARR", money_text(summary.arr, currency), border=True, help="MRR × 12.")
    third.metric("MRR at risk", money_text(summary.mrr_at_risk, currency), border=True,
                 delta=f"{share:.1%} of MRR · {at_risk_count:,} subscriptions" if share is not None else None,
                 delta_color="off", delta_arrow="off",
                 help="Past due and cancelling at period end: their whole MRR; scheduled downgrades: the MRR they "
                      "lose. Each subscription counts once.")
    fourth.metric(f"Trials ending in {summary.trial_window_days} days", f"{summary.trials_ending_count:,}",
                  border=True, help=f"Trialing organizations whose trial ends by "
                                    f"{summary.today + timedelta(days=summary.trial_window_days):%d %b %Y}.")
    coverage = (f"{summary.paying:,} paying subscriptions · {summary.counted:,} of {summary.organizations:,} "
                f"organizations counted · amounts in {currency} · as of {summary.today:%d %b %Y}")
    if summary.not_counted:
        coverage += f" · **{len(summary.not_counted):,} not counted** (listed below)"
    st.caption(coverage)

    by_plan = frames["By plan"]
    chart_column, reasons_column = st.columns([3, 2])
    with chart_column:
        st.markdown("**MRR by plan**")
        if by_plan.empty:
            st.caption("No paying subscriptions in these results.")
        else:
            st.vega_lite_chart(mrr_by_plan_data(by_plan), mrr_by_plan_spec(by_plan.plan.tolist(), currency),
                               width="stretch")
    with reasons_column:
        st.markdown("**MRR at risk, by reason**")
        st.dataframe(pd.DataFrame([{"reason": reason, "subscriptions": count, "mrr_at_risk": float(amount)}
                                   for reason, count, amount in summary.at_risk_by_reason]),
                     hide_index=True, width="stretch", column_config={
                         "reason": "Reason", "subscriptions": st.column_config.NumberColumn("Subscriptions"),
                         "mrr_at_risk": _money_column("MRR at risk", currency)})

    st.markdown(f"**At risk** ({len(summary.at_risk):,})")
    if summary.at_risk:
        at_risk = _as_floats(frames["At risk"], ("mrr", "mrr_at_risk", "to_mrr"))
        at_risk["status"] = at_risk["status"].map(status_label)
        st.dataframe(at_risk, hide_index=True, width="stretch", placeholder="—", column_config={
            "organization_id": "Organization", "name": "Name", "plan": "Plan", "status": "Status",
            "reason": "Reason", "also": "Also",
            "mrr": _money_column("MRR", currency),
            "mrr_at_risk": _money_column("MRR at risk", currency, "What is lost if it goes ahead"),
            "to_plan": "Moves to", "to_mrr": _money_column("MRR after", currency),
            "effective_utc": st.column_config.DatetimeColumn("Takes effect (UTC)", format="D MMM YYYY")})
    else:
        st.caption("Nothing at risk in these results.")

    st.markdown(f"**Trials ending in the next {summary.trial_window_days} days** ({summary.trials_ending_count:,})")
    if summary.trials_ending:
        trials = _as_floats(frames["Trials ending"], ("monthly_after",))
        st.dataframe(trials, hide_index=True, width="stretch", placeholder="—", column_config={
            "organization_id": "Organization", "name": "Name", "plan": "Plan",
            "trial_end_utc": st.column_config.DatetimeColumn("Trial ends (UTC)", format="D MMM YYYY"),
            "days_left": st.column_config.NumberColumn("Days left", help="0 is today; below 0, already past"),
            "monthly_after": _money_column("Monthly price", currency, "The trial's price per month")})
    else:
        st.caption("No trial ends in that window.")

    counts_column, missing_column = st.columns(2)
    with counts_column:
        st.markdown("**Organizations by status**")
        counts = frames["Status counts"].copy()
        counts["status"] = counts["status"].map(status_label)
        st.dataframe(counts, hide_index=True, width="stretch",
                     column_config={"status": "Status", "organizations": "Organizations"})
    with missing_column:
        st.markdown(f"**Not counted** ({len(summary.not_counted):,})")
        if summary.not_counted:
            missing = frames["Not counted"].copy()
            missing["status"] = missing["status"].map(status_label)
            st.dataframe(missing, hide_index=True, width="stretch",
                         column_config={"organization_id": "Organization", "status": "Status", "reason": "Why"})
        else:
            st.caption("Every organization's revenue is known: none is left out of the totals.")
