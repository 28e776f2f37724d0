"""How values read as plain text: money, prices, days, cards, and the notices a person must not miss.
Pure functions, shared by pages and by services that word a consequence (services/plan_change.py).
Markdown safety and badge colours are the UI's (ui/present.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from .payments.models import CustomerInfo, cents_to_dollars

if TYPE_CHECKING:  # a type only: formatting stays below the directory
    from .directory import DirectoryEntry


def money(amount: Decimal | float | int | None, currency: str = "usd") -> str:
    if amount is None:
        return "—"
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency.lower(), "")
    text = f"{symbol}{Decimal(str(amount)):,.2f}"
    return text if symbol else f"{text} {currency.upper()}"


def price_with_interval(amount: Decimal | None, interval: str | None, currency: str = "usd") -> str:
    if amount is None:
        return "Custom pricing"
    return f"{money(amount, currency)} per {interval}" if interval else money(amount, currency)


def day(moment: datetime | None) -> str:
    return moment.strftime("%d %b %Y") if moment else "—"


def card(customer: CustomerInfo) -> str:
    if not customer.card_last4:
        return "No card on file"
    brand = (customer.card_brand or "card").replace("_", " ").title()
    return f"{brand} •••• {customer.card_last4}"


def customer_notices(customer: CustomerInfo) -> list[tuple[str, str]]:
    """(kind, sentence) notices a person must not miss: cancelling, a scheduled downgrade, a failed payment."""
    subscription = customer.subscription
    notices: list[tuple[str, str]] = []
    if subscription is None:
        return notices
    if subscription.cancel_at_period_end:
        notices.append(("warning", f"Cancels at period end: the subscription ends on "
                                   f"{day(subscription.current_period_end)} and will not renew."))
    if subscription.scheduled_change:
        change = subscription.scheduled_change
        notices.append(("info", f"Downgrade scheduled: moves to {change.plan_name or change.product_id} "
                                f"({price_with_interval(cents_to_dollars(change.unit_amount), change.interval)}) on "
                                f"{day(change.effective_at or subscription.current_period_end)}."))
    if subscription.status == "past_due":
        notices.append(("error", "The last payment failed. Send the customer a portal link to update their card."))
    if subscription.status == "trialing":
        notices.append(("info", f"Free trial ends on {day(subscription.trial_end or subscription.current_period_end)}."))
    return notices



def ago(moment: datetime | None, now: datetime) -> str:
    """How long ago, as people say it: "just now", "12 min ago", "3 h ago", "5 days ago"."""
    if moment is None:
        return "never"
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86_400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86_400)
    return f"{days} day{'s' if days != 1 else ''} ago"


def search_result_line(entry: DirectoryEntry, now: datetime) -> str:
    """One search result's details under its name: e-mail, plan, status, MRR and how fresh it is."""
    status = "Gone" if entry.gone_at else ("Cancelling" if entry.cancel_at_period_end else
                                           entry.status.replace("_", " ").capitalize())
    mrr = money(entry.mrr_cents / 100, entry.currency or "usd") + " MRR" if entry.mrr_cents else None
    parts = [entry.email, entry.plan, status, mrr, f"{entry.organization_id}", f"read {ago(entry.last_read_at, now)}"]
    return " · ".join(part for part in parts if part)
