"""Plans and customers as pandas DataFrames: money as float dollars, times as UTC datetimes.

A customer row also carries its amounts exactly (integer cents with the billing unit and count), so sums such as
the finance summary's MRR (services/finance.py) are computed without float drift.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from .payments.models import CustomerInfo, Plan, PlanCatalog, Price, ScheduledChange, Subscription

PLAN_COLUMNS = ["plan", "interval", "months", "price", "currency", "credits", "overage_rate", "seats", "features",
                "current", "custom", "product_id", "price_id"]
CUSTOMER_COLUMNS = ["organization_id", "name", "status", "plan", "price", "interval", "period_end",
                    "cancel_at_period_end", "scheduled_plan", "card_brand", "card_last4", "email", "address",
                    "customer_id"]
# What a finance summary needs beyond the columns above (services/finance.py): the amounts exactly (cents, with
# the billing unit and count), the monthly equivalent, the trial's end and a scheduled change's terms.
FINANCE_COLUMNS = ["currency", "price_cents", "interval_unit", "interval_count", "monthly_amount", "trial_end",
                   "scheduled_plan", "scheduled_price", "scheduled_price_cents", "scheduled_interval",
                   "scheduled_interval_unit", "scheduled_interval_count", "scheduled_monthly_amount", "scheduled_at"]
_MONEY_FLOAT_COLUMNS = ("price", "monthly_amount", "scheduled_price", "scheduled_monthly_amount")
_INTEGER_COLUMNS = ("price_cents", "interval_count", "scheduled_price_cents", "scheduled_interval_count")
_TIME_COLUMNS = ("period_end", "trial_end", "scheduled_at")
# Months one interval covers: a yearly price counts a twelfth a month, a weekly one 52 twelfths.
MONTHS_PER_UNIT: dict[str, Decimal] = {"month": Decimal(1), "year": Decimal(12), "week": Decimal(12) / 52,
                                       "day": Decimal(12) / 365}


def current_plan(catalog: PlanCatalog, customer: CustomerInfo | None = None) -> tuple[Plan | None, Price | None]:
    """The organization's current plan, and its exact price when the customer's live subscription names one
    (so one row is marked, not both intervals of the plan). Without that price: the plan the plans answer
    marks, else the customer's active product (not every API marks the current plan in its plans answer)."""
    subscription = customer.subscription if customer else None
    found = catalog.find_price(subscription.price_id) if subscription and subscription.is_live else None
    if found is not None:
        return found
    return catalog.plan(catalog.active_product_id or (customer.active_product_id if customer else None)), None


def plans_frame(catalog: PlanCatalog, customer: CustomerInfo | None = None) -> pd.DataFrame:
    """One row per plan and price (a custom plan without prices keeps one row with no price); `current` marks
    the customer's price, or every price of the current plan when only the plan is known."""
    current, current_price = current_plan(catalog, customer)
    rows = []
    for plan in catalog.plans:
        for price in plan.prices or (None,):
            rows.append({
                "plan": plan.name,
                "interval": price.period if price else None,  # "3 months" is not "month"
                "months": float(price.months) if price and price.months is not None else None,  # one payment covers
                "price": float(price.amount) if price and price.amount is not None else None,
                "currency": (price.currency if price else "usd").upper(),
                "credits": plan.credits,
                "overage_rate": float(plan.overage_rate) if plan.overage_rate is not None else None,
                "seats": plan.seats,
                "features": " · ".join(plan.features),
                "current": price == current_price if current_price else plan == current,
                "custom": plan.custom,
                "product_id": plan.product_id,
                "price_id": price.price_id if price else None,
            })
    frame = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    for column in ("credits", "seats"):
        frame[column] = frame[column].astype("Int64")
    for column in ("months", "price", "overage_rate"):
        frame[column] = frame[column].astype("Float64")
    return frame


def monthly_costs(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Each priced plan's cost per month, whatever it bills by (a yearly price counts a twelfth, a quarterly
    one a third), for the Plans page's chart; None when no plan has a price."""
    priced = frame.dropna(subset=["price"])
    priced = priced[priced.price > 0]
    if priced.empty:
        return None
    months = priced.months.fillna(1.0)
    billing = [("Monthly" if count == 1 else "Yearly (per month)" if count == 12 else f"Every {period} (per month)")
               for count, period in zip(months, priced.interval)]
    return pd.DataFrame({"plan": priced.plan, "billing": billing, "per_month": priced.price / months,
                         "credits": priced.credits}).reset_index(drop=True)


