"""The finance summary of a bulk lookup's results: recurring revenue, revenue at risk, trials ending, statuses.

What counts, and how (the same rules a finance lead applies by hand):

- **MRR** is the monthly equivalent of each counted subscription's price: a monthly price as it is, a yearly one a
  twelfth, a quarterly one a third (weekly and daily prices by their share of a year). **ARR** is MRR × 12.
- **Counted in MRR:** `active` and `past_due`. A past-due subscription is still contracted revenue (its invoice
  is open and being retried), so it stays in MRR, and its whole MRR is also **at risk**. A subscription
  cancelling at period end is still billed until then: in MRR, and its whole MRR at risk.
- **Zero:** `trialing` (nothing is billed until the trial converts), `canceled`, `incomplete` (the first payment
  never succeeded: no revenue yet), `none`, and any other status (`unpaid`, `incomplete_expired`, `paused`).
- **At risk**, each subscription once, under the first of its reasons: cancelling at period end (its MRR), past
  due (its MRR), a scheduled downgrade (the MRR it loses: current MRR minus the MRR of the price it moves to; a
  change that doesn't lower MRR, such as yearly to monthly on the same plan, is listed with nothing at risk).
- **Trials ending:** `trialing` subscriptions whose trial ends within the window (14 days from `today`, both
  days included; a trial whose end has passed but is still trialing is included too, with days left ≤ 0).
- **Not counted:** rows whose revenue isn't known, listed with why, so the totals are honest about what they
  cover: organizations not found, lookups that failed, a live subscription whose answer gave no price or
  interval, and one billed in another currency than the summary's (the most common one among the results).

Money is computed in exact `Decimal` from integer cents and rounded to the cent only in what is shown, so a sum
of yearly twelfths never drifts; each figure is rounded from its exact value (so plans' rounded MRRs may differ
from the rounded total by a cent).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd

from .exports import xlsx_bytes
from .tables import FINANCE_COLUMNS, monthly_cents

COUNTED_STATUSES = frozenset({"active", "past_due"})
ZERO_STATUSES = frozenset({"trialing", "canceled", "incomplete", "none", "unpaid", "incomplete_expired", "paused"})
NOT_COUNTED_STATUSES = frozenset({"not found", "error"})  # the lookup's own: no customer came back
TRIAL_WINDOW_DAYS = 14
REQUIRED_COLUMNS = ("organization_id", "name", "status", "plan", "period_end", "cancel_at_period_end",
                    *FINANCE_COLUMNS)

REASON_CANCELLING = "Cancelling at period end"
REASON_PAST_DUE = "Past due"
REASON_DOWNGRADE = "Scheduled downgrade"
REASONS = (REASON_CANCELLING, REASON_PAST_DUE, REASON_DOWNGRADE)
UNKNOWN_PLAN = "(plan not given)"
_CENT = Decimal("0.01")


def money(cents: Decimal | int) -> Decimal:
    """Exact cents as dollars rounded to the cent (half up, as invoices round)."""
    return (Decimal(cents) / 100).quantize(_CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class PlanRevenue:
    plan: str
    subscriptions: int  # counted in MRR (active and past due) on this plan
    mrr: Decimal
    arr: Decimal
    mrr_at_risk: Decimal = Decimal(0)  # of this plan's MRR


@dataclass(frozen=True)
class AtRisk:
    organization_id: str
    name: str | None
    plan: str | None
    status: str
    reason: str  # one of REASONS: the first that applies
    mrr: Decimal  # what the subscription brings now
    mrr_at_risk: Decimal  # what is lost if it goes as scheduled (0 for a change that doesn't lower MRR)
    effective_at: datetime | None  # period end, or when the scheduled change takes effect
    to_plan: str | None = None  # a scheduled change's plan
    to_mrr: Decimal | None = None  # and its MRR
    also: str | None = None  # other reasons that apply as well ("Past due")


@dataclass(frozen=True)
class TrialEnding:
    organization_id: str
    name: str | None
    plan: str | None
    trial_end: datetime
    days_left: int
    monthly_after: Decimal | None  # the monthly equivalent of the trial's price (what it bills if it converts)


@dataclass(frozen=True)
class NotCounted:
    organization_id: str
    status: str
    reason: str


@dataclass(frozen=True)
class FinanceSummary:
    today: date
    currency: str  # upper-case ISO code every amount is in
    organizations: int  # rows in the results
    counted: int  # rows whose revenue is known (including those that count zero)
    paying: int  # subscriptions counted in MRR
    mrr: Decimal
    arr: Decimal
    by_plan: tuple[PlanRevenue, ...]  # by MRR, highest first
    mrr_at_risk: Decimal
    at_risk_by_reason: tuple[tuple[str, int, Decimal], ...]  # (reason, subscriptions, MRR at risk) for REASONS
    at_risk: tuple[AtRisk, ...]  # by MRR at risk, highest first
    trials_ending: tuple[TrialEnding, ...]  # soonest first
    status_counts: tuple[tuple[str, int], ...]  # most first
    not_counted: tuple[NotCounted, ...]
    trial_window_days: int = TRIAL_WINDOW_DAYS

    @property
    def trials_ending_count(self) -> int:
        return len(self.trials_ending)

    @property
    def at_risk_share(self) -> Decimal | None:
        """MRR at risk as a share of MRR (0.125 for 12.5 %); None without MRR."""
        return (self.mrr_at_risk / self.mrr).quantize(Decimal("0.0001")) if self.mrr else None


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _moment(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()


def mrr_cents(status: str | None, price_cents: object, interval_unit: object, interval_count: object = 1
              ) -> Decimal | None:
    """A subscription's MRR in exact cents, by the rules above, for every view that shows MRR (this summary, the
    customer directory): 0 unless its status is counted (active, past due); None when it is counted but its price
    or billing interval is unknown."""
    if status not in COUNTED_STATUSES:
        return Decimal(0)
    return monthly_cents(price_cents, interval_unit, interval_count)


def _row_cents(row: dict[str, Any]) -> Decimal | None:
    return monthly_cents(row.get("price_cents"), row.get("interval_unit"), row.get("interval_count"))


def _scheduled_cents(row: dict[str, Any]) -> Decimal | None:
    return monthly_cents(row.get("scheduled_price_cents"), row.get("scheduled_interval_unit"),
                         row.get("scheduled_interval_count"))


def _summary_currency(rows: list[dict[str, Any]]) -> str:
    currencies = Counter(_text(row.get("currency")) for row in rows
                         if row["status"] in COUNTED_STATUSES and _text(row.get("currency")))
    if not currencies:
        return "USD"
    return sorted(currencies.items(), key=lambda item: (-item[1], item[0]))[0][0]


def summarize(results: pd.DataFrame, today: date, trial_window_days: int = TRIAL_WINDOW_DAYS) -> FinanceSummary:
    """The finance summary of a results table (RESULT_COLUMNS with FINANCE_COLUMNS: services/tables.py).

    `today` is the day the summary is for (the trials window starts on it; pass the API's day, not the desk's,
    when they differ). The rules are in this module's docstring."""
    missing = [column for column in REQUIRED_COLUMNS if column not in results.columns]
    if missing:
        raise ValueError(f"The results lack the columns the finance summary needs: {', '.join(missing)}.")
    rows = [{key: (None if not isinstance(value, (list, tuple)) and pd.isna(value) else value)
             for key, value in record.items()} for record in results.to_dict("records")]
    for row in rows:
        row["status"] = _text(row.get("status")) or "unknown"
    currency = _summary_currency(rows)

    plan_cents: dict[str, Decimal] = {}
    plan_counts: Counter[str] = Counter()
    plan_lost: dict[str, Decimal] = {}
    at_risk: list[tuple[AtRisk, Decimal]] = []  # each with the exact cents it puts at risk
    trials: list[TrialEnding] = []
    not_counted: list[NotCounted] = []
    total = Decimal(0)
    paying = 0
    window_end = today + timedelta(days=trial_window_days)
    for row in rows:
        organization_id, status = str(row["organization_id"]), row["status"]
        if status in NOT_COUNTED_STATUSES:
            not_counted.append(NotCounted(organization_id, status, _text(row.get("error")) or
                                          ("Not found" if status == "not found" else "The lookup failed")))
            continue
        plan = _text(row.get("plan"))
        row_currency = _text(row.get("currency"))
        if status == "trialing":
            trial_end = _moment(row.get("trial_end")) or _moment(row.get("period_end"))
            if trial_end is not None and trial_end.date() <= window_end:
                cents = _row_cents(row)
                trials.append(TrialEnding(organization_id, _text(row.get("name")), plan, trial_end,
                                          (trial_end.date() - today).days,
                                          money(cents) if cents is not None and row_currency == currency else None))
        if status not in COUNTED_STATUSES:
            continue  # counts zero
        cents = mrr_cents(status, row.get("price_cents"), row.get("interval_unit"), row.get("interval_count"))
        if cents is None:
            not_counted.append(NotCounted(organization_id, status, "The answer gave no price or billing interval "
                                                                   "for its subscription"))
            continue
        if row_currency != currency:
            billed = row_currency or "an unnamed currency"
            not_counted.append(NotCounted(organization_id, status, f"Billed in {billed}; totals are in {currency}"))
            continue
        paying += 1
        total += cents
        key = plan or UNKNOWN_PLAN
        plan_cents[key] = plan_cents.get(key, Decimal(0)) + cents
        plan_counts[key] += 1
        reasons = []
        if row.get("cancel_at_period_end"):
            reasons.append(REASON_CANCELLING)
        if status == "past_due":
            reasons.append(REASON_PAST_DUE)
        scheduled_plan = _text(row.get("scheduled_plan"))
        scheduled = _scheduled_cents(row) if scheduled_plan else None
        if scheduled_plan:
            reasons.append(REASON_DOWNGRADE)
        if not reasons:
            continue
        reason = reasons[0]
        if reason == REASON_DOWNGRADE:
            if scheduled is None:  # the change's price isn't known: listed, nothing claimed
                lost = Decimal(0)
            else:
                lost = max(Decimal(0), cents - scheduled)
            effective = _moment(row.get("scheduled_at")) or _moment(row.get("period_end"))
        else:
            lost = cents
            effective = _moment(row.get("period_end"))
        at_risk.append((AtRisk(
            organization_id, _text(row.get("name")), plan, status, reason, money(cents), money(lost), effective,
            to_plan=scheduled_plan, to_mrr=money(scheduled) if scheduled is not None else None,
            also="; ".join(reasons[1:]) or None), lost))
        plan_lost[key] = plan_lost.get(key, Decimal(0)) + lost

    lost_by_reason = {reason: Decimal(0) for reason in REASONS}
    count_by_reason: Counter[str] = Counter()
    for risk, lost in at_risk:
        lost_by_reason[risk.reason] += lost
        count_by_reason[risk.reason] += 1
    lost_total = sum(lost_by_reason.values(), Decimal(0))

    by_plan = tuple(sorted((PlanRevenue(plan, plan_counts[plan], money(cents), money(cents * 12),
                                        money(plan_lost.get(plan, Decimal(0))))
                            for plan, cents in plan_cents.items()), key=lambda item: (-item.mrr, item.plan)))
    statuses = Counter(row["status"] for row in rows)
    return FinanceSummary(
        today=today, currency=currency, organizations=len(rows), counted=len(rows) - len(not_counted),
        paying=paying, mrr=money(total), arr=money(total * 12), by_plan=by_plan, mrr_at_risk=money(lost_total),
        at_risk_by_reason=tuple((reason, count_by_reason[reason], money(lost_by_reason[reason]))
                                for reason in REASONS),
        at_risk=tuple(sorted((risk for risk, _ in at_risk),
                             key=lambda item: (-item.mrr_at_risk, item.organization_id))),
        trials_ending=tuple(sorted(trials, key=lambda item: (item.trial_end, item.organization_id))),
        status_counts=tuple(sorted(statuses.items(), key=lambda item: (-item[1], item[0]))),
        not_counted=tuple(not_counted), trial_window_days=trial_window_days)


