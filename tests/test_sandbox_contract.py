"""The client and the sandbox against each other over real HTTP: every endpoint, every error."""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from sandbox import SandboxSettings, start_sandbox
from sandbox.control_client import SandboxControl
from services.payments.client import PaymentsClient
from services.payments.errors import (ApiTimeoutError, AuthenticationError, BadRequestError, NotFoundError,
                                      ServerError, UnexpectedResponseError, UnprocessableError)

CATALOG = {  # DEVELOPERS.md: the public plan catalog, in dollars
    "Starter": {"month": Decimal("179.00"), "year": Decimal("1790.00")},
    "Growth": {"month": Decimal("399.00"), "year": Decimal("3990.00")},
    "Scale": {"month": Decimal("699.00"), "year": Decimal("6990.00")},
    "Expansion": {"month": Decimal("999.00"), "year": Decimal("9990.00")},
}


def _price(client: PaymentsClient, organization_id: str, plan_name: str, interval: str) -> tuple[str, str]:
    catalog = client.list_plans(organization_id)
    plan = next(plan for plan in catalog.plans if plan.name == plan_name)
    price = next(price for price in plan.prices if price.interval == interval)
    return price.price_id, plan.product_id


# --- reads ---------------------------------------------------------------------------------------------
def test_plans_serve_the_public_catalog_and_mark_the_active_plan(client: PaymentsClient) -> None:
    catalog = client.list_plans("org_abc123")
    names = [plan.name for plan in catalog.plans]
    assert names == ["Free Trial", "Starter", "Growth", "Scale", "Expansion", "Enterprise"]
    for name, prices in CATALOG.items():
        plan = next(plan for plan in catalog.plans if plan.name == name)
        assert {price.interval: price.amount for price in plan.prices} == prices
        assert plan.credits and plan.seats and plan.overage_rate and plan.features
        assert all(price.price_id.startswith("price_") for price in plan.prices)
        assert plan.product_id.startswith("prod_")
    enterprise = catalog.plans[-1]
    assert enterprise.custom and enterprise.prices == ()
    assert catalog.plan(catalog.active_product_id).name == "Growth"  # type: ignore[union-attr]


def test_customer_info_of_the_api_example_organization(client: PaymentsClient) -> None:
    customer = client.get_customer("org_abc123")
    assert customer.customer_id and customer.customer_id.startswith("cus_")
    assert customer.email and "@" in customer.email
    assert customer.card_last4 == "4242" and customer.card_brand == "visa"
    assert customer.address and customer.address.city and customer.address.country
    assert customer.status == "active"
    assert customer.subscription and customer.subscription.plan_name == "Growth"
    assert customer.subscription.id and customer.subscription.id.startswith("sub_")
    assert customer.subscription.current_period_end > customer.subscription.current_period_start  # type: ignore[operator]


def test_seed_covers_every_subscription_state(client: PaymentsClient, control: SandboxControl) -> None:
    organizations = control.organizations()
    assert len(organizations) >= 60
    states = {(row["status"] or "none", bool(row["canceling"])) for row in organizations}
    for state in ["none", "trialing", "active", "past_due", "canceled", "incomplete"]:
        assert any(status == state for status, _ in states), state
    assert ("active", True) in states  # active but cancelling at period end
    scheduled = [row for row in control.organizations("active")
                 if (sub := client.get_customer(row["id"]).subscription) and sub.scheduled_change]
    assert scheduled, "an organization with a downgrade scheduled"
    for row in control.organizations()[:12]:  # every state reads back through the client
        assert client.get_customer(row["id"]).status == (row["status"] or "none")


