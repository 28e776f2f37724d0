"""Hostile and mistaken input typed into every input of every page, in the browser.

Each value is read back from the field as the browser kept it (inputs drop line breaks, text areas cap
length), checked with the same rule the console applies, and when that rule refuses it the page must say
so, in words naming the field, and send nothing. The whole corpus goes through the validators and AppTest;
here one value of each kind goes through the real pages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from services.payments import validation
from services.inputs import reason_text
from services.inputs import InputRefused
from services.payments.errors import InvalidInputError
from tests.hostile_inputs import BROWSER_SAMPLE
from ui.present import unlinked

from tests.support.browser import LOOKUP_BOX

from .conftest import Console, choose, login, open_page, open_tab, wait_for_app


def refusal(check: Callable[[str], Any], value: str) -> str | None:
    """The message the console's own rule gives for `value`, or None if the rule accepts it."""
    try:
        check(value)
    except (InvalidInputError, InputRefused) as problem:
        return problem.message
    return None


def _type(field: Locator, value: str) -> str:
    field.fill(value)
    field.press("Tab")  # Streamlit takes a text field's value when it loses focus
    return field.input_value()


def _shows(page: Page, scope: Locator | Page, message: str) -> None:
    wait_for_app(page)
    expect(scope.get_by_test_id("stAlertContentError").filter(has_text=message)).to_have_count(1)


def _active(console: Console, skip: int) -> str:
    return [row["id"] for row in console.sandbox.organizations("active", canceling=False)
            if row["id"] not in ("org_abc123", "org_markup")][-1 - skip]  # from the end: other tests take the start


def _refuses_each(page: Page, box_name: str, rule: Callable[[str], Any], button_name: str) -> None:
    box = page.get_by_role("textbox", name=box_name)
    for value in BROWSER_SAMPLE:
        if message := refusal(rule, _type(box, value)):
            page.get_by_role("button", name=button_name).click()
            _shows(page, page, message)


def _searches_each(page: Page) -> None:
    """The box above every page is a search (ui/organization.py): hostile text is searched for, and answered with
    a sentence, a list of matches, or the one customer it matches; never run as markup or code."""
    box = page.get_by_role("textbox", name=LOOKUP_BOX)
    for value in BROWSER_SAMPLE:
        typed = _type(box, value)
        page.get_by_role("button", name="Look up").click()
        deadline = time.monotonic() + 15
        while True:  # polled: reopening the customer already open changes nothing on screen but the emptied box
            wait_for_app(page)
            said = page.get_by_test_id("stAlertContentError").count()
            listed = page.get_by_text(re.compile(r"customers match")).count()
            opened = box.input_value() == ""  # the box empties as a customer opens
            if said or listed or opened:
                break
            assert time.monotonic() < deadline, f"no answer to {typed!r}"
            page.wait_for_timeout(200)
        assert page.locator("img[src='x']").count() == 0 and page.get_by_text("Traceback").count() == 0


def test_the_lookup_box_and_the_session_id_refuse_hostile_values(page: Page, console: Console) -> None:
    organization_id = _active(console, 0)
    login(page, console, "finance", f"subscription?org={organization_id}")
    _searches_each(page)
    open_page(page, console, f"subscription?org={organization_id}")
    before = console.sandbox.stats()["requests"]
    open_tab(page, "Process a checkout")
    _refuses_each(page, "Checkout session id", validation.checkout_session_id, "Process checkout…")
    expect(page.get_by_role("dialog")).to_have_count(0)  # no confirmation opened for a refused id
    assert console.sandbox.stats()["requests"] == before, "nothing was sent"
    expect(page.get_by_text("Traceback")).to_have_count(0)


@pytest.mark.parametrize("field", ["Success URL", "Cancel URL"])
def test_the_checkout_redirects_refuse_hostile_values(page: Page, console: Console, field: str) -> None:
    organization_id = _active(console, 1)
    login(page, console, "support", f"plans?org={organization_id}")
    choose(page, "Plan", "Starter · $179.00 per month")
    box = page.get_by_role("textbox", name=field)
    name = field.lower().replace("url", "URL")
    checkouts = len(console.sandbox.mutations("checkout"))
    for value in BROWSER_SAMPLE:
        kept = _type(box, value)
        if not kept.strip():  # an empty redirect is left to the API's default, not an error
            continue
        if message := refusal(lambda text: validation.redirect_url(text, name), kept.strip()):
            page.get_by_role("button", name="Create checkout link").click()
            _shows(page, page, message)
            expect(page.get_by_test_id("stCode")).to_have_count(0)  # no link shown
    assert len(console.sandbox.mutations("checkout")) == checkouts, "nothing was sent"


