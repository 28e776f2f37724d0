"""What a plan change will do, said before it is made: upgrade now and prorated, or downgrade at period end.

The rule mirrors the Payments API's: a higher tier, or the same plan moving from monthly to yearly, is an
upgrade that takes effect at once with a prorated charge; anything lower is a downgrade at the end of the
period. The prorated figure here is an estimate for the person confirming; the API's answer is the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from .formatting import day, money
from .payments.models import CustomerInfo, Plan, PlanCatalog, Price, cents_to_dollars


@dataclass(frozen=True)
class PlanOption:
    plan: Plan
    price: Price

    @property
    def label(self) -> str:
        amount = money(self.price.amount, self.price.currency) if self.price.amount is not None else "custom"
        return f"{self.plan.name} · {amount} per {self.price.period or 'term'}"


@dataclass(frozen=True)
class ChangePreview:
    kind: str  # "upgrade" or "downgrade"
    effective: str  # "immediately" or "period_end"
    effective_at: datetime | None
    estimated_charge: Decimal | None  # dollars now, for an upgrade
    target: PlanOption

    @property
    def consequence(self) -> str:
        if self.kind == "upgrade":
            charge = (f" The customer is charged about {money(self.estimated_charge)} now, prorated for the rest "
                      "of the period." if self.estimated_charge is not None else " The charge is prorated.")
            return f"Upgrade to {self.target.label}: takes effect immediately.{charge}"
        when = day(self.effective_at) if self.effective_at else "the end of the period"
        return (f"Downgrade to {self.target.label}: takes effect at the end of the current period ({when}). "
                "Nothing is charged now; the current plan stays until then.")


def change_options(catalog: PlanCatalog, customer: CustomerInfo) -> list[PlanOption]:
    """Plans a live subscription can move to: priced, not custom, not the trial, not the current price."""
    current_price = customer.subscription.price_id if customer.subscription else None
    return [PlanOption(plan, price) for plan in catalog.plans if not plan.custom and not plan.trial_days
            for price in plan.prices if price.price_id != current_price and price.unit_amount is not None]


def checkout_options(catalog: PlanCatalog) -> list[PlanOption]:
    return [PlanOption(plan, price) for plan in catalog.plans if not plan.custom for price in plan.prices]


def preview_change(catalog: PlanCatalog, customer: CustomerInfo, target: PlanOption,
                   now: datetime | None = None) -> ChangePreview:
    subscription = customer.subscription
    current = catalog.find_price(subscription.price_id if subscription else None)
    now = now or datetime.now(timezone.utc)
    trialing = subscription is not None and subscription.status == "trialing"
    if current is None or trialing or _is_upgrade(catalog, current, (target.plan, target.price)):
        return ChangePreview("upgrade", "immediately", now, _estimate(customer, current, target.price, now), target)
    return ChangePreview("downgrade", "period_end", subscription.current_period_end if subscription else None,
                         Decimal("0.00"), target)


def _is_upgrade(catalog: PlanCatalog, current: tuple[Plan, Price], target: tuple[Plan, Price]) -> bool:
    (current_plan, current_price), (target_plan, target_price) = current, target
    current_rank, target_rank = catalog.rank(current_plan), catalog.rank(target_plan)
    if current_rank != target_rank:
        return target_rank > current_rank
    return current_price.interval == "month" and target_price.interval == "year"


def _estimate(customer: CustomerInfo, current: tuple[Plan, Price] | None, target: Price,
              now: datetime) -> Decimal | None:
    subscription = customer.subscription
    if target.unit_amount is None:
        return None
    if (current is None or subscription is None or subscription.status == "trialing"
            or subscription.current_period_start is None or subscription.current_period_end is None):
        return cents_to_dollars(target.unit_amount)
    start, end = subscription.current_period_start, subscription.current_period_end
    length = (end - start).total_seconds()
    unused = max(0.0, min(1.0, (end - now).total_seconds() / length)) if length > 0 else 0.0
    credit = round((current[1].unit_amount or 0) * unused)
    if current[1].interval == target.interval:
        return cents_to_dollars(round(target.unit_amount * unused) - credit)
    return cents_to_dollars(target.unit_amount - credit)

