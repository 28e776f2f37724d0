"""The plans an organization may subscribe to: products, their prices and features."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from ..errors import UnexpectedResponseError

from .reading import Billed, MONTHS_PER_INTERVAL, Reader, read_terms, unwrap


@dataclass(frozen=True)
class Price(Billed):
    price_id: str
    product_id: str
    interval: str | None  # "month", "year" (Stripe also has "week", "day"), or None for a one-off/custom price
    unit_amount: int | None  # cents
    currency: str = "usd"
    interval_count: int = 1  # billed every `interval_count` intervals: 3 × "month" is quarterly

    @property
    def months(self) -> Decimal | None:
        """Months one payment covers (12 for yearly, 3 for quarterly), to compare prices per month."""
        per = MONTHS_PER_INTERVAL.get(self.interval or "")
        return None if per is None else per * self.interval_count


@dataclass(frozen=True)
class Plan:
    product_id: str
    name: str
    description: str = ""
    features: tuple[str, ...] = ()
    credits: int | None = None
    overage_rate: Decimal | None = None
    seats: int | None = None
    trial_days: int = 0
    custom: bool = False
    tier: int | None = None
    prices: tuple[Price, ...] = ()
    current: bool = False  # the plans answer marks it as the organization's current plan


@dataclass(frozen=True)
class PlanCatalog:
    organization_id: str
    active_product_id: str | None  # as the plans answer marks it; None when it doesn't say
    plans: tuple[Plan, ...]

    def plan(self, product_id: str | None) -> Plan | None:
        return next((plan for plan in self.plans if plan.product_id == product_id), None)

    def find_price(self, price_id: str | None) -> tuple[Plan, Price] | None:
        for plan in self.plans:
            for price in plan.prices:
                if price.price_id == price_id:
                    return plan, price
        return None

    def rank(self, plan: Plan) -> int:
        """Where a plan stands in the catalog: its tier when the API gives one, else its order."""
        return plan.tier if plan.tier is not None else self.plans.index(plan)


def parse_plans(data: Any, organization_id: str, operation: str = "list plans") -> PlanCatalog:
    data = unwrap(data, "plans response", operation)
    if isinstance(data, list):  # a bare array of plans
        data = {"plans": data}
    reader = Reader(data, "plans response", operation)
    plans = tuple(_parse_plan(plan) for plan in reader.readers("plans", "data", "products", required=True))
    # The current plan: a wrapper's field (older answers), else the plan flagged `current`.
    marked = reader.text("activeProductId", "currentProductId") or next(
        (plan.product_id for plan in plans if plan.current), None)
    return PlanCatalog(reader.text("organizationId") or organization_id, marked, plans)


def _parse_plan(reader: Reader) -> Plan:
    reader = reader.falling_back_to(reader.expanded("metadata"))  # Stripe: a product's own facts, as text
    product_id = reader.required_text("productId", "id")
    prices = tuple(_parse_price(price, product_id) for price in reader.readers("prices", "pricing"))
    return Plan(product_id=product_id, name=reader.text("name", "productName") or product_id,
                description=reader.text("description") or "",
                features=tuple(_feature(item, f"{reader.what}.features[{index}]", reader.operation)
                               for index, item in enumerate(reader.objects("features", "marketingFeatures"))),
                credits=reader.integer("credits", "monthlyCredits"), overage_rate=reader.decimal("overageRate"),
                seats=reader.integer("seats", "maxSeats"),
                trial_days=reader.integer("trialDays", "trialPeriodDays") or 0,
                custom=reader.boolean("custom", "isCustom", "contactSales"), tier=reader.integer("tier"),
                # Not Stripe's `active`: that says a product is for sale, not that it is this customer's.
                current=reader.boolean("current", "isCurrent"), prices=prices)


def _feature(item: Any, what: str, operation: str) -> str:
    """A feature as text: given as text, or as an object naming it (Stripe's `marketing_features`)."""
    if isinstance(item, Mapping):
        return Reader(item, what, operation).required_text("name")
    if isinstance(item, list) or item is None:
        raise UnexpectedResponseError(f"{what} should be text or an object with a name", code="unexpected_shape",
                                      operation=operation)
    return str(item)


def _parse_price(reader: Reader, product_id: str) -> Price:
    terms = read_terms(reader)
    return Price(price_id=reader.required_text("priceId", "id"),
                 product_id=reader.reference("productId", "product") or product_id,
                 interval=terms.interval, interval_count=terms.interval_count or 1, unit_amount=terms.unit_amount,
                 currency=terms.currency or "usd")
