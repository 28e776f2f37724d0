"""The four-eyes policy: which writes wait for a second person, above what amount, who may approve, how long.

A write is told apart by what it does to revenue (`gate`): a cancellation loses the plan's monthly revenue, a
downgrade the difference between the two plans' monthly equivalents, an upgrade nothing. Checkout and portal
links and processing a paid checkout hand something to the person who asks, so they are never held back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Mapping

from ..auth.roles import Role
from ..payments.models import CustomerInfo, PlanCatalog, Price
from ..plan_change import PlanOption, preview_change

CANCEL, DOWNGRADE, UPGRADE = "cancel", "downgrade", "upgrade"
KINDS = (CANCEL, DOWNGRADE, UPGRADE)  # the writes the policy can hold back
_MONTHS = {"day": Decimal(12) / Decimal(365), "week": Decimal(12) / Decimal(52), "month": Decimal(1),
           "year": Decimal(12)}


class PolicyError(ValueError):
    """The configured policy can't be used; the message names the setting."""


@dataclass(frozen=True)
class ApprovalPolicy:
    kinds: frozenset[str] = frozenset({CANCEL, DOWNGRADE})
    threshold_cents: int | None = None  # only writes putting at least this much monthly revenue at stake
    approver_roles: frozenset[Role] = frozenset({Role.FINANCE, Role.ADMIN})
    expiry: timedelta = timedelta(hours=24)

    def holds(self, kind: str, at_stake_cents: int | None) -> bool:
        """Whether a write of this kind, putting this much monthly revenue at stake, waits for a second person.
        An amount that can't be worked out (a custom price) is held back when a threshold is set: the safe side."""
        if kind not in self.kinds:
            return False
        return self.threshold_cents is None or at_stake_cents is None or at_stake_cents >= self.threshold_cents

    def may_approve(self, role: Role) -> bool:
        return role in self.approver_roles

    @property
    def approvers_text(self) -> str:
        return " or ".join(sorted(role.value for role in self.approver_roles))

    @classmethod
    def from_settings(cls, environ: Mapping[str, str], section: Mapping[str, Any]) -> ApprovalPolicy:
        """BILLING_DESK_APPROVAL_ACTIONS ("cancel,downgrade"; "none" turns approvals off),
        BILLING_DESK_APPROVAL_THRESHOLD (dollars a month), BILLING_DESK_APPROVERS ("finance,admin"),
        BILLING_DESK_APPROVAL_HOURS (24); or the [approvals] section of secrets: actions, threshold, approvers,
        expiry_hours."""
        def setting(variable: str, key: str) -> Any:
            return environ.get(variable) if environ.get(variable) not in (None, "") else section.get(key)

        kinds = _names(setting("BILLING_DESK_APPROVAL_ACTIONS", "actions"), {CANCEL, DOWNGRADE})
        unknown = kinds - set(KINDS)
        if unknown:
            raise PolicyError(f"BILLING_DESK_APPROVAL_ACTIONS may name {', '.join(KINDS)} (or none), not "
                              f"{', '.join(sorted(unknown))}: links and processing a paid checkout can't wait for a "
                              "second person.")
        roles = _names(setting("BILLING_DESK_APPROVERS", "approvers"), {Role.FINANCE.value, Role.ADMIN.value})
        try:
            approver_roles = frozenset(Role(name) for name in roles)
        except ValueError:
            raise PolicyError("BILLING_DESK_APPROVERS may name finance and admin.") from None
        if Role.SUPPORT in approver_roles or not approver_roles:
            raise PolicyError("BILLING_DESK_APPROVERS may name finance and admin (support makes no money writes).")
        threshold = setting("BILLING_DESK_APPROVAL_THRESHOLD", "threshold")
        hours = setting("BILLING_DESK_APPROVAL_HOURS", "expiry_hours")
        try:
            threshold_cents = None if threshold in (None, "") else int(Decimal(str(threshold)) * 100)
            expiry = timedelta(hours=float(hours)) if hours not in (None, "") else timedelta(hours=24)
        except (ArithmeticError, ValueError):
            raise PolicyError("BILLING_DESK_APPROVAL_THRESHOLD is dollars a month and BILLING_DESK_APPROVAL_HOURS "
                              "hours, each a number.") from None
        if threshold_cents is not None and threshold_cents < 0 or not timedelta(minutes=1) <= expiry <= timedelta(days=30):
            raise PolicyError("The approval threshold can't be negative, and a request must expire after one "
                              "minute to 30 days (BILLING_DESK_APPROVAL_HOURS).")
        return cls(frozenset(kinds), threshold_cents, approver_roles, expiry)