# --- the whole life of a subscription -----------------------------------------------------------------
def test_subscription_lifecycle(client: PaymentsClient, control: SandboxControl) -> None:
    organization_id = control.organizations("none")[0]["id"]
    assert client.get_customer(organization_id).status == "none"
    starter = _price(client, organization_id, "Starter", "month")

    link = client.create_checkout(organization_id, *starter, success_url="https://desk.example.com/done",
                                  cancel_url="https://desk.example.com/back")
    assert link.checkout_session_id and link.checkout_session_id.startswith("cs_test_")
    page = requests.get(link.url, timeout=5)
    assert page.status_code == 200 and "Starter" in page.text and "$179.00" in page.text

    paid = control.pay(link.url)  # as the browser posts the hosted form
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"https://desk.example.com/done?session_id={link.checkout_session_id}"

    processed = client.process_checkout(link.checkout_session_id)
    assert processed.status == "active" and not processed.already_processed
    again = client.process_checkout(link.checkout_session_id)
    assert again.already_processed and again.subscription_id == processed.subscription_id
    assert len(control.mutations("process")) == 1
    customer = client.get_customer(organization_id)
    assert customer.status == "active" and customer.subscription.plan_name == "Starter"  # type: ignore[union-attr]

    control.advance_clock(days=10)
    upgrade = client.update_subscription(organization_id, *_price(client, organization_id, "Scale", "month"))
    assert upgrade.change == "upgrade" and upgrade.effective == "immediately"
    # Unused share of the month: charged at Scale, credited at Starter.
    assert Decimal("0") < upgrade.proration < Decimal("699") - Decimal("179")  # type: ignore[operator]
    assert client.get_customer(organization_id).subscription.plan_name == "Scale"  # type: ignore[union-attr]

    downgrade = client.update_subscription(organization_id, *_price(client, organization_id, "Growth", "month"))
    assert downgrade.change == "downgrade" and downgrade.effective == "period_end"
    assert downgrade.proration_amount == 0
    subscription = client.get_customer(organization_id).subscription
    assert subscription.plan_name == "Scale"  # type: ignore[union-attr]
    assert subscription.scheduled_change.plan_name == "Growth"  # type: ignore[union-attr]
    assert subscription.scheduled_change.effective_at == subscription.current_period_end  # type: ignore[union-attr]

    control.advance_clock(days=31)
    subscription = client.get_customer(organization_id).subscription
    assert subscription.plan_name == "Growth" and subscription.scheduled_change is None  # type: ignore[union-attr]
    assert subscription.status == "active"  # type: ignore[union-attr]

    client.cancel_subscription(organization_id)
    subscription = client.get_customer(organization_id).subscription
    assert subscription.cancel_at_period_end and subscription.status == "active"  # type: ignore[union-attr]
    with pytest.raises(UnprocessableError) as twice:
        client.cancel_subscription(organization_id)
    assert twice.value.code == "subscription_already_canceling"

    control.advance_clock(days=32)
    customer = client.get_customer(organization_id)
    assert customer.status == "canceled" and customer.active_product_id is None


def test_yearly_switch_is_an_upgrade_and_yearly_to_monthly_a_downgrade(client: PaymentsClient) -> None:
    yearly = client.update_subscription("org_abc123", *_price(client, "org_abc123", "Growth", "year"))
    assert yearly.change == "upgrade" and yearly.subscription.interval == "year"  # type: ignore[union-attr]
    assert yearly.proration_amount and yearly.proration_amount > 0
    back = client.update_subscription("org_abc123", *_price(client, "org_abc123", "Growth", "month"))
    assert back.change == "downgrade" and back.effective == "period_end"


def test_declined_card_leaves_the_session_unpaid(client: PaymentsClient, control: SandboxControl) -> None:
    organization_id = control.organizations("none")[0]["id"]
    link = client.create_checkout(organization_id, *_price(client, organization_id, "Growth", "year"))
    declined = control.pay(link.url, card="4000 0000 0000 0002")
    assert declined.status_code == 402 and "declined" in declined.text
    with pytest.raises(UnprocessableError) as unpaid:
        client.process_checkout(link.checkout_session_id)  # type: ignore[arg-type]
    assert unpaid.value.code == "checkout_not_paid"
    assert control.pay(link.url).status_code == 303  # a good card afterwards still pays
    assert client.process_checkout(link.checkout_session_id).status == "active"  # type: ignore[arg-type]


