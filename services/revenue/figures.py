"""The Revenue page's figures, read from the day rollups (never the snapshots): MRR over time, each month's
movements and rates, the cohorts; the movement ledger behind every number; one organization's MRR history.

Definitions (shown on the page; docs/revenue.md):
- **MRR** as of each day's snapshot (taken after that day's refresh, early in the day UTC); **ARR** = MRR × 12; **customers**: organizations with MRR above zero; **ARPA** = MRR ÷
  customers at the month's end.
- **Customer churn rate** = customers churned in the month ÷ customers at its start.
- **Gross MRR churn** = (contraction + churn) ÷ MRR at the month's start; **net MRR churn** = (contraction + churn −
  expansion − reactivation) ÷ MRR at its start (negative: expansion outgrew what was lost).
- **Net revenue retention** = (MRR at the start + expansion − contraction − churn) ÷ MRR at the start: what last
  month's customers pay now, new and reactivated customers left out.
- **Quick ratio** = (new + expansion + reactivation) ÷ (contraction + churn).
- **Cohorts**: customers grouped by the month they first paid; each month since, the MRR they pay as a share of
  what they paid at the end of their first month.
A rate whose divisor is zero is shown empty, not as zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine

from ..directory import directory_organizations as directory
from .movements import CHURN, CONTRACTION, EXPANSION, GROWTH, KINDS, LOSS, REACTIVATION
from .snapshots import CARRIED_BY, as_day
from .tables import MOVEMENT_COLUMNS, revenue_cohort_days, revenue_days, revenue_movements, revenue_snapshots

LEDGER_PAGE = 50
MONTH_COLUMNS = ["month", "mrr_start", "new", "expansion", "reactivation", "contraction", "churn", "net_movement",
                 "first_counted", "no_longer_counted", "mrr_end", "arr_end", "customers_start", "customers_end",
                 "customers_churned", "customer_churn_rate", "gross_mrr_churn", "net_mrr_churn",
                 "net_revenue_retention", "quick_ratio", "arpa", "scheduled_churn", "days", "carried_days"]


@dataclass(frozen=True)
class RevenueOverview:
    days: pd.DataFrame  # one row per day in the range: day, mrr, arr, customers, organizations, carried, movements
    months: pd.DataFrame  # MONTH_COLUMNS, money in dollars, rates as fractions (0.05 for 5 %)
    cohorts: pd.DataFrame  # cohort, customers, mrr_first_month, then "month 0", "month 1"… as fractions
    carried_days: list[date]  # days nothing was read on: filled in from the day before, or every row carried

    @property
    def empty(self) -> bool:
        return self.days.empty


def overview(engine: Engine, start: date, end: date) -> RevenueOverview:
    """The figures for the days from `start` to `end`, both included."""
    with engine.connect() as conn:
        rows = [row._asdict() for row in conn.execute(select(revenue_days).where(
            revenue_days.c.day >= start - timedelta(days=1), revenue_days.c.day <= end).order_by(revenue_days.c.day))]
        cohort_rows = [row._asdict() for row in conn.execute(select(revenue_cohort_days).where(
            revenue_cohort_days.c.day >= start, revenue_cohort_days.c.day <= end))]
    for row in rows:
        row["day"] = as_day(row["day"])
    before = [row for row in rows if row["day"] < start]
    rows = [row for row in rows if row["day"] >= start]
    days = _days_frame(rows)
    return RevenueOverview(days, _months(rows, before[-1] if before else None), _cohorts(cohort_rows),
                           [row["day"] for row in rows if _carried(row)])


def _carried(row: dict[str, Any]) -> bool:
    """A day nothing was read on: filled in from the day before, or taken with every row carried (the refresh
    read none of them)."""
    return row["taken_by"] == CARRIED_BY or (row["organizations"] > 0 and row["carried"] == row["organizations"])


def _days_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame([{
        "day": pd.Timestamp(row["day"]), "mrr": row["mrr_cents"] / 100, "arr": row["mrr_cents"] * 12 / 100,
        "customers": row["customers"], "organizations": row["organizations"], "carried": row["carried"],
        **{kind: row[f"{kind}_cents"] / 100 for kind in MOVEMENT_COLUMNS}} for row in rows],
        columns=["day", "mrr", "arr", "customers", "organizations", "carried", *MOVEMENT_COLUMNS])
    return frame


def _months(rows: list[dict[str, Any]], opening: dict[str, Any] | None) -> pd.DataFrame:
    months: list[dict[str, Any]] = []
    previous = opening
    for month in sorted({row["day"].replace(day=1) for row in rows}):
        inside = [row for row in rows if row["day"].replace(day=1) == month]
        first, last = inside[0], inside[-1]
        sums = {kind: sum(row[f"{kind}_cents"] for row in inside) for kind in MOVEMENT_COLUMNS}
        counts = {kind: sum(row[f"{kind}_count"] for row in inside) for kind in MOVEMENT_COLUMNS}
        if previous is not None:
            mrr_start, customers_start = previous["mrr_cents"], previous["customers"]
        else:  # the first day on record: what it started from, by its own movements
            mrr_start = first["mrr_cents"] - _net_cents(first)
            customers_start = first["customers"] - _net_customers(first)
        growth = sum(sums[kind] for kind in GROWTH)
        loss = sum(sums[kind] for kind in LOSS)
        months.append({
            "month": month.strftime("%Y-%m"), "mrr_start": mrr_start / 100,
            **{kind: sums[kind] / 100 for kind in MOVEMENT_COLUMNS}, "net_movement": (growth - loss) / 100,
            "mrr_end": last["mrr_cents"] / 100, "arr_end": last["mrr_cents"] * 12 / 100,
            "customers_start": customers_start, "customers_end": last["customers"],
            "customers_churned": counts[CHURN],
            "customer_churn_rate": _share(counts[CHURN], customers_start),
            "gross_mrr_churn": _share(sums[CONTRACTION] + sums[CHURN], mrr_start),
            "net_mrr_churn": _share(sums[CONTRACTION] + sums[CHURN] - sums[EXPANSION] - sums[REACTIVATION], mrr_start),
            "net_revenue_retention": _share(mrr_start + sums[EXPANSION] - sums[CONTRACTION] - sums[CHURN], mrr_start),
            "quick_ratio": _share(growth, loss),
            "arpa": last["mrr_cents"] / 100 / last["customers"] if last["customers"] else None,
            "scheduled_churn": last["scheduled_churn_cents"] / 100,
            "days": len(inside), "carried_days": sum(_carried(row) for row in inside)})
        previous = last
    return pd.DataFrame(months, columns=MONTH_COLUMNS)


def _net_cents(row: dict[str, Any]) -> int:
    return (sum(row[f"{kind}_cents"] for kind in (*GROWTH, "first_counted"))
            - sum(row[f"{kind}_cents"] for kind in (*LOSS, "no_longer_counted")))


def _net_customers(row: dict[str, Any]) -> int:
    return (row["new_count"] + row["reactivation_count"] + row["first_counted_count"] - row["churn_count"]
            - row["no_longer_counted_count"])


def _share(part: int | float, whole: int | float) -> float | None:
    return None if not whole else float(Decimal(part) / Decimal(whole))


def _cohorts(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Each cohort's MRR at each month's last day on record, as a share of its MRR at the end of its first month."""
    month_ends: dict[date, date] = {}
    for row in rows:
        day = as_day(row["day"])
        month = day.replace(day=1)
        month_ends[month] = max(month_ends.get(month, day), day)
    at_end = {(as_day(row["cohort"]), as_day(row["day"]).replace(day=1)): row for row in rows
              if as_day(row["day"]) == month_ends[as_day(row["day"]).replace(day=1)]}
    records = []
    for cohort in sorted({cohort for cohort, _ in at_end}):
        first = at_end.get((cohort, cohort))
        if first is None or not first["mrr_cents"]:
            continue  # its first month is before the range: no base to compare with
        record: dict[str, Any] = {"cohort": cohort.strftime("%Y-%m"), "customers": first["customers"],
                                  "mrr_first_month": first["mrr_cents"] / 100}
        for month in sorted(month for month in month_ends if month >= cohort):
            since = (month.year - cohort.year) * 12 + month.month - cohort.month
            row = at_end.get((cohort, month))
            record[f"month {since}"] = (row["mrr_cents"] if row else 0) / first["mrr_cents"]
        records.append(record)
    return pd.DataFrame(records)


def ledger(engine: Engine, month: str, kinds: Sequence[str] | None, start: date, end: date, page: int = 0,
           size: int = LEDGER_PAGE) -> tuple[pd.DataFrame, int]:
    """The movements of `month` ("2026-11", within `start`…`end`) of these kinds (None: every kind), largest
    change first: (a page of rows, how many in all). Each row names the organization as the directory knows it."""
    first = date.fromisoformat(f"{month}-01")
    after = (first + timedelta(days=32)).replace(day=1)
    conditions = [revenue_movements.c.day >= max(first, start), revenue_movements.c.day < after,
                  revenue_movements.c.day <= end]
    if kinds is not None:
        if not kinds or any(kind not in KINDS for kind in kinds):
            raise ValueError(f"{kinds!r} are not movements")
        conditions.append(revenue_movements.c.kind.in_(list(kinds)))
    change = revenue_movements.c.to_mrr_cents - revenue_movements.c.from_mrr_cents
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(revenue_movements).where(*conditions)).scalar_one()
        rows = conn.execute(
            select(revenue_movements, directory.c.name).select_from(revenue_movements.outerjoin(
                directory, directory.c.organization_id == revenue_movements.c.organization_id))
            .where(*conditions).order_by(func.abs(change).desc(), revenue_movements.c.day,
                                         revenue_movements.c.organization_id)
            .limit(size).offset(page * size)).all()
    frame = pd.DataFrame([{
        "day": pd.Timestamp(as_day(row.day)), "organization_id": row.organization_id, "name": row.name,
        "kind": row.kind, "from_plan": row.from_plan, "to_plan": row.to_plan, "from_mrr": row.from_mrr_cents / 100,
        "to_mrr": row.to_mrr_cents / 100, "change": (row.to_mrr_cents - row.from_mrr_cents) / 100} for row in rows],
        columns=["day", "organization_id", "name", "kind", "from_plan", "to_plan", "from_mrr", "to_mrr", "change"])
    return frame, total


def organization_history(engine: Engine, organization_id: str, since: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One organization's MRR by day from `since` (day, mrr, plan, status, carried) and its movements."""
    with engine.connect() as conn:
        days = conn.execute(select(revenue_snapshots).where(and_(
            revenue_snapshots.c.organization_id == organization_id, revenue_snapshots.c.day >= since))
            .order_by(revenue_snapshots.c.day)).all()
        moves = conn.execute(select(revenue_movements).where(
            revenue_movements.c.organization_id == organization_id).order_by(revenue_movements.c.day)).all()
    history = pd.DataFrame([{"day": pd.Timestamp(as_day(row.day)),
                             "mrr": None if row.mrr_cents is None else row.mrr_cents / 100, "plan": row.plan,
                             "status": row.status, "carried": row.carried} for row in days],
                           columns=["day", "mrr", "plan", "status", "carried"])
    movements = pd.DataFrame([{"day": pd.Timestamp(as_day(row.day)), "kind": row.kind, "from_plan": row.from_plan,
                               "to_plan": row.to_plan, "change": (row.to_mrr_cents - row.from_mrr_cents) / 100}
                              for row in moves], columns=["day", "kind", "from_plan", "to_plan", "change"])
    return history, movements
