"""The public plan catalog the sandbox serves (the figures of DEVELOPERS.md).

Ids are fixed so that tests, docs and bookmarks stay valid across fresh databases.
Amounts are in cents, as Stripe stores them. Credits are per month.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CatalogPrice:
    price_id: str
    interval: str  # "month" or "year"
    unit_amount: int  # cents


@dataclass(frozen=True)
class CatalogPlan:
    product_id: str
    name: str
    tier: int  # order used to tell an upgrade from a downgrade
    description: str
    credits: int | None
    overage_rate: float | None  # dollars per credit beyond the allowance
    seats: int | None
    features: tuple[str, ...]
    prices: tuple[CatalogPrice, ...] = field(default_factory=tuple)
    trial_days: int = 0
    custom: bool = False


def _plan(key: str, name: str, tier: int, monthly: int | None, yearly: int | None, **rest: object) -> CatalogPlan:
    prices: list[CatalogPrice] = []
    if monthly is not None:
        prices.append(CatalogPrice(f"price_{key}Monthly01", "month", monthly * 100))
    if yearly is not None:
        prices.append(CatalogPrice(f"price_{key}Yearly001", "year", yearly * 100))
    return CatalogPlan(product_id=f"prod_{key}0001", name=name, tier=tier, prices=tuple(prices), **rest)  # type: ignore[arg-type]


PLANS: tuple[CatalogPlan, ...] = (
    _plan("FreeTrial", "Free Trial", 0, 0, None, description="Try every feature for 14 days.",
          credits=500, overage_rate=None, seats=1, trial_days=14,
          features=("All core features", "500 credits", "1 seat", "Community support")),
    _plan("Starter", "Starter", 1, 179, 1790, description="For small teams getting started.",
          credits=5_000, overage_rate=0.04, seats=3,
          features=("5,000 credits per month", "3 seats", "Email support")),
    _plan("Growth", "Growth", 2, 399, 3990, description="For growing teams that need more volume.",
          credits=15_000, overage_rate=0.035, seats=10,
          features=("15,000 credits per month", "10 seats", "Priority email support", "Integrations")),
    _plan("Scale", "Scale", 3, 699, 6990, description="For teams running at scale.",
          credits=30_000, overage_rate=0.03, seats=25,
          features=("30,000 credits per month", "25 seats", "Chat support", "SSO")),
    _plan("Expansion", "Expansion", 4, 999, 9990, description="For organizations expanding across teams.",
          credits=50_000, overage_rate=0.025, seats=50,
          features=("50,000 credits per month", "50 seats", "Dedicated success manager", "SSO", "Audit exports")),
    _plan("Enterprise", "Enterprise", 5, None, None, description="Custom volume, terms and support.",
          credits=None, overage_rate=None, seats=None, custom=True,
          features=("Custom credits", "Unlimited seats", "SLA", "Contact sales")),
)

PLANS_BY_PRODUCT: dict[str, CatalogPlan] = {plan.product_id: plan for plan in PLANS}
PRICES: dict[str, tuple[CatalogPlan, CatalogPrice]] = {
    price.price_id: (plan, price) for plan in PLANS for price in plan.prices
}


def plan_named(name: str) -> CatalogPlan:
    return next(plan for plan in PLANS if plan.name == name)


def price_of(name: str, interval: str) -> CatalogPrice:
    return next(price for price in plan_named(name).prices if price.interval == interval)