def test_cancelling_on_the_hosted_page_goes_to_the_cancel_url(client: PaymentsClient, control: SandboxControl) -> None:
    organization_id = control.organizations("none")[0]["id"]
    link = client.create_checkout(organization_id, *_price(client, organization_id, "Starter", "month"),
                                  cancel_url="https://desk.example.com/cancelled")
    response = requests.get(f"{link.url}/cancel", allow_redirects=False, timeout=5)
    assert response.status_code == 303 and response.headers["Location"] == "https://desk.example.com/cancelled"


def test_checkout_and_portal_links_expire(client: PaymentsClient, control: SandboxControl) -> None:
    organization_id = control.organizations("none")[0]["id"]
    link = client.create_checkout(organization_id, *_price(client, organization_id, "Starter", "month"))
    portal = client.create_portal("org_abc123")
    assert requests.get(portal.url, timeout=5).status_code == 200
    control.advance_clock(seconds=31 * 60)
    assert requests.get(portal.url, timeout=5).status_code == 410
    control.advance_clock(days=1)
    assert requests.get(link.url, timeout=5).status_code == 410
    with pytest.raises(UnprocessableError) as expired:
        client.process_checkout(link.checkout_session_id)  # type: ignore[arg-type]
    assert expired.value.code == "checkout_session_expired"


def test_portal_shows_plan_card_invoices_and_takes_a_new_card_and_a_cancel(client: PaymentsClient,
                                                                           control: SandboxControl) -> None:
    portal = client.create_portal("org_abc123")
    page = requests.get(portal.url, timeout=5).text
    assert "Growth" in page and "•••• 4242" in page and "Invoices" in page and "$399.00" in page
    replaced = requests.post(f"{portal.url}/card", data={"card_number": "5555555555554444", "expiry": "10/31"},
                             timeout=5)
    assert "Your card was updated." in replaced.text
    assert client.get_customer("org_abc123").card_last4 == "4444"
    cancelled = requests.post(f"{portal.url}/cancel", timeout=5)
    assert "end at the end of the current period" in cancelled.text
    assert client.get_customer("org_abc123").subscription.cancel_at_period_end  # type: ignore[union-attr]


def test_trial_converts_through_checkout_and_trial_end_cancels(client: PaymentsClient,
                                                               control: SandboxControl) -> None:
    trialing = [row["id"] for row in control.organizations("trialing")]
    converting, lapsing = trialing[0], trialing[1]
    link = client.create_checkout(converting, *_price(client, converting, "Starter", "year"))
    control.pay(link.url)
    assert client.process_checkout(link.checkout_session_id).status == "active"  # type: ignore[arg-type]
    control.advance_clock(days=15)
    assert client.get_customer(lapsing).status == "canceled"
    assert client.get_customer(converting).status == "active"


# --- errors -------------------------------------------------------------------------------------------
def test_unknown_organization_is_404_on_every_operation(client: PaymentsClient) -> None:
    calls = [lambda: client.list_plans("org_nope"), lambda: client.get_customer("org_nope"),
             lambda: client.create_checkout("org_nope", "price_StarterMonthly01", "prod_Starter0001"),
             lambda: client.update_subscription("org_nope", "price_StarterMonthly01", "prod_Starter0001"),
             lambda: client.cancel_subscription("org_nope"), lambda: client.create_portal("org_nope")]
    for call in calls:
        with pytest.raises(NotFoundError) as missing:
            call()
        assert missing.value.code == "organization_not_found" and missing.value.request_id
    with pytest.raises(NotFoundError) as session:
        client.process_checkout("cs_test_doesnotexist")
    assert session.value.code == "checkout_session_not_found"


def test_writes_without_a_subscription_are_422(client: PaymentsClient, control: SandboxControl) -> None:
    organization_id = control.organizations("none")[0]["id"]
    with pytest.raises(UnprocessableError) as update:
        client.update_subscription(organization_id, "price_StarterMonthly01", "prod_Starter0001")
    assert update.value.code == "no_active_subscription"
    with pytest.raises(UnprocessableError) as cancel:
        client.cancel_subscription(organization_id)
    assert cancel.value.code == "no_active_subscription"


