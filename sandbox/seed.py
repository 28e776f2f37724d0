"""Demo data written on a sandbox's first start: organizations in every subscription state.

Deterministic (a fixed random seed) so that screenshots, docs and tests name the same organizations.
"""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import datetime, timedelta

from .billing import add_interval
from .catalog import plan_named, price_of
from .store import Store, iso, new_id

# Each state and how many organizations are seeded in it (org_abc123 is added to "active").
STATE_COUNTS: dict[str, int] = {
    "none": 8, "trialing": 8, "active": 30, "active_canceling": 7, "active_downgrade_scheduled": 5,
    "past_due": 6, "canceled": 6, "incomplete": 4,
}

_FIRST = ["Northwind", "Bluebird", "Cobalt", "Juniper", "Lumen", "Harbor", "Summit", "Orchid", "Atlas",
          "Kestrel", "Meridian", "Quarry", "Redwood", "Silverline", "Tidal", "Vantage", "Willow", "Zephyr",
          "Beacon", "Cedar", "Driftwood", "Ember", "Foxglove", "Granite"]
_SECOND = ["Analytics", "Labs", "Logistics", "Health", "Studios", "Robotics", "Foods", "Energy", "Media",
           "Capital", "Software", "Systems", "Dental", "Outdoors", "Learning", "Freight"]
_CITIES = [("San Francisco", "CA", "94107", "US"), ("Austin", "TX", "78701", "US"), ("New York", "NY", "10001", "US"),
           ("London", None, "EC1A 1BB", "GB"), ("Berlin", None, "10115", "DE"), ("Toronto", "ON", "M5V 2T6", "CA"),
           ("Sydney", "NSW", "2000", "AU"), ("Amsterdam", None, "1012 AB", "NL"), ("Paris", None, "75002", "FR")]
_STREETS = ["Market Street", "Congress Avenue", "Broadway", "Old Street", "Torstrasse", "King Street West",
            "George Street", "Damrak", "Rue du Sentier"]
_CARDS = [("visa", "4242"), ("mastercard", "4444"), ("amex", "8431"), ("visa", "1881"), ("mastercard", "5100")]
_PAID_PLANS = ["Starter", "Growth", "Scale", "Expansion"]
# Markup, a link, and a bare web address (which markdown would turn into a link even with its characters escaped).
MARKUP_NAME = "<b>Bold</b> **Stars** $5 [x](javascript:alert(1)) https://evil.example/pay"


def seed(store: Store, organizations: int = 74, random_seed: int = 20261122) -> None:
    """Seeds once per database; `organizations` beyond the state table are added as active ones."""
    if store.is_seeded():
        return
    rng = random.Random(random_seed)
    now = store.now()
    states = [state for state, count in STATE_COUNTS.items() for _ in range(count)]
    states += ["active"] * max(0, organizations - len(states) - 1)
    rng.shuffle(states)
    used_ids: set[str] = {"org_abc123", "org_markup"}
    with store.transaction() as conn:
        _seed_organization(conn, rng, now, "org_abc123", "Acme Analytics", "active", plan="Growth", interval="month",
                           card=("visa", "4242"))
        # Customer-typed data is not markup: the console must show this name exactly as written.
        _seed_organization(conn, rng, now, "org_markup", MARKUP_NAME, "active", plan="Starter", interval="month",
                           card=("visa", "4242"))
        for index, state in enumerate(states):
            organization_id = _fresh_id(rng, used_ids)
            name = f"{_FIRST[index % len(_FIRST)]} {_SECOND[(index * 7 + index // len(_FIRST)) % len(_SECOND)]}"
            if index >= len(_FIRST) * len(_SECOND) // 4:
                name += f" {index}"
            _seed_organization(conn, rng, now, organization_id, name, state)
        conn.execute("INSERT INTO meta (key, value) VALUES ('seeded', ?)", (iso(now),))


def _fresh_id(rng: random.Random, used: set[str]) -> str:
    while True:
        candidate = "org_" + "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(6))
        if candidate not in used:
            used.add(candidate)
            return candidate