def _names(value: Any, default: set[str]) -> set[str]:
    if value is None:
        return set(default)
    items = value if isinstance(value, (list, tuple)) else str(value).replace(";", ",").split(",")
    names = {str(item).strip().lower() for item in items if str(item).strip()}
    return set() if names <= {"none", "off"} else names


def monthly_cents(price: Price | None) -> int | None:
    """A price's monthly equivalent in cents (a yearly price counts a twelfth); None when unknown."""
    if price is None or price.unit_amount is None or price.interval not in _MONTHS:
        return None
    return int((Decimal(price.unit_amount) / (_MONTHS[price.interval] * max(1, price.interval_count)))
               .to_integral_value())


@dataclass(frozen=True)
class Gate:
    """What a write is, for the policy: its kind, the monthly revenue it puts at stake, and whether it waits."""

    kind: str
    at_stake_cents: int | None
    needs_approval: bool
    snapshot: dict[str, Any] = field(default_factory=dict)  # the customer as it was: a change makes a request stale


def snapshot_of(customer: CustomerInfo) -> dict[str, Any]:
    subscription = customer.subscription
    scheduled = subscription.scheduled_change if subscription else None
    return {"status": customer.status,
            "priceId": subscription.price_id if subscription else None,
            "productId": subscription.product_id if subscription else None,
            "cancelAtPeriodEnd": bool(subscription.cancel_at_period_end) if subscription else False,
            "scheduledPriceId": getattr(scheduled, "price_id", None)}


def gate(policy: ApprovalPolicy, customer: CustomerInfo, catalog: PlanCatalog | None, action: str,
         price_id: str | None = None) -> Gate:
    """Classifies a cancel ("cancel subscription") or a plan change ("change plan" to `price_id`) of this
    customer; a plan change needs the catalog to tell an upgrade from a downgrade."""
    subscription = customer.subscription
    current = catalog.find_price(subscription.price_id) if catalog and subscription else None
    current_monthly = monthly_cents(current[1]) if current else (
        monthly_cents(Price(subscription.price_id or "", subscription.product_id or "", subscription.interval,
                            subscription.unit_amount, subscription.currency, subscription.interval_count))
        if subscription else None)
    if action == "cancel subscription":
        kind, at_stake = CANCEL, current_monthly
    else:
        target = catalog.find_price(price_id) if catalog and price_id else None
        target_monthly = monthly_cents(target[1]) if target else None
        trialing = subscription is not None and subscription.status == "trialing"
        if target is None:  # not in the catalog: the desk refuses the change itself; held back meanwhile
            kind = DOWNGRADE
        elif current is None and not trialing:
            # A price the catalog doesn't list (a legacy or custom contract) has no tier to compare: what it
            # bills decides, and an amount that can't be told is the safe side, a downgrade.
            lower = current_monthly is None or target_monthly is None or target_monthly < current_monthly
            kind = DOWNGRADE if lower else UPGRADE
        else:
            preview = preview_change(catalog, customer, PlanOption(*target))  # type: ignore[arg-type]
            kind = UPGRADE if preview.kind == "upgrade" else DOWNGRADE
        at_stake = (0 if kind == UPGRADE else None if current_monthly is None or target_monthly is None
                    else max(0, current_monthly - target_monthly))
    return Gate(kind, at_stake, policy.holds(kind, at_stake), snapshot_of(customer))