@pytest.mark.parametrize(("price_id", "product_id", "code"), [
    ("price_GrowthMonthly01", "prod_Growth0001", "no_change"),
    ("price_StarterMonthly01", "prod_Growth0001", "price_product_mismatch"),
    ("price_Nope", "prod_Growth0001", "price_not_found"),
    ("price_StarterMonthly01", "prod_Nope", "product_not_found"),
])
def test_plan_change_refusals_name_the_problem(client: PaymentsClient, price_id: str, product_id: str,
                                               code: str) -> None:
    with pytest.raises(UnprocessableError) as refused:
        client.update_subscription("org_abc123", price_id, product_id)
    assert refused.value.code == code and refused.value.message


def test_authentication_errors(sandbox, client: PaymentsClient) -> None:
    missing = requests.get(f"{sandbox.base_url}/payment/customer-info", params={"organizationId": "org_abc123"},
                           timeout=5)
    assert missing.status_code == 401 and missing.json()["code"] == "missing_api_key"
    assert set(missing.json()) == {"code", "message", "details"}
    wrong = PaymentsClient(sandbox.base_url, "bsk_test_" + "0" * 32)
    with pytest.raises(AuthenticationError) as refused:
        wrong.get_customer("org_abc123")
    assert refused.value.code == "invalid_api_key" and "API key" in refused.value.user_message


@pytest.mark.parametrize(("path", "body", "field"), [
    ("subscription-checkout", {"priceId": "price_StarterMonthly01", "productId": "prod_Starter0001"}, "organizationId"),
    ("subscription-checkout", {"organizationId": "org_abc123", "productId": "prod_Starter0001"}, "priceId"),
    ("subscription-update", {"organizationId": "org_abc123", "priceId": "price_StarterMonthly01"}, "productId"),
    ("subscription-cancel", {}, "organizationId"),
    ("customer-portal", {"organizationId": ""}, "organizationId"),
    ("subscription-checkout", {"organizationId": "org_abc123", "priceId": "price_StarterMonthly01",
                               "productId": "prod_Starter0001", "successUrl": "javascript:alert(1)"}, "successUrl"),
    ("subscription-update", {"organizationId": 42, "priceId": "price_StarterMonthly01",
                             "productId": "prod_Starter0001"}, "organizationId"),
])
def test_bad_bodies_are_400_naming_the_field(sandbox, path: str, body: dict, field: str) -> None:
    response = requests.post(f"{sandbox.base_url}/payment/{path}", json=body, timeout=5,
                             headers={"X-API-Key": sandbox.api_key})
    assert response.status_code == 400
    assert response.json()["details"]["field"] == field and field in response.json()["message"]


def test_garbage_never_causes_a_500(sandbox) -> None:
    headers = {"X-API-Key": sandbox.api_key, "Content-Type": "application/json"}
    base = f"{sandbox.base_url}/payment"
    attempts = [
        requests.post(f"{base}/subscription-update", data="{not json", headers=headers, timeout=5),
        requests.post(f"{base}/subscription-update", data="[1, 2]", headers=headers, timeout=5),
        requests.post(f"{base}/subscription-cancel", data="null", headers=headers, timeout=5),
        requests.post(f"{base}/subscription-process", params={"secret": "x" * 5000}, headers=headers, timeout=5),
        requests.post(f"{base}/subscription-process", headers=headers, timeout=5),
        requests.get(f"{base}/customer-info", headers=headers, timeout=5),
        requests.get(f"{base}/customer-info", params={"organizationId": "o" * 500}, headers=headers, timeout=5),
        requests.get(f"{base}/customer-info", params={"organizationId": "<script>"}, headers=headers, timeout=5),
        requests.get(f"{base}/nope", headers=headers, timeout=5),
        requests.delete(f"{base}/customer-info", headers=headers, timeout=5),
    ]
    for response in attempts:
        assert 400 <= response.status_code < 500, response.text
        assert set(response.json()) == {"code", "message", "details"}