def test_the_confirmation_dialogs_refuse_hostile_reasons_and_confirmations(page: Page, console: Console) -> None:
    organization_id = _active(console, 2)
    login(page, console, "finance", f"subscription?org={organization_id}")
    choose(page, "Move to")
    page.get_by_role("button", name="Change plan…").click()
    dialog = page.get_by_role("dialog")
    reason = dialog.get_by_role("textbox", name="Reason")
    for value in BROWSER_SAMPLE:
        kept = _type(reason, value)
        assert len(kept) <= 500, "the reason box holds at most 500 characters"
        if message := refusal(reason_text, kept):
            wait_for_app(page)
            dialog.get_by_role("button", name=re.compile("^Confirm")).click()
            _shows(page, dialog, message)
    wait_for_app(page)
    dialog.get_by_role("button", name="Go back").click()
    expect(page.get_by_role("dialog")).to_have_count(0)

    open_tab(page, "Cancel")
    page.get_by_role("button", name="Cancel subscription…").click()
    dialog = page.get_by_role("dialog")
    _type(dialog.get_by_role("textbox", name="Reason"), "<b>Customer</b> asked **twice**")
    typed = dialog.get_by_label(re.compile("^Type "))
    for value in BROWSER_SAMPLE:
        kept = _type(typed, value)
        assert kept.strip() != organization_id
        wait_for_app(page)
        dialog.get_by_role("button", name="Cancel subscription").click()
        _shows(page, dialog, f"Type the organization id ({organization_id}) exactly to confirm.")
    assert not [m for m in console.sandbox.mutations() if m["organization_id"] == organization_id], \
        "nothing was sent"
    expect(page.get_by_text("Traceback")).to_have_count(0)


def test_a_customer_s_own_words_show_as_text_on_the_customer_page(page: Page, console: Console) -> None:
    """What a customer typed about themselves (their portal lets them) is shown literally: markup stays text,
    nothing is injected into the page, and an address in it is not a link."""
    organization_id = _active(console, 3)
    name = "[Pay here](https://evil.example/pay) <b>Acme</b> $5"
    email = '"><img src=x onerror="window.__owned=1">@evil.example'
    line1 = "<script>window.__owned=1</script> https://evil.example/pay **now**"
    console.sandbox.set_profile(organization_id, organizationName=name, email=email,
                                address={"line1": line1, "country": "US"})
    login(page, console, "support", f"customer?org={organization_id}")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("heading", name=unlinked(name), exact=True)).to_be_visible()
    expect(main.get_by_text(email, exact=True)).to_be_visible()
    expect(main.get_by_text(f"{line1}, US", exact=True)).to_be_visible()
    injected = main.locator("img[src='x'], a[href*='evil.example'], script:not([src^='/app/static/'])")  # not our own
    assert injected.count() == 0, injected.evaluate_all("(found) => found.map((element) => element.outerHTML)")
    assert page.evaluate("window.__owned") is None


def test_html_entities_in_a_customer_s_name_never_become_links(page: Page, console: Console) -> None:
    """Markdown decodes an entity, then links a bare address: `https&colon;//…` must stay the text it is, on the
    Customer page and the Subscription page's heading alike."""
    organization_id = _active(console, 5)
    name = "https&colon;//evil.example/login www&period;evil&period;example &lt;b&gt;x&lt;/b&gt;"
    console.sandbox.set_profile(organization_id, organizationName=name)
    for path in (f"customer?org={organization_id}", f"subscription?org={organization_id}"):
        if path.startswith("customer"):
            login(page, console, "finance", path)
        else:
            page.goto(f"{console.url}/{path}")
            wait_for_app(page)
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text(unlinked(name), exact=False).first).to_be_visible()
        links = main.locator("a[href*='evil']:not([href^='#']), b")  # not Streamlit's own heading anchor
        assert links.count() == 0, links.evaluate_all("(found) => found.map((element) => element.outerHTML)")