def _seed_organization(conn: sqlite3.Connection, rng: random.Random, now: datetime, organization_id: str,
                       name: str, state: str, plan: str | None = None, interval: str | None = None,
                       card: tuple[str, str] | None = None) -> None:
    created = now - timedelta(days=rng.randint(40, 900))
    conn.execute("INSERT INTO organizations VALUES (?,?,?)", (organization_id, name, iso(created)))
    city, region, postal, country = rng.choice(_CITIES)
    address = {"line1": f"{rng.randint(1, 999)} {_STREETS[_CITIES.index((city, region, postal, country))]}",
               "line2": rng.choice([None, None, f"Suite {rng.randint(100, 900)}"]), "city": city,
               "state": region, "postalCode": postal, "country": country}
    slug = "".join(ch for ch in name.lower() if ch.isalnum())[:20]
    if card is None and state not in ("none", "trialing", "incomplete"):
        card = ("visa", "0341") if state == "past_due" else rng.choice(_CARDS)
    customer_id = new_id("cus_", 14)
    conn.execute("INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?)",
                 (customer_id, organization_id, f"billing@{slug}.example.com", name, json.dumps(address),
                  card[0] if card else None, card[1] if card else None,
                  rng.randint(1, 12) if card else None, now.year + rng.randint(1, 4) if card else None))
    if state == "none":
        return
    if state == "trialing":
        plan_obj, price = plan_named("Free Trial"), price_of("Free Trial", "month")
        start = now - timedelta(days=rng.randint(0, 12))
        end = start + timedelta(days=14)
        _subscription(conn, organization_id, customer_id, plan_obj.product_id, price.price_id, "trialing",
                      start, end, trial_end=end)
        return
    plan = plan or rng.choice(_PAID_PLANS)
    interval = interval or ("year" if rng.random() < 0.3 else "month")
    plan_obj, price = plan_named(plan), price_of(plan, interval)
    period_days = 365 if interval == "year" else 30
    start = now - timedelta(days=rng.randint(1, period_days - 3), hours=rng.randint(0, 23))
    end = add_interval(start, interval)
    status = {"past_due": "past_due", "canceled": "canceled", "incomplete": "incomplete"}.get(state, "active")
    scheduled: tuple[str, str] | None = None
    if state == "active_downgrade_scheduled":
        if plan == "Starter":
            plan_obj, price = plan_named("Growth"), price_of("Growth", interval)
        lower = _PAID_PLANS[max(0, _PAID_PLANS.index(plan_obj.name) - 1)]
        scheduled = (plan_named(lower).product_id, price_of(lower, interval).price_id)
    canceled_at = iso(start) if state == "canceled" else None
    subscription_id = _subscription(conn, organization_id, customer_id, plan_obj.product_id, price.price_id, status,
                                    start, end, cancel_at_period_end=state == "active_canceling",
                                    canceled_at=canceled_at, scheduled=scheduled)
    invoice_status = {"past_due": "open", "incomplete": "open"}.get(state, "paid")
    for months_back in range(rng.randint(1, 4)):
        moment = start - timedelta(days=30 * months_back)
        conn.execute("INSERT INTO invoices VALUES (?,?,?,?,?,?,?,?)",
                     (new_id("in_"), organization_id, subscription_id, price.unit_amount, "usd",
                      invoice_status if months_back == 0 else "paid",
                      f"{plan_obj.name} ({interval}ly)", iso(moment)))


def _subscription(conn: sqlite3.Connection, organization_id: str, customer_id: str, product_id: str, price_id: str,
                  status: str, start: datetime, end: datetime, trial_end: datetime | None = None,
                  cancel_at_period_end: bool = False, canceled_at: str | None = None,
                  scheduled: tuple[str, str] | None = None) -> str:
    subscription_id = new_id("sub_")
    conn.execute(
        "INSERT INTO subscriptions (id, organization_id, customer_id, product_id, price_id, status, "
        "current_period_start, current_period_end, cancel_at_period_end, canceled_at, trial_end, "
        "scheduled_product_id, scheduled_price_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (subscription_id, organization_id, customer_id, product_id, price_id, status, iso(start), iso(end),
         int(cancel_at_period_end), canceled_at, iso(trial_end) if trial_end else None,
         scheduled[0] if scheduled else None, scheduled[1] if scheduled else None, iso(start)))
    return subscription_id
