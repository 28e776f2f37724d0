"""In Chromium: the Customer page's one box finds a customer by whatever a person has (services/directory/).

An exact id or a search with one match opens the customer; more matches are listed with what tells them apart
and how fresh they are, and choosing one opens it (read from the API); a misspelt name still finds it; no match
gets one sentence; names and e-mails are shown as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import LOOKUP_BOX

from .conftest import Console, login, screenshot, wait_for_app

PROFILES = {"Zanzibar Harbor One": "one@zanzibar-harbor.example", "Zanzibar Harbor Two": "two@zanzibar-harbor.example"}


@pytest.fixture
def harbors(console: Console) -> Iterator[list[dict[str, str]]]:
    """Two organizations named alike for the test, their names given back afterwards."""
    chosen = console.sandbox.organizations("active")[-2:]
    for organization, (name, email) in zip(chosen, PROFILES.items()):
        console.sandbox.set_profile(organization["id"], organizationName=name, email=email)
    yield chosen
    for organization in chosen:
        console.sandbox.set_profile(organization["id"], organizationName=organization["name"])


def _search(page: Page, typed: str) -> None:
    page.get_by_role("textbox", name=LOOKUP_BOX).fill(typed)
    page.get_by_role("button", name="Look up").click()
    wait_for_app(page)


def test_search_lists_matches_and_opens_the_one_chosen(page: Page, console: Console,
                                                       harbors: list[dict[str, str]]) -> None:
    login(page, console, "support")
    for organization in harbors:  # each read once: the directory keeps them as they are now
        _search(page, organization["id"])
        expect(page.get_by_role("heading", name=next(iter(PROFILES)) if organization is harbors[0]
                                else list(PROFILES)[1])).to_be_visible()
    _search(page, "zanzibar")
    expect(page.get_by_text("2 customers match “zanzibar”")).to_be_visible()
    for name in PROFILES:
        expect(page.get_by_role("button", name=name)).to_be_visible()
    expect(page.get_by_text("two@zanzibar-harbor.example").first).to_be_visible()
    expect(page.get_by_text("read just now").first).to_be_visible()
    screenshot(page, "customer-search")
    page.get_by_role("button", name="Zanzibar Harbor Two").click()
    expect(page.get_by_role("heading", name="Zanzibar Harbor Two")).to_be_visible()
    assert f"org={harbors[1]['id']}" in page.url
    expect(page.get_by_text("2 customers match")).to_have_count(0)  # the list is gone once one is open


def test_one_match_opens_directly_and_a_typo_still_finds_it(page: Page, console: Console,
                                                             harbors: list[dict[str, str]]) -> None:
    login(page, console, "support")
    for organization in harbors:
        _search(page, organization["id"])
    _search(page, "one@zanzibar")  # part of an e-mail with one match: opened
    expect(page.get_by_role("heading", name="Zanzibar Harbor One")).to_be_visible()
    _search(page, "zanzibr harbr")  # misspelt: the similar names are listed
    expect(page.get_by_role("button", name="Zanzibar Harbor One")).to_be_visible()
    expect(page.get_by_role("button", name="Zanzibar Harbor Two")).to_be_visible()


def test_no_match_is_one_sentence_and_an_unknown_id_is_still_tried(page: Page, console: Console) -> None:
    login(page, console, "support")
    _search(page, "nothing is called this")
    expect(page.get_by_text("No customer the console has read matches “nothing is called this”")).to_be_visible()
    expect(page.get_by_role("textbox", name=LOOKUP_BOX)).to_have_value("nothing is called this")  # kept to mend
    _search(page, "org_abc123")  # an id opens, in the directory or not
    expect(page.get_by_role("heading", name="Acme Analytics")).to_be_visible()


def test_hostile_names_show_as_text(page: Page, console: Console) -> None:
    # Trials: no other browser test reads them, so none meets their names in the console's cached reads (60 s).
    hostile_one, plain = console.sandbox.organizations("trialing")[-2:]
    hostile = "<img src=x onerror=alert(1)> **Quagga** [x](javascript:alert(2))"
    console.sandbox.set_profile(hostile_one["id"], organizationName=hostile, email="a@quagga.example")
    console.sandbox.set_profile(plain["id"], organizationName="Quagga Plain", email="b@quagga.example")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        login(page, console, "support")
        for organization in (hostile_one, plain):
            _search(page, organization["id"])
        _search(page, "quagga")
        expect(page.get_by_role("button", name=hostile)).to_be_visible()  # the label as typed, not markup
        page.get_by_role("button", name=hostile).click()
        expect(page.get_by_role("heading", name="Quagga", exact=False)).to_contain_text("**Quagga**")
        assert page.locator("img[src='x']").count() == 0 and dialogs == []
    finally:
        for organization in (hostile_one, plain):
            console.sandbox.set_profile(organization["id"], organizationName=organization["name"])


def test_an_admin_imports_ids_and_forgets_an_organization(page: Page, console: Console, tmp_path: Path) -> None:
    organizations = console.sandbox.organizations("active")[-7:-5]
    listing = tmp_path / "organizations.csv"
    listing.write_text("organizationId,note\n" + "".join(f"{row['id']},x\n" for row in organizations) + "bad id,y\n")
    login(page, console, "admin")
    page.get_by_text("Customer directory").click()
    expect(page.get_by_text("The console keeps")).to_be_visible()
    expect(page.get_by_role("button", name="Download directory CSV")).to_be_visible()
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(listing))
    page.get_by_role("button", name="Import into the directory").click()
    expect(page.get_by_text("Reading 2 organizations into the directory")).to_be_visible()
    expect(page.get_by_text("1 line was skipped")).to_be_visible()
    screenshot(page, "customer-directory-admin")
    forgotten = organizations[0]
    console.sandbox.set_profile(forgotten["id"], organizationName="Okapi Forgettable")
    _search(page, forgotten["id"])
    expect(page.get_by_role("heading", name="Okapi Forgettable", exact=True)).to_be_visible()
    page.get_by_text("Customer directory").click()
    page.get_by_role("button", name=f"Forget {forgotten['id']}").first.click()
    page.get_by_label("Why").fill("the customer asked to be forgotten")
    page.get_by_role("button", name=f"Forget {forgotten['id']}").last.click()
    expect(page.get_by_text(f"{forgotten['id']} is no longer in the directory")).to_be_visible()
    _search(page, "okapi forgettable")  # by name: nothing; only a read by id brings it back
    expect(page.get_by_text("No customer the console has read matches “okapi forgettable”")).to_be_visible()
    console.sandbox.set_profile(forgotten["id"], organizationName=forgotten["name"])