# --- as tables: the download's sheets and the screen's lists ---------------------------------------
SHEETS = ("Summary", "By plan", "At risk", "Trials ending", "Status counts", "Not counted")
# Columns holding money (Decimal dollars): exports format them as currency.
MONEY_COLUMNS = frozenset({"amount", "mrr", "arr", "mrr_at_risk", "to_mrr", "monthly_after"})


def _naive_utc(moment: datetime | None) -> datetime | None:
    """Times in the sheets are UTC without a zone (spreadsheets hold none); their headers say UTC."""
    if moment is None:
        return None
    return pd.Timestamp(moment).tz_convert("UTC").tz_localize(None).to_pydatetime() if moment.tzinfo else moment


def summary_frames(summary: FinanceSummary) -> dict[str, pd.DataFrame]:
    """The summary as tables, one per sheet of its download (SHEETS, in order). Money is exact `Decimal`
    dollars (MONEY_COLUMNS), counts are integers, times are UTC datetimes without a zone."""
    window = summary.trial_window_days
    headline = [
        ("MRR", summary.mrr, summary.paying, "Active and past-due subscriptions; yearly prices count a twelfth"),
        ("ARR", summary.arr, summary.paying, "MRR × 12"),
        ("MRR at risk", summary.mrr_at_risk, sum(count for _, count, _ in summary.at_risk_by_reason),
         "Each subscription once, under its first reason"),
        *((f"  {reason}", amount, count, None) for reason, count, amount in summary.at_risk_by_reason),
        (f"Trials ending within {window} days", None, summary.trials_ending_count,
         f"Trialing, trial ending by {summary.today + timedelta(days=window):%Y-%m-%d}"),
        ("Organizations in the results", None, summary.organizations, None),
        ("Counted", None, summary.counted, "Revenue known (trials, canceled and the like count zero)"),
        ("Not counted", None, len(summary.not_counted), "Not found, failed, no price, or another currency"),
    ]
    frames = {
        "Summary": pd.DataFrame(
            [{"figure": figure, "amount": amount, "organizations": count, "note": note}
             for figure, amount, count, note in headline]
            + [{"figure": "As of", "amount": None, "organizations": None,
                "note": f"{summary.today:%Y-%m-%d}, amounts in {summary.currency}"}],
            columns=["figure", "amount", "organizations", "note"]),
        "By plan": pd.DataFrame(
            [{"plan": item.plan, "subscriptions": item.subscriptions, "mrr": item.mrr, "arr": item.arr,
              "share_of_mrr": float(item.mrr / summary.mrr) if summary.mrr else None,
              "mrr_at_risk": item.mrr_at_risk} for item in summary.by_plan],
            columns=["plan", "subscriptions", "mrr", "arr", "share_of_mrr", "mrr_at_risk"]),
        "At risk": pd.DataFrame(
            [{"organization_id": item.organization_id, "name": item.name, "plan": item.plan, "status": item.status,
              "reason": item.reason, "also": item.also, "mrr": item.mrr, "mrr_at_risk": item.mrr_at_risk,
              "to_plan": item.to_plan, "to_mrr": item.to_mrr, "effective_utc": _naive_utc(item.effective_at)}
             for item in summary.at_risk],
            columns=["organization_id", "name", "plan", "status", "reason", "also", "mrr", "mrr_at_risk",
                     "to_plan", "to_mrr", "effective_utc"]),
        "Trials ending": pd.DataFrame(
            [{"organization_id": item.organization_id, "name": item.name, "plan": item.plan,
              "trial_end_utc": _naive_utc(item.trial_end), "days_left": item.days_left,
              "monthly_after": item.monthly_after} for item in summary.trials_ending],
            columns=["organization_id", "name", "plan", "trial_end_utc", "days_left", "monthly_after"]),
        "Status counts": pd.DataFrame([{"status": status, "organizations": count}
                                       for status, count in summary.status_counts],
                                      columns=["status", "organizations"]),
        "Not counted": pd.DataFrame([{"organization_id": item.organization_id, "status": item.status,
                                      "reason": item.reason} for item in summary.not_counted],
                                    columns=["organization_id", "status", "reason"]),
    }
    for name in ("Summary", "Status counts", "By plan", "Trials ending"):
        for column in ("organizations", "subscriptions", "days_left"):
            if column in frames[name]:
                frames[name][column] = frames[name][column].astype("Int64")
    return frames


def summary_xlsx(summary: FinanceSummary, results: pd.DataFrame | None = None) -> bytes:
    """The summary's Excel download: its sheets (SHEETS), then the results it was computed from when given, all
    formula-neutralised (services/exports.py `xlsx_bytes`), amounts formatted in the summary's currency."""
    sheets = summary_frames(summary)
    if results is not None:
        sheets["Results"] = results
    return xlsx_bytes(sheets, currency=summary.currency)