def plan_name(customer: CustomerInfo, catalog: PlanCatalog | None = None) -> str | None:
    """The plan's name, from the subscription or resolved from its product in the catalog."""
    subscription = customer.subscription
    if subscription and subscription.plan_name:
        return subscription.plan_name
    product_id = (subscription.product_id if subscription else None) or customer.active_product_id
    plan = catalog.plan(product_id) if catalog and product_id else None
    return plan.name if plan else product_id


def monthly_cents(cents: object, unit: object, count: object = 1) -> Decimal | None:
    """An amount billed every `count` `unit`s as cents per month, exactly (a yearly 179,000 is 14,916.66…);
    None when the amount or the unit is unknown (a one-off or custom price)."""
    if cents is None or pd.isna(cents) or not isinstance(unit, str) or unit not in MONTHS_PER_UNIT:
        return None
    periods = 1 if count is None or pd.isna(count) else int(count)
    if periods < 1:
        return None
    return Decimal(int(cents)) / (MONTHS_PER_UNIT[unit] * periods)


def _dollars(cents: Decimal | int | None) -> float | None:
    """For display columns only (sums use the cents): dollars rounded to the cent."""
    return None if cents is None else float((Decimal(cents) / 100).quantize(Decimal("0.01")))


def _period(unit: str | None, count: int) -> str | None:
    return unit if unit is None or count == 1 else f"{count} {unit}s"


def finance_record(subscription: Subscription | None) -> dict[str, object]:
    """A subscription's FINANCE_COLUMNS: plain values (int cents, float dollars for display, text, datetimes)."""
    if subscription is None:
        return dict.fromkeys(FINANCE_COLUMNS)
    scheduled: ScheduledChange | None = subscription.scheduled_change
    # A scheduled change that names no terms keeps the current ones (a plan change at the same interval).
    next_unit = next_count = None
    if scheduled is not None:
        next_unit = scheduled.interval or subscription.interval
        next_count = scheduled.interval_count if scheduled.interval else subscription.interval_count
    return {
        "currency": (subscription.currency or "usd").upper(),
        "price_cents": subscription.unit_amount,
        "interval_unit": subscription.interval,
        "interval_count": subscription.interval_count if subscription.interval else None,
        "monthly_amount": _dollars(monthly_cents(subscription.unit_amount, subscription.interval,
                                                 subscription.interval_count)),
        "trial_end": subscription.trial_end,
        "scheduled_plan": (scheduled.plan_name or scheduled.product_id) if scheduled else None,
        "scheduled_price": _dollars(scheduled.unit_amount) if scheduled else None,
        "scheduled_price_cents": scheduled.unit_amount if scheduled else None,
        "scheduled_interval": _period(next_unit, next_count or 1) if scheduled else None,
        "scheduled_interval_unit": next_unit,
        "scheduled_interval_count": next_count if next_unit else None,
        "scheduled_monthly_amount": _dollars(monthly_cents(scheduled.unit_amount, next_unit, next_count))
        if scheduled else None,
        "scheduled_at": scheduled.effective_at if scheduled else None,
    }


def customer_record(customer: CustomerInfo, catalog: PlanCatalog | None = None) -> dict[str, object]:
    """One customer as a row: the shape every customer table in the console shares (CUSTOMER_COLUMNS), plus
    FINANCE_COLUMNS for a table that asks for them."""
    subscription = customer.subscription
    scheduled = subscription.scheduled_change if subscription else None
    return {**finance_record(subscription),
        "organization_id": customer.organization_id,
        "name": customer.display_name,
        "status": customer.status,
        "plan": plan_name(customer, catalog),
        "price": float(subscription.amount) if subscription and subscription.amount is not None else None,
        "interval": subscription.period if subscription else None,
        "period_end": subscription.current_period_end if subscription else None,
        "cancel_at_period_end": bool(subscription and subscription.cancel_at_period_end),
        "scheduled_plan": (scheduled.plan_name or scheduled.product_id) if scheduled else None,
        "card_brand": customer.card_brand,
        "card_last4": customer.card_last4,
        "email": customer.email,
        "address": customer.address.one_line() if customer.address else None,
        "customer_id": customer.customer_id,
    }


def typed_customer_frame(records: list[dict[str, object]], columns: list[str]) -> pd.DataFrame:
    """The records as a frame of `columns`: money as Float64 dollars, cents and counts as Int64, times as UTC."""
    frame = pd.DataFrame(records, columns=columns)
    for column in _MONEY_FLOAT_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("Float64")
    for column in _INTEGER_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    for column in _TIME_COLUMNS:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame

