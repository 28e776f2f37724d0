"""What the Payments API does, as the sandbox models it: checkout, process, plan changes, cancel, clock.

Functions take the store and return the JSON bodies the API answers with; failures raise `ApiError`.
Rules (documented in docs/payments-api.md):
- an upgrade (higher tier, or the same plan from monthly to yearly) takes effect at once and is
  prorated on the unused part of the current period;
- a downgrade (lower tier, or yearly to monthly) is scheduled for the end of the current period;
- cancel sets the subscription to end at the end of the current period.
"""

from __future__ import annotations

import calendar
import json
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from .catalog import PLANS, PLANS_BY_PRODUCT, PRICES, CatalogPlan, CatalogPrice
from .errors import ApiError, not_found_organization
from .store import Store, iso, new_id, parse_iso

LIVE_STATUSES = ("active", "trialing", "past_due")
CHECKOUT_TTL = timedelta(hours=24)
PORTAL_TTL = timedelta(minutes=30)
CURRENCY = "usd"


# --- time ---------------------------------------------------------------------------------------
def add_interval(moment: datetime, interval: str) -> datetime:
    months = 12 if interval == "year" else 1
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


# --- serialisation ----------------------------------------------------------------------------------
def plan_json(plan: CatalogPlan, current: bool = False) -> dict[str, Any]:
    return {
        "productId": plan.product_id,
        "name": plan.name,
        "description": plan.description,
        "tier": plan.tier,
        "features": list(plan.features),
        "credits": plan.credits,
        "overageRate": plan.overage_rate,
        "seats": plan.seats,
        "trialDays": plan.trial_days,
        "custom": plan.custom,
        "current": current,
        "prices": [
            {"priceId": price.price_id, "productId": plan.product_id, "interval": price.interval,
             "intervalCount": 1, "unitAmount": price.unit_amount, "currency": CURRENCY}
            for price in plan.prices
        ],
    }


def subscription_json(row: sqlite3.Row) -> dict[str, Any]:
    plan, price = PRICES[row["price_id"]]
    scheduled = None
    if row["scheduled_price_id"]:
        scheduled_plan, scheduled_price = PRICES[row["scheduled_price_id"]]
        scheduled = {"productId": scheduled_plan.product_id, "priceId": scheduled_price.price_id,
                     "planName": scheduled_plan.name, "interval": scheduled_price.interval,
                     "unitAmount": scheduled_price.unit_amount, "effectiveAt": row["current_period_end"]}
    return {
        "id": row["id"],
        "status": row["status"],
        "productId": plan.product_id,
        "priceId": price.price_id,
        "planName": plan.name,
        "interval": price.interval,
        "unitAmount": price.unit_amount,
        "currency": CURRENCY,
        "currentPeriodStart": row["current_period_start"],
        "currentPeriodEnd": row["current_period_end"],
        "cancelAtPeriodEnd": bool(row["cancel_at_period_end"]),
        "canceledAt": row["canceled_at"],
        "trialEnd": row["trial_end"],
        "scheduledChange": scheduled,
        "createdAt": row["created_at"],
    }


def _address_json(raw: str) -> dict[str, Any]:
    return json.loads(raw)


def set_profile(store: Store, organization_id: str, organization_name: str | None, name: str | None,
                email: str | None, address: dict[str, str | None] | None) -> None:
    """What a customer typed about themselves changes (in a real portal they can): any text at all."""
    require_organization(store, organization_id)
    with store.transaction() as conn:
        if organization_name is not None:
            conn.execute("UPDATE organizations SET name = ? WHERE id = ?", (organization_name, organization_id))
        for column, value in (("name", name), ("email", email),
                              ("address", json.dumps(address) if address is not None else None)):
            if value is not None:
                conn.execute(f"UPDATE customers SET {column} = ? WHERE organization_id = ?", (value, organization_id))


# --- lookups ----------------------------------------------------------------------------------------
def require_organization(store: Store, organization_id: str) -> sqlite3.Row:
    row = store.organization(organization_id)
    if row is None:
        raise not_found_organization(organization_id)
    return row


def require_price(product_id: str, price_id: str) -> tuple[CatalogPlan, CatalogPrice]:
    plan = PLANS_BY_PRODUCT.get(product_id)
    if plan is None:
        raise ApiError(422, "product_not_found", f"No product with id '{product_id}'.", {"field": "productId"})
    if price_id not in PRICES:
        raise ApiError(422, "price_not_found", f"No price with id '{price_id}'.", {"field": "priceId"})
    price_plan, price = PRICES[price_id]
    if price_plan.product_id != product_id:
        raise ApiError(422, "price_product_mismatch",
                       f"Price '{price_id}' belongs to another product than '{product_id}'.",
                       {"field": "priceId", "productId": price_plan.product_id})
    return plan, price


def plans(store: Store, organization_id: str) -> list[dict[str, Any]]:
    """The catalog as a JSON array; the organization's live plan is the one with `current: true`."""
    require_organization(store, organization_id)
    subscription = store.latest_subscription(organization_id)
    active = subscription["product_id"] if subscription and subscription["status"] in LIVE_STATUSES else None
    return [plan_json(plan, current=plan.product_id == active) for plan in PLANS]


def customer_info(store: Store, organization_id: str) -> dict[str, Any]:
    organization = require_organization(store, organization_id)
    customer = store.customer(organization_id)
    subscription = store.latest_subscription(organization_id)
    live = subscription is not None and subscription["status"] in LIVE_STATUSES
    return {
        "organizationId": organization_id,
        "organizationName": organization["name"],
        "customerId": customer["id"] if customer else None,
        "name": customer["name"] if customer else None,
        "email": customer["email"] if customer else None,
        "address": _address_json(customer["address"]) if customer else None,
        "defaultCardBrand": customer["card_brand"] if customer else None,
        "defaultCardLast4": customer["card_last4"] if customer else None,
        "activeProductId": subscription["product_id"] if live else None,
        "subscriptionStatus": subscription["status"] if subscription else "none",
        "subscription": subscription_json(subscription) if subscription else None,
    }


# --- checkout ---------------------------------------------------------------------------------------
def create_checkout(store: Store, conn: sqlite3.Connection, organization_id: str, product_id: str,
                    price_id: str, success_url: str | None, cancel_url: str | None, public_base: str,
                    idempotency_key: str | None) -> dict[str, Any]:
    require_organization(store, organization_id)
    plan, price = require_price(product_id, price_id)
    if plan.custom:
        raise ApiError(422, "plan_requires_sales", f"{plan.name} is sold by contract, not by checkout.",
                       {"field": "productId"})
    current = store.latest_subscription(organization_id)
    if current is not None and current["status"] in ("active", "past_due"):
        raise ApiError(422, "subscription_already_active",
                       "This organization already has a subscription; change its plan with "
                       "subscription-update instead.", {"subscriptionId": current["id"],
                                                        "status": current["status"]})
    now = store.now()
    session_id = new_id("cs_test_", 40)
    conn.execute("INSERT INTO checkout_sessions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                 (session_id, organization_id, product_id, price_id, success_url, cancel_url, "open", "unpaid",
                  iso(now + CHECKOUT_TTL), None, iso(now)))
    store.record_mutation(conn, "checkout", organization_id, idempotency_key)
    return {"url": f"{public_base}/sandbox/checkout/{session_id}", "expiresAt": iso(now + CHECKOUT_TTL)}


def checkout_session(store: Store, session_id: str) -> sqlite3.Row | None:
    return store.one("SELECT * FROM checkout_sessions WHERE id = ?", (session_id,))


def live_checkout_session(store: Store, session_id: str) -> sqlite3.Row:
    """The session as the hosted page sees it, expiring it when the clock has passed its end."""
    session = checkout_session(store, session_id)
    if session is None:
        raise ApiError(404, "checkout_session_not_found", "No checkout session with that id.", {"field": "secret"})
    if session["status"] == "open" and parse_iso(session["expires_at"]) <= store.now():
        with store.transaction() as conn:
            conn.execute("UPDATE checkout_sessions SET status = 'expired' WHERE id = ?", (session_id,))
        session = checkout_session(store, session_id)
        assert session is not None
    return session


# Test cards, as in Stripe's test mode: what each number does when paid on the hosted page.
TEST_CARDS: dict[str, tuple[str, str | None]] = {
    "4242424242424242": ("visa", None),
    "5555555555554444": ("mastercard", None),
    "4000000000000002": ("visa", "Your card was declined."),
    "4000000000009995": ("visa", "Your card has insufficient funds."),
}


def pay_checkout(store: Store, session_id: str, card_number: str, expiry: str, cvc: str) -> str:
    """Pays an open session with a test card; returns the redirect target. Raises ApiError(402) on decline."""
    session = live_checkout_session(store, session_id)
    if session["status"] != "open":
        raise ApiError(409, f"checkout_session_{session['status']}", f"This checkout session is {session['status']}.")
    digits = "".join(ch for ch in card_number if ch.isdigit())
    if digits not in TEST_CARDS:
        raise ApiError(402, "card_not_accepted", "Use a sandbox test card, such as 4242 4242 4242 4242.")
    if not _valid_expiry(expiry, store.now()):
        raise ApiError(402, "invalid_expiry", "Enter a future expiry date as MM / YY.")
    if not (cvc.isdigit() and len(cvc) in (3, 4)):
        raise ApiError(402, "invalid_cvc", "Enter the 3 or 4 digit security code.")
    brand, decline = TEST_CARDS[digits]
    if decline:
        raise ApiError(402, "card_declined", decline)
    month, year = _parse_expiry(expiry)
    with store.transaction() as conn:
        conn.execute("UPDATE checkout_sessions SET status = 'complete', payment_status = 'paid' WHERE id = ?",
                     (session_id,))
        conn.execute("UPDATE customers SET card_brand = ?, card_last4 = ?, card_exp_month = ?, card_exp_year = ? "
                     "WHERE organization_id = ?", (brand, digits[-4:], month, year, session["organization_id"]))
    return session["success_url"] or ""


def _parse_expiry(expiry: str) -> tuple[int, int]:
    month_text, _, year_text = expiry.replace(" ", "").partition("/")
    month, year = int(month_text), int(year_text)
    return month, (2000 + year if year < 100 else year)


def _valid_expiry(expiry: str, now: datetime) -> bool:
    try:
        month, year = _parse_expiry(expiry)
    except ValueError:
        return False
    return 1 <= month <= 12 and (year, month) >= (now.year, now.month)


def process_checkout(store: Store, conn: sqlite3.Connection, session_id: str,
                     idempotency_key: str | None) -> dict[str, Any]:
    session = checkout_session(store, session_id)
    if session is None:
        raise ApiError(404, "checkout_session_not_found", "No checkout session with that id.", {"field": "secret"})
    organization_id = session["organization_id"]
    if session["subscription_id"]:
        row = store.one("SELECT * FROM subscriptions WHERE id = ?", (session["subscription_id"],))
        assert row is not None
        return _process_result(session, row, already_processed=True)
    now = store.now()
    if session["status"] == "open" and parse_iso(session["expires_at"]) <= now:
        conn.execute("UPDATE checkout_sessions SET status = 'expired' WHERE id = ?", (session_id,))
        raise ApiError(422, "checkout_session_expired", "This checkout session expired before it was paid.",
                       {"field": "secret"})
    if session["status"] == "expired":
        raise ApiError(422, "checkout_session_expired", "This checkout session expired before it was paid.",
                       {"field": "secret"})
    if session["payment_status"] != "paid":
        raise ApiError(422, "checkout_not_paid", "The customer has not paid this checkout session yet.",
                       {"field": "secret", "status": session["status"]})
    current = store.latest_subscription(organization_id)
    if current is not None and current["status"] in ("active", "past_due"):
        raise ApiError(422, "subscription_already_active",
                       "This organization already has an active subscription.", {"subscriptionId": current["id"]})
    if current is not None and current["status"] == "trialing":
        conn.execute("UPDATE subscriptions SET status = 'canceled', canceled_at = ? WHERE id = ?",
                     (iso(now), current["id"]))
    plan, price = PRICES[session["price_id"]]
    customer = store.customer(organization_id)
    assert customer is not None
    subscription_id = new_id("sub_")
    status = "trialing" if plan.trial_days else "active"
    period_end = now + timedelta(days=plan.trial_days) if plan.trial_days else add_interval(now, price.interval)
    conn.execute(
        "INSERT INTO subscriptions (id, organization_id, customer_id, product_id, price_id, status, "
        "current_period_start, current_period_end, trial_end, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (subscription_id, organization_id, customer["id"], plan.product_id, price.price_id, status, iso(now),
         iso(period_end), iso(period_end) if plan.trial_days else None, iso(now)))
    if price.unit_amount:
        _invoice(conn, organization_id, subscription_id, price.unit_amount, "paid",
                 f"{plan.name} ({price.interval}ly)", now)
    conn.execute("UPDATE checkout_sessions SET subscription_id = ? WHERE id = ?", (subscription_id, session_id))
    store.record_mutation(conn, "process", organization_id, idempotency_key)
    row = conn.execute("SELECT * FROM subscriptions WHERE id = ?", (subscription_id,)).fetchone()
    return _process_result(session, row, already_processed=False)


def _process_result(session: sqlite3.Row, subscription: sqlite3.Row, already_processed: bool) -> dict[str, Any]:
    return {"organizationId": session["organization_id"], "checkoutSessionId": session["id"],
            "subscriptionId": subscription["id"], "status": subscription["status"],
            "alreadyProcessed": already_processed, "subscription": subscription_json(subscription)}


def _invoice(conn: sqlite3.Connection, organization_id: str, subscription_id: str | None, amount: int,
             status: str, description: str, when: datetime) -> None:
    conn.execute("INSERT INTO invoices VALUES (?,?,?,?,?,?,?,?)",
                 (new_id("in_"), organization_id, subscription_id, amount, CURRENCY, status, description, iso(when)))


# --- plan changes and cancel --------------------------------------------------------------------------
def _require_live_subscription(store: Store, organization_id: str) -> sqlite3.Row:
    require_organization(store, organization_id)
    subscription = store.latest_subscription(organization_id)
    if subscription is None or subscription["status"] not in LIVE_STATUSES:
        status = subscription["status"] if subscription else "none"
        raise ApiError(422, "no_active_subscription",
                       f"This organization has no active subscription (status: {status}).",
                       {"status": status})
    return subscription


def is_upgrade(current: tuple[CatalogPlan, CatalogPrice], target: tuple[CatalogPlan, CatalogPrice]) -> bool:
    (current_plan, current_price), (target_plan, target_price) = current, target
    if target_plan.tier != current_plan.tier:
        return target_plan.tier > current_plan.tier
    return current_price.interval == "month" and target_price.interval == "year"


def update_subscription(store: Store, conn: sqlite3.Connection, organization_id: str, product_id: str,
                        price_id: str, idempotency_key: str | None) -> dict[str, Any]:
    subscription = _require_live_subscription(store, organization_id)
    target = require_price(product_id, price_id)
    target_plan, target_price = target
    if subscription["status"] == "past_due":
        raise ApiError(422, "subscription_past_due",
                       "The last payment failed; the customer must update their card before a plan change.")
    if subscription["cancel_at_period_end"]:
        raise ApiError(422, "subscription_canceling",
                       "This subscription is set to cancel at the end of its period; it can't be changed.")
    if target_plan.custom:
        raise ApiError(422, "plan_requires_sales", f"{target_plan.name} is sold by contract.", {"field": "productId"})
    if target_plan.trial_days:
        raise ApiError(422, "plan_not_available", "An existing subscription can't move to the free trial.",
                       {"field": "productId"})
    if price_id == subscription["price_id"]:
        raise ApiError(422, "no_change", "The subscription is already on this price.", {"field": "priceId"})
    current = PRICES[subscription["price_id"]]
    now = store.now()
    if subscription["status"] == "trialing" or is_upgrade(current, target):
        customer = store.customer(organization_id)
        if customer is None or not customer["card_last4"]:
            raise ApiError(422, "payment_method_required",
                           "The customer has no card on file; send them a checkout link instead.")
        proration, start, end = _proration(subscription, current[1], target_price, now)
        conn.execute("UPDATE subscriptions SET product_id = ?, price_id = ?, status = 'active', trial_end = NULL, "
                     "current_period_start = ?, current_period_end = ?, scheduled_product_id = NULL, "
                     "scheduled_price_id = NULL WHERE id = ?",
                     (product_id, price_id, iso(start), iso(end), subscription["id"]))
        if proration > 0:
            _invoice(conn, organization_id, subscription["id"], proration, "paid",
                     f"Upgrade to {target_plan.name} ({target_price.interval}ly), prorated", now)
        change, effective, effective_at = "upgrade", "immediately", now
    else:
        proration = 0
        conn.execute("UPDATE subscriptions SET scheduled_product_id = ?, scheduled_price_id = ? WHERE id = ?",
                     (product_id, price_id, subscription["id"]))
        change, effective, effective_at = "downgrade", "period_end", parse_iso(subscription["current_period_end"])
    store.record_mutation(conn, "update", organization_id, idempotency_key)
    row = conn.execute("SELECT * FROM subscriptions WHERE id = ?", (subscription["id"],)).fetchone()
    return {"organizationId": organization_id, "subscriptionId": subscription["id"], "change": change,
            "effective": effective, "effectiveAt": iso(effective_at), "prorationAmount": proration,
            "currency": CURRENCY, "subscription": subscription_json(row)}


def _proration(subscription: sqlite3.Row, current: CatalogPrice, target: CatalogPrice,
               now: datetime) -> tuple[int, datetime, datetime]:
    """Amount charged now for an immediate change, and the period that follows it.

    The unused share of the current period is credited at the old price; the same share is charged at
    the new price, or, when the interval changes (or a trial ends), a full new period starts now.
    """
    start, end = parse_iso(subscription["current_period_start"]), parse_iso(subscription["current_period_end"])
    length = (end - start).total_seconds()
    unused = max(0.0, min(1.0, (end - now).total_seconds() / length)) if length > 0 else 0.0
    credit = round(current.unit_amount * unused) if subscription["status"] != "trialing" else 0
    if current.interval == target.interval and subscription["status"] != "trialing":
        return round(target.unit_amount * unused) - credit, start, end
    return target.unit_amount - credit, now, add_interval(now, target.interval)


def cancel_subscription(store: Store, conn: sqlite3.Connection, organization_id: str,
                        idempotency_key: str | None) -> dict[str, Any]:
    subscription = _require_live_subscription(store, organization_id)
    if subscription["cancel_at_period_end"]:
        raise ApiError(422, "subscription_already_canceling",
                       "This subscription is already set to cancel at the end of its period.")
    conn.execute("UPDATE subscriptions SET cancel_at_period_end = 1, scheduled_product_id = NULL, "
                 "scheduled_price_id = NULL WHERE id = ?", (subscription["id"],))
    store.record_mutation(conn, "cancel", organization_id, idempotency_key)
    return {}


# --- portal -----------------------------------------------------------------------------------------
def create_portal(store: Store, conn: sqlite3.Connection, organization_id: str, public_base: str,
                  idempotency_key: str | None) -> dict[str, Any]:
    require_organization(store, organization_id)
    if store.customer(organization_id) is None:
        raise ApiError(422, "customer_not_found", "This organization has no billing customer yet.")
    now = store.now()
    session_id = new_id("bps_", 24)
    conn.execute("INSERT INTO portal_sessions VALUES (?,?,?,?)",
                 (session_id, organization_id, iso(now + PORTAL_TTL), iso(now)))
    store.record_mutation(conn, "portal", organization_id, idempotency_key)
    return {"url": f"{public_base}/sandbox/portal/{session_id}", "expiresAt": iso(now + PORTAL_TTL)}


def live_portal_session(store: Store, session_id: str) -> sqlite3.Row:
    session = store.one("SELECT * FROM portal_sessions WHERE id = ?", (session_id,))
    if session is None:
        raise ApiError(404, "portal_session_not_found", "This portal link is not valid.")
    if parse_iso(session["expires_at"]) <= store.now():
        raise ApiError(410, "portal_session_expired", "This portal link has expired. Ask for a new one.")
    return session