# --- rate limit ------------------------------------------------------------------------------------
def test_rate_limit_headers_and_429_with_retry_after(tmp_path: Path) -> None:
    running = start_sandbox(SandboxSettings(db_path=tmp_path / "s.db", rate_limit=60, rate_burst=3))
    try:
        url = f"{running.base_url}/payment/customer-info"
        responses = [requests.get(url, params={"organizationId": "org_abc123"}, timeout=5,
                                  headers={"X-API-Key": running.api_key}) for _ in range(5)]
        assert [r.status_code for r in responses][:3] == [200, 200, 200]
        assert responses[-1].status_code == 429
        limited = responses[-1]
        assert limited.json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
        for response in responses:
            assert response.headers["X-RateLimit-Limit"] == "60"
            assert int(response.headers["X-RateLimit-Remaining"]) >= 0
            assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
    finally:
        running.stop()


def test_client_paces_itself_under_a_low_limit(tmp_path: Path) -> None:
    running = start_sandbox(SandboxSettings(db_path=tmp_path / "s.db", rate_limit=600, rate_burst=6))
    try:
        control = SandboxControl(running.root_url, running.api_key)
        with PaymentsClient(running.base_url, running.api_key) as client:
            for _ in range(30):  # five times the bucket
                client.get_customer("org_abc123")
        assert control.stats() == {"requests": 30, "rateLimited": 0, "serverErrors": 0}
    finally:
        running.stop()


