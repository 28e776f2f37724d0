"""Plans and customers as pandas DataFrames: money as float dollars, times as UTC datetimes."""

from __future__ import annotations


import pandas as pd

from .payments.models import CustomerInfo, Plan, PlanCatalog, Price

PLAN_COLUMNS = ["plan", "interval", "months", "price", "currency", "credits", "overage_rate", "seats", "features",
                "current", "custom", "product_id", "price_id"]
CUSTOMER_COLUMNS = ["organization_id", "name", "status", "plan", "price", "interval", "period_end",
                    "cancel_at_period_end", "scheduled_plan", "card_brand", "card_last4", "email", "address",
                    "customer_id"]


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


def customer_record(customer: CustomerInfo, catalog: PlanCatalog | None = None) -> dict[str, object]:
    """One customer as a row: the shape every customer table in the console shares."""
    subscription = customer.subscription
    scheduled = subscription.scheduled_change if subscription else None
    return {
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
    frame = pd.DataFrame(records, columns=columns)
    frame["price"] = frame["price"].astype("Float64")
    frame["period_end"] = pd.to_datetime(frame["period_end"], utc=True)
    return frame