def portal_replace_card(store: Store, session_id: str, card_number: str, expiry: str) -> str:
    session = live_portal_session(store, session_id)
    digits = "".join(ch for ch in card_number if ch.isdigit())
    if digits not in TEST_CARDS or TEST_CARDS[digits][1]:
        raise ApiError(402, "card_not_accepted", "That card was not accepted. Try 4242 4242 4242 4242.")
    if not _valid_expiry(expiry, store.now()):
        raise ApiError(402, "invalid_expiry", "Enter a future expiry date as MM / YY.")
    month, year = _parse_expiry(expiry)
    organization_id = session["organization_id"]
    with store.transaction() as conn:
        conn.execute("UPDATE customers SET card_brand = ?, card_last4 = ?, card_exp_month = ?, card_exp_year = ? "
                     "WHERE organization_id = ?", (TEST_CARDS[digits][0], digits[-4:], month, year, organization_id))
        subscription = store.latest_subscription(organization_id)
        if subscription is not None and subscription["status"] == "past_due":
            # A new card settles the open invoice, as Stripe's automatic retry would.
            conn.execute("UPDATE invoices SET status = 'paid' WHERE organization_id = ? AND status = 'open'",
                         (organization_id,))
            conn.execute("UPDATE subscriptions SET status = 'active' WHERE id = ?", (subscription["id"],))
        store.record_mutation(conn, "portal_card", organization_id, None)
    return "Your card was updated."


def portal_cancel(store: Store, session_id: str) -> str:
    session = live_portal_session(store, session_id)
    with store.transaction() as conn:
        cancel_subscription(store, conn, session["organization_id"], None)
    return "Your subscription will end at the end of the current period."


# --- the test clock ---------------------------------------------------------------------------------
def advance_clock(store: Store, seconds: float) -> dict[str, Any]:
    """Moves sandbox time forward and runs what falls due: renewals, scheduled changes, cancellations."""
    if seconds < 0:
        raise ApiError(400, "invalid_field", "The clock only moves forward.", {"field": "seconds"})
    with store.transaction() as conn:
        store.set_clock_offset(conn, store.clock_offset() + timedelta(seconds=seconds))
        now = store.now()
        changed = _run_due_billing(store, conn, now)
        conn.execute("UPDATE checkout_sessions SET status = 'expired' WHERE status = 'open' AND expires_at <= ?",
                     (iso(now),))
    return {"now": iso(now), "subscriptionsChanged": changed}


def _run_due_billing(store: Store, conn: sqlite3.Connection, now: datetime) -> int:
    changed = 0
    due = conn.execute("SELECT * FROM subscriptions WHERE status IN ('active','trialing','past_due') "
                       "AND current_period_end <= ?", (iso(now),)).fetchall()
    for row in due:
        changed += 1
        subscription = dict(row)
        while parse_iso(subscription["current_period_end"]) <= now:
            period_end = parse_iso(subscription["current_period_end"])
            if subscription["cancel_at_period_end"] or subscription["status"] == "trialing":
                conn.execute("UPDATE subscriptions SET status = 'canceled', canceled_at = ?, "
                             "cancel_at_period_end = 0 WHERE id = ?",
                             (iso(period_end), subscription["id"]))
                break
            if subscription["scheduled_price_id"]:
                subscription["product_id"] = subscription["scheduled_product_id"]
                subscription["price_id"] = subscription["scheduled_price_id"]
                subscription["scheduled_product_id"] = subscription["scheduled_price_id"] = None
            plan, price = PRICES[subscription["price_id"]]
            has_card = conn.execute("SELECT card_last4 FROM customers WHERE organization_id = ?",
                                    (subscription["organization_id"],)).fetchone()["card_last4"]
            paid = bool(has_card) and subscription["status"] != "past_due"
            subscription["status"] = "active" if paid else "past_due"
            subscription["current_period_start"] = iso(period_end)
            subscription["current_period_end"] = iso(add_interval(period_end, price.interval))
            _invoice(conn, subscription["organization_id"], subscription["id"], price.unit_amount,
                     "paid" if paid else "open", f"{plan.name} ({price.interval}ly) renewal", period_end)
            conn.execute("UPDATE subscriptions SET product_id = ?, price_id = ?, status = ?, "
                         "current_period_start = ?, current_period_end = ?, scheduled_product_id = NULL, "
                         "scheduled_price_id = NULL WHERE id = ?",
                         (subscription["product_id"], subscription["price_id"], subscription["status"],
                          subscription["current_period_start"], subscription["current_period_end"],
                          subscription["id"]))
    return changed