def test_the_sandbox_counts_its_own_failures_not_injected_ones(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The load test asserts no 5xx through this counter: it must see a real failure and skip a deliberate one."""
    import sandbox.billing

    running = start_sandbox(SandboxSettings(db_path=tmp_path / "s.db"))
    try:
        control = SandboxControl(running.root_url, running.api_key)
        url, headers = f"{running.base_url}/payment/customer-info", {"X-API-Key": running.api_key}
        control.add_fault("customer-info", status=500, count=1)
        assert requests.get(url, params={"organizationId": "org_abc123"}, headers=headers, timeout=5).status_code == 500

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug in the sandbox")

        monkeypatch.setattr(sandbox.billing, "customer_info", broken)
        failed = requests.get(url, params={"organizationId": "org_abc123"}, headers=headers, timeout=5)
        assert failed.status_code == 500 and failed.json()["code"] == "internal_error"
        assert "a bug" not in failed.text
        assert control.stats() == {"requests": 2, "rateLimited": 0, "serverErrors": 1}
    finally:
        running.stop()


# --- faults and retries ------------------------------------------------------------------------------
def test_reads_retry_through_5xx_and_429(client: PaymentsClient, control: SandboxControl) -> None:
    control.add_fault("customer-info", status=503, count=2)
    assert client.get_customer("org_abc123").status == "active"
    control.add_fault("subscription-plans", status=429, count=1)
    assert client.list_plans("org_abc123").plans
    assert control.faults() == []  # both faults were used up by the retries
    control.add_fault("customer-info", status=500, count=10)
    with pytest.raises(ServerError) as failed:
        client.get_customer("org_abc123")
    assert failed.value.status_code == 500 and "internal error" in failed.value.user_message


def test_a_write_retried_after_a_5xx_happens_once(client: PaymentsClient, control: SandboxControl) -> None:
    control.add_fault("subscription-cancel", status=503, count=1)
    client.cancel_subscription("org_abc123")
    assert len(control.mutations("cancel")) == 1


def test_a_write_whose_answer_is_lost_is_not_repeated(sandbox, control: SandboxControl) -> None:
    control.add_fault("subscription-cancel", hangSeconds=1.5, hangAfter=True, count=1)
    with PaymentsClient(sandbox.base_url, sandbox.api_key, timeout=(2.0, 0.5)) as impatient:
        impatient.cancel_subscription("org_abc123")  # the retry replays the stored answer
    assert len(control.mutations("cancel")) == 1


def test_hang_past_the_read_timeout_is_a_timeout_error(sandbox, control: SandboxControl) -> None:
    control.add_fault("customer-info", hangSeconds=2)
    with PaymentsClient(sandbox.base_url, sandbox.api_key, timeout=(2.0, 0.3)) as impatient:
        with pytest.raises(ApiTimeoutError) as timed_out:
            impatient.get_customer("org_abc123")
    assert sandbox.api_key not in str(timed_out.value) and "in time" in timed_out.value.user_message


def test_malformed_json_is_an_unexpected_response(client: PaymentsClient, control: SandboxControl) -> None:
    control.add_fault("customer-portal", malformed=True, count=1)
    with pytest.raises(UnexpectedResponseError) as malformed:
        client.create_portal("org_abc123")
    assert malformed.value.code == "malformed_json" and malformed.value.request_id


def test_revoked_key_fault_is_an_authentication_error(client: PaymentsClient, control: SandboxControl) -> None:
    control.add_fault("*", status=401, code="api_key_revoked")
    with pytest.raises(AuthenticationError) as revoked:
        client.get_customer("org_abc123")
    assert revoked.value.code == "api_key_revoked"
    control.clear_faults()
    assert client.get_customer("org_abc123").status == "active"


# --- idempotency -------------------------------------------------------------------------------------
def test_idempotency_key_replays_the_first_answer(client: PaymentsClient, control: SandboxControl) -> None:
    first = client.create_portal("org_abc123", idempotency_key="bd-portal-1")
    second = client.create_portal("org_abc123", idempotency_key="bd-portal-1")
    assert first.url == second.url
    assert len(control.mutations("portal")) == 1
    with pytest.raises(BadRequestError) as reused:
        client.create_portal(next(row["id"] for row in control.organizations("active")
                                  if row["id"] != "org_abc123"), idempotency_key="bd-portal-1")
    assert reused.value.code == "idempotency_key_reused"


def test_replayed_refusals_stay_refusals(client: PaymentsClient, control: SandboxControl) -> None:
    organization_id = control.organizations("none")[0]["id"]
    for _ in range(2):
        with pytest.raises(UnprocessableError):
            client.cancel_subscription(organization_id, idempotency_key="bd-cancel-none")
    assert control.mutations("cancel") == []


# --- persistence, start-up, schema --------------------------------------------------------------------
def test_state_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    key = "bsk_test_" + "ab" * 16
    first = start_sandbox(SandboxSettings(api_key=key, db_path=db))
    with PaymentsClient(first.base_url, key) as client:
        client.cancel_subscription("org_abc123", idempotency_key="bd-restart")
        organizations = len(SandboxControl(first.root_url, key).organizations())
    first.stop()
    second = start_sandbox(SandboxSettings(api_key=key, db_path=db))
    try:
        with PaymentsClient(second.base_url, key) as client:
            assert client.get_customer("org_abc123").subscription.cancel_at_period_end  # type: ignore[union-attr]
            client.cancel_subscription("org_abc123", idempotency_key="bd-restart")  # replayed, not refused
        control = SandboxControl(second.root_url, key)
        assert len(control.organizations()) == organizations  # seeded once
        assert len(control.mutations("cancel")) == 1
    finally:
        second.stop()


def test_command_line_start_prints_url_and_key_and_serves(tmp_path: Path) -> None:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port), "--db",
                                str(tmp_path / "cli.db"), "--rate-limit", "500"],
                               stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        banner = [process.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{port}/api/v1" in banner[0]
        key = banner[1].split("API key: ")[1].strip()
        deadline = time.monotonic() + 15
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/v1/payment/customer-info",
                                        params={"organizationId": "org_abc123"}, headers={"X-API-Key": key},
                                        timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 200 and response.headers["X-RateLimit-Limit"] == "500"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_openapi_describes_the_seven_operations(sandbox) -> None:
    spec = requests.get(f"{sandbox.root_url}/openapi.json", timeout=5).json()
    paths = {path for path in spec["paths"] if path.startswith("/api/v1/")}
    assert paths == {f"/api/v1/payment/{name}" for name in (
        "subscription-plans", "subscription-checkout", "subscription-process", "subscription-update",
        "subscription-cancel", "customer-info", "customer-portal")}
    assert "ErrorEnvelope" in spec["components"]["schemas"]
    plans = spec["paths"]["/api/v1/payment/subscription-plans"]["get"]["responses"]["200"]["content"]
    assert plans["application/json"]["schema"]["type"] == "array"  # plan objects, not a wrapper
