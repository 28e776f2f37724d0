"""Client behaviour a server can't produce on demand, faked at the requests boundary with `responses`."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from services.payments import validation
from services.payments.client import PaymentsClient, mask_key
from services.payments.errors import (ApiConnectionError, ApiTimeoutError, InvalidInputError, NotFoundError,
                                      RateLimitError, ServerError, UnexpectedResponseError)
from services.payments.rate_pacer import RatePacer

BASE = "https://api.example.com/api/v1"
KEY = "bsk_live_0123456789abcdef0123456789abcdef"
CUSTOMER = f"{BASE}/payment/customer-info"
PLANS = f"{BASE}/payment/subscription-plans"


@pytest.fixture
def client() -> PaymentsClient:
    return PaymentsClient(BASE, KEY, backoff_factor=0)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("urllib3.util.retry.time.sleep", slept.append)
    return slept


def test_repr_and_errors_never_show_the_key(client: PaymentsClient) -> None:
    assert KEY not in repr(client) and repr(client).endswith("'bsk_live_…cdef')")
    assert validation.key_environment(KEY) == "live"
    assert mask_key("bsk_test_" + "1" * 32) == "bsk_test_…1111"


@responses.activate
def test_the_key_travels_in_the_header_only(client: PaymentsClient) -> None:
    responses.get(CUSTOMER, json={"customerId": "cus_1", "subscriptionStatus": "none"},
                  match=[matchers.header_matcher({"X-API-Key": KEY})])
    client.get_customer("org_abc123")
    assert KEY not in responses.calls[0].request.url


@pytest.mark.parametrize("call", [
    lambda c: c.get_customer(""), lambda c: c.get_customer("org abc"), lambda c: c.get_customer("org_abc\n1"),
    lambda c: c.get_customer("cus_123"), lambda c: c.get_customer("org_аbc"),  # Cyrillic a
    lambda c: c.get_customer("x" * 101), lambda c: c.list_plans("<b>org</b>"),
    lambda c: c.create_checkout("org_abc123", "prod_1", "prod_1"),
    lambda c: c.create_checkout("org_abc123", "price_1", "price_1"),
    lambda c: c.create_checkout("org_abc123", "price_1", "prod_1", success_url="javascript:alert(1)"),
    lambda c: c.create_checkout("org_abc123", "price_1", "prod_1", cancel_url="data:text/html,hi"),
    lambda c: c.create_checkout("org_abc123", "price_1", "prod_1", success_url="https://x.test/a b"),
    lambda c: c.process_checkout("sub_123"), lambda c: c.process_checkout("cs_test_1&x=2"),
    lambda c: c.cancel_subscription("   "), lambda c: c.create_portal("org_abc123", idempotency_key="a b"),
])
@responses.activate
def test_invalid_input_is_refused_before_any_request(client: PaymentsClient, call) -> None:
    with pytest.raises(InvalidInputError) as refused:
        call(client)
    assert refused.value.field and refused.value.user_message
    assert len(responses.calls) == 0


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        PaymentsClient(BASE, "sk_live_nope")
    with pytest.raises(InvalidInputError):
        PaymentsClient("ftp://api.example.com", KEY)


@responses.activate
def test_gets_retry_on_5xx_then_succeed(client: PaymentsClient, no_sleep: list[float]) -> None:
    responses.get(CUSTOMER, status=502, body="bad gateway")
    responses.get(CUSTOMER, status=503, json={"code": "unavailable", "message": "down", "details": {}})
    responses.get(CUSTOMER, json={"customerId": "cus_1", "subscriptionStatus": "active"})
    assert client.get_customer("org_abc123").status == "active"
    assert len(responses.calls) == 3


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    capped = PaymentsClient(BASE, KEY, retry_after_cap=5)
    retry = capped.session.get_adapter(BASE).max_retries
    assert retry.respect_retry_after_header and {429, 500, 503} <= set(retry.status_forcelist)
    assert {"GET", "POST"} <= set(retry.allowed_methods)
    assert retry.parse_retry_after("3") == 3 and retry.parse_retry_after("3600") == 5


@responses.activate
def test_a_429_that_outlasts_the_retries_is_a_rate_limit_error(client: PaymentsClient,
                                                               no_sleep: list[float]) -> None:
    for _ in range(3):
        responses.get(CUSTOMER, status=429, headers={"Retry-After": "2", "X-Request-Id": "req_9"},
                      json={"code": "rate_limited", "message": "slow", "details": {}})
    with pytest.raises(RateLimitError) as limited:
        client.get_customer("org_abc123")
    assert limited.value.retry_after == 2 and limited.value.request_id == "req_9"
    assert "Wait a minute" in limited.value.user_message


@responses.activate
def test_posts_carry_an_idempotency_key_reused_on_retry(client: PaymentsClient, no_sleep: list[float]) -> None:
    url = f"{BASE}/payment/subscription-cancel"
    responses.post(url, status=503, json={"code": "unavailable", "message": "down", "details": {}})
    responses.post(url, json={})
    client.cancel_subscription("org_abc123")
    keys = [call.request.headers["Idempotency-Key"] for call in responses.calls]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("bd-")
    responses.post(url, json={})
    client.cancel_subscription("org_abc123", idempotency_key="intent-42")
    assert responses.calls[-1].request.headers["Idempotency-Key"] == "intent-42"
    assert json.loads(responses.calls[-1].request.body) == {"organizationId": "org_abc123"}


@responses.activate
def test_error_envelope_becomes_a_typed_error(client: PaymentsClient) -> None:
    responses.get(CUSTOMER, status=404, headers={"X-Request-Id": "req_abc"},
                  json={"code": "organization_not_found", "message": "No organization with id 'org_x'.",
                        "details": {"field": "organizationId"}})
    with pytest.raises(NotFoundError) as missing:
        client.get_customer("org_x")
    error = missing.value
    assert (error.code, error.request_id, error.status_code) == ("organization_not_found", "req_abc", 404)
    assert error.details == {"field": "organizationId"} and "org_x" in error.user_message


@responses.activate
def test_an_error_without_an_envelope_still_says_what_failed(client: PaymentsClient, no_sleep) -> None:
    for _ in range(3):
        responses.get(CUSTOMER, status=500, body="<html>oops</html>")
    with pytest.raises(ServerError) as failed:
        client.get_customer("org_abc123")
    assert "HTTP 500" in failed.value.message and "look up customer" in failed.value.message


@responses.activate
def test_connection_and_timeout_errors_hide_the_url(client: PaymentsClient, no_sleep) -> None:
    url = f"{BASE}/payment/subscription-process"
    responses.post(url, body=requests.exceptions.ConnectionError(f"refused {url}?secret=cs_test_SECRET"))
    with pytest.raises(ApiConnectionError) as refused:
        client.process_checkout("cs_test_SECRET")
    assert "cs_test_SECRET" not in str(refused.value) and refused.value.__cause__ is None
    assert refused.value.__suppress_context__
    responses.get(CUSTOMER, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(ApiTimeoutError):
        client.get_customer("org_abc123")


def test_retry_warnings_do_not_log_the_checkout_secret(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        logger.warning("Retrying after %s: %s", "timeout", "/api/v1/payment/subscription-process?secret=cs_test_XYZ")
    assert "cs_test_XYZ" not in caplog.text and "secret=[redacted]" in caplog.text


@responses.activate
def test_malformed_and_unusable_bodies(client: PaymentsClient) -> None:
    responses.get(CUSTOMER, body="{not json", content_type="application/json")
    with pytest.raises(UnexpectedResponseError) as not_json:
        client.get_customer("org_abc123")
    assert not_json.value.code == "malformed_json"
    responses.get(PLANS, json={"items": []})
    with pytest.raises(UnexpectedResponseError) as no_plans:
        client.list_plans("org_abc123")
    assert "'plans' is missing" in str(no_plans.value)
    responses.get(PLANS, json={"plans": [{"name": "Starter"}]})
    with pytest.raises(UnexpectedResponseError) as no_product:
        client.list_plans("org_abc123")
    assert "'productId' is missing" in str(no_product.value)
    responses.get(CUSTOMER, json=["a", "list"])
    with pytest.raises(UnexpectedResponseError, match="not a JSON object"):
        client.get_customer("org_abc123")
    responses.post(f"{BASE}/payment/customer-portal", json={"url": "javascript:alert(1)"})
    with pytest.raises(UnexpectedResponseError, match="not a web address"):
        client.create_portal("org_abc123")


@responses.activate
def test_extra_fields_are_ignored_and_missing_optional_ones_are_none(client: PaymentsClient) -> None:
    responses.get(PLANS, json=[{"productId": "prod_A", "name": "A", "brandNewField": {"x": 1},
                                "prices": [{"priceId": "price_A", "unitAmount": 17900, "interval": "month",
                                            "tax": "inclusive"}]}])
    catalog = client.list_plans("org_abc123")
    plan = catalog.plans[0]
    assert plan.prices[0].amount == Decimal("179.00") and plan.credits is None and plan.features == ()
    assert catalog.active_product_id is None
    responses.get(CUSTOMER, json={"customerId": "cus_1", "email": "a@b.c", "subscriptionStatus": "PAST_DUE",
                                  "activeProductId": "prod_A", "surprise": True})
    customer = client.get_customer("org_abc123")
    assert customer.status == "past_due" and customer.subscription and customer.subscription.status == "past_due"
    assert customer.address is None and customer.card_last4 is None
    responses.get(CUSTOMER, json={"customerId": "cus_1", "subscription": {
        "status": "active", "currentPeriodEnd": 1798761600, "cancelAtPeriodEnd": "true"}})
    subscription = client.get_customer("org_abc123").subscription
    assert subscription and subscription.current_period_end.year == 2027 and subscription.cancel_at_period_end


@responses.activate
def test_ill_typed_fields_are_named(client: PaymentsClient) -> None:
    responses.get(CUSTOMER, json={"customerId": "cus_1", "subscription": {"status": "active",
                                                                         "currentPeriodEnd": "next tuesday"}})
    with pytest.raises(UnexpectedResponseError, match="currentPeriodEnd"):
        client.get_customer("org_abc123")


def test_pacer_goes_at_once_with_headroom_and_queues_at_the_refill_rate_when_short() -> None:
    now = [0.0]
    pacer = RatePacer(clock=lambda: now[0], sleep=lambda seconds: None)
    assert pacer.delay_for_next() == 0  # the probe: nothing known yet
    pacer.observe({"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "0"})
    pacer.release()
    assert [pacer.delay_for_next() for _ in range(11)] == [0.0] * 11  # 12 left, one kept spare
    delays = [pacer.delay_for_next() for _ in range(3)]
    assert delays == pytest.approx([0.1, 0.2, 0.3])  # then 600 a minute: one every 0.1 s
    now[0] = 10.0
    pacer.observe({"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"})
    # 13 still in flight besides the answered one: they will spend tokens this answer didn't see
    assert pacer.delay_for_next() == pytest.approx((13 + 2) / 10)
    pacer.rate_limited(retry_after=5)
    assert pacer.delay_for_next() >= 5.0


def test_pacer_lets_one_probe_go_until_the_limit_is_known() -> None:
    import threading
    pacer = RatePacer()
    assert pacer.delay_for_next() == 0
    released = threading.Event()

    def second() -> None:
        pacer.delay_for_next()
        released.set()

    threading.Thread(target=second, daemon=True).start()
    assert not released.wait(0.2)  # waits for the probe's answer
    pacer.observe({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "999"})
    assert released.wait(2)
