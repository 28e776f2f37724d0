"""Plans and customers as pandas DataFrames: money as float dollars, times as UTC datetimes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from .payments.models import CustomerInfo, PlanCatalog

PLAN_COLUMNS = ["plan", "interval", "price", "currency", "credits", "overage_rate", "seats", "features",
                "current", "custom", "product_id", "price_id"]
CUSTOMER_COLUMNS = ["organization_id", "name", "status", "plan", "price", "interval", "period_end",
                    "cancel_at_period_end", "scheduled_plan", "card_brand", "card_last4", "email", "customer_id"]


def plans_frame(catalog: PlanCatalog) -> pd.DataFrame:
    """One row per plan and price (a custom plan without prices keeps one row with no price)."""
    rows = []
    for plan in catalog.plans:
        for price in plan.prices or (None,):
            rows.append({
                "plan": plan.name,
                "interval": price.interval if price else None,
                "price": float(price.amount) if price and price.amount is not None else None,
                "currency": (price.currency if price else "usd").upper(),
                "credits": plan.credits,
                "overage_rate": float(plan.overage_rate) if plan.overage_rate is not None else None,
                "seats": plan.seats,
                "features": " · ".join(plan.features),
                "current": plan.product_id == catalog.active_product_id,
                "custom": plan.custom,
                "product_id": plan.product_id,
                "price_id": price.price_id if price else None,
            })
    frame = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    for column in ("credits", "seats"):
        frame[column] = frame[column].astype("Int64")
    for column in ("price", "overage_rate"):
        frame[column] = frame[column].astype("Float64")
    return frame


def monthly_cost_chart(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The Plans page's chart: each priced plan's cost per month, billed monthly or yearly, as data and a
    Vega-Lite spec (a plain spec: Altair would validate it against its schema on every page run, 17 ms each).
    None when no plan has a price."""
    priced = frame.dropna(subset=["price"])
    priced = priced[priced.price > 0]
    if priced.empty:
        return None
    yearly = priced.interval == "year"
    data = pd.DataFrame({
        "plan": priced.plan,
        "billing": yearly.map({True: "Yearly (per month)", False: "Monthly"}),
        "per_month": priced.price.where(~yearly, priced.price / 12),
        "credits": priced.credits,
    })
    spec = {
        "mark": {"type": "bar"},
        "height": 260,
        "encoding": {
            "x": {"field": "plan", "type": "nominal", "sort": list(dict.fromkeys(data.plan)), "title": None,
                  "axis": {"labelAngle": 0}},
            "xOffset": {"field": "billing", "type": "nominal"},
            "y": {"field": "per_month", "type": "quantitative", "title": "Cost per month ($)"},
            "color": {"field": "billing", "type": "nominal", "title": None, "legend": {"orient": "top"}},
            "tooltip": [
                {"field": "plan", "type": "nominal", "title": "Plan"},
                {"field": "billing", "type": "nominal", "title": "Billing"},
                {"field": "per_month", "type": "quantitative", "title": "Per month", "format": "$,.2f"},
                {"field": "credits", "type": "quantitative", "title": "Credits", "format": ","},
            ],
        },
    }
    return data.reset_index(drop=True), spec


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
        "interval": subscription.interval if subscription else None,
        "period_end": subscription.current_period_end if subscription else None,
        "cancel_at_period_end": bool(subscription and subscription.cancel_at_period_end),
        "scheduled_plan": (scheduled.plan_name or scheduled.product_id) if scheduled else None,
        "card_brand": customer.card_brand,
        "card_last4": customer.card_last4,
        "email": customer.email,
        "customer_id": customer.customer_id,
    }


def typed_customer_frame(records: list[dict[str, object]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=columns)
    frame["price"] = frame["price"].astype("Float64")
    frame["period_end"] = pd.to_datetime(frame["period_end"], utc=True)
    return frame


def customers_frame(customers: Iterable[CustomerInfo], catalog: PlanCatalog | None = None) -> pd.DataFrame:
    return typed_customer_frame([customer_record(customer, catalog) for customer in customers], CUSTOMER_COLUMNS)
