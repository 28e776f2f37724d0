"""Every hostile or mistaken input gets a clear message for its field and sends nothing."""

from __future__ import annotations

import re

import pytest
import responses

from services.payments import validation
from services.payments.client import PaymentsClient
from services.payments.errors import InvalidInputError

from tests.hostile_inputs import HOSTILE_INPUTS

STRICT = {  # what a well-formed value of each field is; anything else must be refused
    "organization": (validation.organization_id, re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,99}$")),
    "price": (validation.price_id, re.compile(r"^price_[A-Za-z0-9]+$")),
    "product": (validation.product_id, re.compile(r"^prod_[A-Za-z0-9]+$")),
    "checkout session": (validation.checkout_session_id, re.compile(r"^cs_[A-Za-z0-9_]+$")),
    "redirect URL": (lambda value: validation.redirect_url(value, "success URL"), re.compile(r"^https?://[^\s/]+")),
}


@pytest.mark.parametrize("value", HOSTILE_INPUTS, ids=lambda value: repr(value[:20]))
def test_validators_refuse_every_ill_formed_value_with_a_message(value: str) -> None:
    for name, (check, well_formed) in STRICT.items():
        try:
            accepted = check(value)
        except InvalidInputError as refused:
            assert refused.message and refused.field
            continue
        assert well_formed.match(accepted) and accepted.isascii() and accepted.isprintable(), (name, value)


def test_nearly_all_of_the_corpus_is_refused_as_an_organization_id() -> None:
    refused = 0
    for value in HOSTILE_INPUTS:
        try:
            validation.organization_id(value)
        except InvalidInputError:
            refused += 1
    assert refused >= 50


@responses.activate
@pytest.mark.parametrize("value", HOSTILE_INPUTS, ids=lambda value: repr(value[:20]))
def test_the_client_sends_nothing_for_an_ill_formed_value(value: str) -> None:
    client = PaymentsClient("https://api.example.com/api/v1", "bsk_test_" + "0" * 32)
    calls = [lambda: client.get_customer(value), lambda: client.list_plans(value),
             lambda: client.cancel_subscription(value), lambda: client.create_portal(value),
             lambda: client.process_checkout(value),
             lambda: client.create_checkout("org_abc123", "price_1", "prod_1", success_url=value)]
    for call in calls:
        try:
            call()
        except InvalidInputError:
            pass
        except Exception:  # a well-formed value reached the (absent) network: that's allowed, just not sent here
            pass
    sent = [call.request.url for call in responses.calls]
    for url in sent:
        assert "%00" not in url or value == "%00"
    well_formed = [name for name, (_, pattern) in STRICT.items() if pattern.match(value)]
    if not well_formed:
        assert sent == []
