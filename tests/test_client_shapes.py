"""The client reads any plausible answer: the sandbox's two dialects over real HTTP, one state served both
ways, must read as the same typed results; hand-written JSON (through `responses`) covers shapes no server
here produces."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

import sandbox.__main__
from sandbox import RunningSandbox, SandboxSettings, start_sandbox
from sandbox.control_client import SandboxControl
from sandbox.settings import DIALECTS
from services.payments.client import PaymentsClient
from services.payments.errors import UnexpectedResponseError
from services.payments.models import PlanCatalog
from services.tables import current_plan, plan_name, plans_frame

MONTHLY = {"Starter": Decimal("179.00"), "Growth": Decimal("399.00"), "Scale": Decimal("699.00"),
           "Expansion": Decimal("999.00")}  # DEVELOPERS.md's catalog; yearly is ten months' price


# --- both dialects over HTTP ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningSandbox]]:
    """One database served in each dialect (two keys, so idempotency records stay apart)."""
    db = tmp_path_factory.mktemp("twins") / "sandbox.sqlite3"
    running = {dialect: start_sandbox(SandboxSettings(db_path=db, dialect=dialect)) for dialect in DIALECTS}
    yield running
    for server in running.values():
        server.stop()


@pytest.fixture(scope="module")
def clients(twins: dict[str, RunningSandbox]) -> Iterator[dict[str, PaymentsClient]]:
    made = {dialect: PaymentsClient(server.base_url, server.api_key, timeout=(2.0, 5.0))
            for dialect, server in twins.items()}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(scope="module")
def control(twins: dict[str, RunningSandbox]) -> SandboxControl:
    return SandboxControl(twins["camel"].root_url, twins["camel"].api_key)


def _unmarked(catalog: PlanCatalog) -> tuple[Any, ...]:
    return tuple(dataclasses.replace(plan, current=False) for plan in catalog.plans)


def _raw_plans(server: RunningSandbox) -> Any:
    return requests.get(f"{server.base_url}/payment/subscription-plans", params={"organizationId": "org_abc123"},
                        headers={"X-API-Key": server.api_key}, timeout=5).json()


def test_plans_are_an_array_marked_current_or_stripes_list_unmarked(twins: dict[str, RunningSandbox]) -> None:
    camel, stripe = _raw_plans(twins["camel"]), _raw_plans(twins["stripe"])
    assert isinstance(camel, list) and [plan["name"] for plan in camel if plan["current"]] == ["Growth"]
    assert stripe["object"] == "list" and "current" not in stripe["data"][0]
    price = stripe["data"][1]["prices"]["data"][1]
    assert price["recurring"] == {"interval": "year", "interval_count": 1} and "unitAmount" not in price
    assert stripe["data"][1]["marketing_features"][0] == {"name": "5,000 credits per month"}


def test_plans_read_the_same_in_both_dialects(clients: dict[str, PaymentsClient]) -> None:
    camel, stripe = (clients[dialect].list_plans("org_abc123") for dialect in DIALECTS)
    assert _unmarked(camel) == _unmarked(stripe)
    assert camel.active_product_id == "prod_Growth0001" and stripe.active_product_id is None  # no marker
    for plan in stripe.plans[1:5]:
        monthly, yearly = plan.prices
        assert (monthly.interval, monthly.interval_count, monthly.amount) == ("month", 1, MONTHLY[plan.name])
        assert (yearly.interval, yearly.period, yearly.amount) == ("year", "year", MONTHLY[plan.name] * 10)
        assert plan.features and all(isinstance(feature, str) for feature in plan.features)
        assert plan.credits and plan.seats and plan.overage_rate and plan.tier
    assert stripe.plans[0].trial_days == 14 and stripe.plans[-1].custom and stripe.plans[-1].prices == ()
    assert stripe.plans[2].features == ("15,000 credits per month", "10 seats", "Priority email support",
                                        "Integrations")


def test_the_current_plan_comes_from_the_customer_when_the_plans_do_not_say(
        clients: dict[str, PaymentsClient]) -> None:
    for dialect in DIALECTS:
        client = clients[dialect]
        catalog, customer = client.list_plans("org_abc123"), client.get_customer("org_abc123")
        plan, price = current_plan(catalog, customer)
        assert plan and plan.name == "Growth" and price and price.price_id == "price_GrowthMonthly01", dialect
        frame = plans_frame(catalog, customer)
        assert list(frame[frame.current].price_id) == ["price_GrowthMonthly01"], dialect
    stripe_catalog = clients["stripe"].list_plans("org_abc123")
    assert not plans_frame(stripe_catalog).current.any()  # nothing to go on without the customer


def test_customers_in_every_state_read_the_same_in_both_dialects(clients: dict[str, PaymentsClient],
                                                                 control: SandboxControl) -> None:
    organizations = control.organizations()
    chosen = {"org_abc123", "org_markup"}
    for status in ("none", "trialing", "active", "past_due", "canceled", "incomplete"):
        chosen.add(next(row["id"] for row in organizations if (row["status"] or "none") == status))
    chosen.add(next(row["id"] for row in organizations if row["canceling"]))
    chosen.add(next(row["id"] for row in organizations if row["status"] == "active"  # a downgrade scheduled
                    and (found := clients["camel"].get_customer(row["id"]).subscription) and found.scheduled_change))
    for organization_id in sorted(chosen):
        camel, stripe = (clients[dialect].get_customer(organization_id) for dialect in DIALECTS)
        assert camel == stripe, organization_id
    growth = clients["stripe"].get_customer("org_abc123")
    subscription = growth.subscription
    assert subscription and (subscription.plan_name, subscription.amount, subscription.interval) == (
        "Growth", Decimal("399.00"), "month")
    assert subscription.price_id == "price_GrowthMonthly01" and subscription.product_id == "prod_Growth0001"
    assert subscription.current_period_end and subscription.current_period_end.tzinfo == timezone.utc
    assert (growth.organization_name, growth.card_brand, growth.card_last4) == ("Acme Analytics", "visa", "4242")
    assert growth.customer_id and growth.customer_id.startswith("cus_")
    assert growth.address and growth.address.postal_code == "94107"


def test_writes_read_the_same_in_both_dialects(clients: dict[str, PaymentsClient], control: SandboxControl) -> None:
    stripe, camel = clients["stripe"], clients["camel"]
    organization_id = [row["id"] for row in control.organizations("none")][-1]
    link = stripe.create_checkout(organization_id, "price_StarterMonthly01", "prod_Starter0001")
    assert link.checkout_session_id and link.expires_at and link.expires_at > datetime.now(timezone.utc)
    assert control.pay(link.url).status_code == 303
    processed = stripe.process_checkout(link.checkout_session_id)
    assert processed.subscription and processed.subscription == camel.get_customer(organization_id).subscription
    assert processed.status == "active" and processed.subscription_id == processed.subscription.id
    assert not processed.already_processed
    upgrade = stripe.update_subscription(organization_id, "price_ScaleYearly001", "prod_Scale0001")
    assert (upgrade.change, upgrade.effective) == ("upgrade", "immediately") and upgrade.proration
    assert upgrade.subscription and upgrade.subscription == camel.get_customer(organization_id).subscription
    assert (upgrade.subscription.interval, upgrade.subscription.plan_name) == ("year", "Scale")
    downgrade = stripe.update_subscription(organization_id, "price_GrowthYearly001", "prod_Growth0001")
    assert downgrade.subscription and downgrade.subscription.scheduled_change
    scheduled = downgrade.subscription.scheduled_change
    assert (scheduled.plan_name, scheduled.price_id, scheduled.interval) == ("Growth", "price_GrowthYearly001", "year")
    assert downgrade.effective_at == scheduled.effective_at == downgrade.subscription.current_period_end
    stripe.cancel_subscription(organization_id)
    assert stripe.get_customer(organization_id) == camel.get_customer(organization_id)
    assert stripe.create_portal(organization_id).url.startswith(clients["stripe"].base_url.removesuffix("/api/v1"))


def test_the_command_line_and_its_environment_choose_the_dialect(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    served: list[Any] = []
    monkeypatch.setattr(sandbox.__main__.uvicorn, "run", lambda app, **options: served.append(app))
    monkeypatch.setenv("SANDBOX_DIALECT", "stripe")
    assert sandbox.__main__.main(["--db", str(tmp_path / "env.db")]) == 0
    assert sandbox.__main__.main(["--db", str(tmp_path / "flag.db"), "--dialect", "camel"]) == 0
    assert [app.state.settings.dialect for app in served] == ["stripe", "camel"]
    with pytest.raises(SystemExit):
        sandbox.__main__.main(["--dialect", "soap"])
    with pytest.raises(ValueError, match="dialect"):
        SandboxSettings(dialect="soap")


# --- shapes no server here produces ------------------------------------------------------------------------
BASE = "https://api.example.com/api/v1"
PLANS = f"{BASE}/payment/subscription-plans"
CUSTOMER = f"{BASE}/payment/customer-info"


@pytest.fixture
def api() -> Iterator[PaymentsClient]:
    with PaymentsClient(BASE, "bsk_test_" + "0" * 32, backoff_factor=0) as payments:
        yield payments


def _answer(url: str, body: Any) -> None:
    responses.upsert(responses.GET, url, json=body)


@pytest.mark.parametrize("body", [
    [{"id": "prod_A", "prices": [{"id": "price_A"}]}],
    {"object": "list", "data": [{"id": "prod_A", "prices": {"object": "list", "data": [{"id": "price_A"}]}}]},
    {"data": {"plans": [{"product_id": "prod_A", "prices": [{"price_id": "price_A"}]}]}},
    {"products": {"data": [{"productId": "prod_A", "pricing": [{"priceId": "price_A"}]}]}},
], ids=["bare array", "list objects", "data envelope", "products list"])
@responses.activate
def test_plans_in_any_wrapper(api: PaymentsClient, body: Any) -> None:
    _answer(PLANS, body)
    catalog = api.list_plans("org_abc123")
    assert [(plan.product_id, plan.prices[0].price_id) for plan in catalog.plans] == [("prod_A", "price_A")]


@responses.activate
def test_the_older_wrapper_still_marks_the_current_plan(api: PaymentsClient) -> None:
    _answer(PLANS, {"organizationId": "org_abc123", "activeProductId": "prod_B", "currency": "usd",
                    "plans": [{"productId": "prod_A"}, {"productId": "prod_B"}]})
    catalog = api.list_plans("org_abc123")
    assert catalog.active_product_id == "prod_B" and current_plan(catalog)[0] == catalog.plans[1]


@responses.activate
def test_prices_features_and_marks_in_other_spellings(api: PaymentsClient) -> None:
    _answer(PLANS, [
        {"id": "prod_Q", "name": "Quarterly", "active": True, "features": ["Plain", {"name": "From an object"}, 42],
         "metadata": {"tier": "3", "credits": "1000", "overage_rate": "0.5", "custom": "false"},
         "prices": [{"id": "price_Q3", "product": {"id": "prod_Q", "name": "Quarterly"}, "unit_amount": "30000",
                     "recurring": {"interval": "month", "interval_count": 3}},
                    {"id": "price_QY", "unit_amount_decimal": "100000", "interval": "annual"},
                    {"id": "price_QQ", "amount": 29000, "billing_interval": "Quarterly"}]},
        {"productId": "prod_C", "isCurrent": True, "marketingFeatures": [{"name": "SSO"}]},
    ])
    catalog = api.list_plans("org_abc123")
    quarterly, current = catalog.plans
    assert quarterly.features == ("Plain", "From an object", "42") and current.features == ("SSO",)
    assert (quarterly.tier, quarterly.credits, quarterly.overage_rate, quarterly.custom) == (3, 1000, Decimal("0.5"),
                                                                                             False)
    every_three, yearly, spelled = quarterly.prices
    assert (every_three.interval, every_three.interval_count, every_three.period) == ("month", 3, "3 months")
    assert every_three.months == 3 and every_three.amount == Decimal("300.00") and every_three.product_id == "prod_Q"
    assert (yearly.interval, yearly.months, yearly.amount) == ("year", 12, Decimal("1000.00"))
    assert (spelled.interval, spelled.interval_count) == ("month", 3)
    assert catalog.active_product_id == "prod_C"  # `current`, never Stripe's `active` (for sale)
    frame = plans_frame(catalog)
    assert list(frame.interval[:3]) == ["3 months", "year", "3 months"] and list(frame.months[:3]) == [3, 12, 3]


@responses.activate
def test_times_as_iso_or_epoch_seconds(api: PaymentsClient) -> None:
    moment = datetime(2027, 1, 1, tzinfo=timezone.utc)
    for sent in (1798761600, 1798761600.0, "1798761600", " 1798761600.0 ", 1798761600000, "2027-01-01T00:00:00Z",
                 "2027-01-01T01:00:00+01:00", "2027-01-01T00:00:00", "2027-01-01"):
        _answer(CUSTOMER, {"subscription": {"status": "active", "current_period_end": sent}})
        subscription = api.get_customer("org_abc123").subscription
        assert subscription and subscription.current_period_end == moment, sent


STRIPE_SUBSCRIPTION = {
    "id": "sub_1", "object": "subscription", "status": "active", "customer": "cus_1",
    "items": {"object": "list", "data": [{"id": "si_1", "current_period_end": 1798761600, "price": {
        "id": "price_GrowthYearly001", "product": "prod_Growth0001", "unit_amount": 399000,
        "recurring": {"interval": "year", "interval_count": 1}}}]},
}


@pytest.mark.parametrize("body", [
    {"id": "cus_1", "object": "customer", "subscriptions": {"object": "list", "data": [STRIPE_SUBSCRIPTION]}},
    {"customer_id": "cus_1", "subscriptions": [{**STRIPE_SUBSCRIPTION, "id": "sub_0", "status": "canceled"},
                                               STRIPE_SUBSCRIPTION]},
    {"customerId": "cus_1", "subscription": STRIPE_SUBSCRIPTION},
    [{"customer": "cus_1", "subscription": STRIPE_SUBSCRIPTION}],
    {"object": "list", "data": [{"id": "cus_1", "object": "customer", "subscription": STRIPE_SUBSCRIPTION}]},
    {"data": {"id": "cus_1", "object": "customer", "subscriptions": [STRIPE_SUBSCRIPTION]}},
], ids=["stripe customer", "live one of many", "one subscription", "bare array", "search result", "data envelope"])
@responses.activate
def test_a_stripe_subscription_wherever_the_customer_puts_it(api: PaymentsClient, body: Any) -> None:
    _answer(CUSTOMER, body)
    customer = api.get_customer("org_abc123")
    subscription = customer.subscription
    assert customer.customer_id == "cus_1" and customer.status == "active"
    assert subscription and subscription.id == "sub_1" and subscription.price_id == "price_GrowthYearly001"
    assert (subscription.interval, subscription.amount, subscription.plan_name) == ("year", Decimal("3990.00"), None)
    assert subscription.current_period_end == datetime(2027, 1, 1, tzinfo=timezone.utc)  # from the item
    assert customer.active_product_id == "prod_Growth0001"  # from the live subscription
    _answer(PLANS, [{"id": "prod_Growth0001", "name": "Growth", "prices": [{"id": "price_GrowthYearly001"}]}])
    catalog = api.list_plans("org_abc123")
    assert plan_name(customer, catalog) == "Growth"  # a product id only: named from the catalog
    assert current_plan(catalog, customer)[1].price_id == "price_GrowthYearly001"  # type: ignore[union-attr]


@responses.activate
def test_legacy_plan_objects_expanded_products_and_cards(api: PaymentsClient) -> None:
    _answer(CUSTOMER, {
        "id": "cus_9", "object": "customer", "metadata": {"organization_name": "Legacy Ltd"},
        "default_payment_method": {"card": {"brand": "amex", "last4": "0005"}},
        "subscription": {"id": "sub_9", "status": "trialing", "plan": {
            "id": "price_Old", "amount": 5000, "interval": "month", "interval_count": 3,
            "product": {"id": "prod_Old", "object": "product", "name": "Old plan"}}},
    })
    customer = api.get_customer("org_abc123")
    subscription = customer.subscription
    assert (customer.organization_name, customer.card_brand, customer.card_last4) == ("Legacy Ltd", "amex", "0005")
    assert subscription and (subscription.price_id, subscription.product_id, subscription.plan_name) == (
        "price_Old", "prod_Old", "Old plan")
    assert (subscription.interval, subscription.interval_count, subscription.period) == ("month", 3, "3 months")


@pytest.mark.parametrize(("url", "body", "named"), [
    (PLANS, {"plans": "Starter, Growth"}, "'plans' should be a list"),
    (PLANS, {"object": "list", "data": [{"name": "Starter"}]}, "'productId' is missing"),
    (PLANS, [{"id": "prod_A", "prices": {"data": [{"unit_amount": 100}]}}], "'priceId' is missing"),
    (PLANS, [{"id": "prod_A", "prices": [{"id": "price_A", "product": {"name": "A"}}]}], "'id' is missing"),
    (PLANS, [{"id": "prod_A", "marketing_features": [{"title": "SSO"}]}], "'name' is missing"),
    (PLANS, [{"id": "prod_A", "prices": [{"id": "price_A", "recurring": {"interval_count": "every"}}]}],
     "'intervalCount' should be a number"),
    (CUSTOMER, {"subscription": {"status": "active", "current_period_end": "soon"}}, "'currentPeriodEnd'"),
    (CUSTOMER, {"subscriptions": {"object": "list", "data": "sub_1"}}, "'subscriptions' should be a list"),
    (CUSTOMER, {"object": "list", "data": []}, "is an empty list"),
])
@responses.activate
def test_unknown_shapes_of_what_is_needed_fail_naming_the_field(api: PaymentsClient, url: str, body: Any,
                                                                named: str) -> None:
    _answer(url, body)
    call = api.list_plans if url == PLANS else api.get_customer
    with pytest.raises(UnexpectedResponseError) as failed:
        call("org_abc123")
    assert named in failed.value.message and "\n" not in failed.value.message
    assert failed.value.code == "unexpected_shape"
