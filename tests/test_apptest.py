"""Every page and role through Streamlit's AppTest: menus, refusals, validation, fault messages, audit rows.

Flows that need a click inside a confirmation dialog run in the browser tests (AppTest can't click there).
"""

from __future__ import annotations

import html
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from sandbox.control_client import SandboxControl
from services.payments import validation
from services.inputs import InputRefused
from services.payments.errors import InvalidInputError
from tests.hostile_inputs import HOSTILE_INPUTS
from sandbox.settings import new_test_key
from tests.e2e.conftest import free_port

PAGES = {"customer": "pages/customer.py", "bulk": "pages/bulk.py", "plans": "pages/plans.py", "subscription": "pages/subscription.py",
         "audit": "pages/audit.py", "approvals": "pages/approvals.py"}
MENUS = {"support": {"customer", "bulk", "plans"}, "finance": set(PAGES), "admin": set(PAGES)}


@contextmanager
def apptest_console(data_dir: Path, unset: tuple[str, ...] = ()) -> Iterator[SandboxControl]:
    """A console runtime for AppTest (cached per process and per configuration): its own data and a pinned
    sandbox, with the `unset` variables taken out of the environment meanwhile (their defaults apply)."""
    port, key = free_port(), new_test_key()
    names = {"BILLING_DESK_SANDBOX": "1", "BILLING_DESK_DATA_DIR": str(data_dir), "SANDBOX_PORT": str(port),
             "SANDBOX_API_KEY": key}
    saved = {name: os.environ.get(name) for name in (*names, *unset)}
    os.environ.update(names)
    for name in unset:
        os.environ.pop(name, None)
    try:
        app()  # the runtime, and its sandbox, start with the first run
        yield SandboxControl(f"http://127.0.0.1:{port}", key)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def sandbox_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxControl]:
    """One console runtime for the module."""
    with apptest_console(tmp_path_factory.mktemp("apptest")) as control:
        yield control


@pytest.fixture(autouse=True)
def fresh_reads(sandbox_control: SandboxControl) -> Iterator[None]:
    st.cache_data.clear()
    yield
    try:
        sandbox_control.clear_faults()
    except Exception:
        pass


def app(user: str | None = None, org: str | None = None) -> AppTest:
    """The console in AppTest; with `user`, signed in as that demo user through the login form."""
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=30)
    if org:
        at.query_params["org"] = org
    at.run()
    if user:
        sign_in(at, user, f"{user}-demo")
        assert at.session_state["_session_token"], f"{user} could not sign in"
    return at


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    next(button for button in at.button if button.label == "Log in").click()
    return at.run()


def texts(at: AppTest) -> str:
    """What the page says, as read on screen: markdown without its escapes, and st.html's text without its tags."""
    parts = [element.value for kind in ("markdown", "caption", "error", "warning", "info", "success", "subheader",
                                        "title") for element in getattr(at, kind)]
    shown = "\n".join(str(part) for part in parts).replace("\\", "")
    return "\n".join([shown, *(html.unescape(re.sub(r"<[^>]+>", " ", element.proto.body))
                               for element in at.get("html"))])


def look_up(at: AppTest, organization_id: str) -> AppTest:
    at.text_input(key="lookup_input").input(organization_id)
    next(button for button in at.button if button.label == "Look up").click()
    return at.run()


# --- before login ----------------------------------------------------------------------------------
def test_before_login_only_the_login_form_exists(sandbox_control: SandboxControl) -> None:
    at = app(org="org_abc123")
    assert [title.value for title in at.title] == ["Billing Desk"]
    assert {field.key for field in at.text_input} == {"login_username", "login_password"}
    assert "Acme Analytics" not in texts(at) and "support-demo" in texts(at)
    for path in PAGES.values():
        with pytest.raises(ValueError):  # not even registered before login
            at.switch_page(path)


def test_login_form_signs_in_and_keeps_the_deep_link(sandbox_control: SandboxControl) -> None:
    at = sign_in(app(org="org_abc123"), "finance", "finance-demo")
    assert at.session_state["_session_token"]
    assert at.title[0].value == "Customer" and "Acme Analytics" in texts(at)


def test_wrong_passwords_then_lockout(sandbox_control: SandboxControl) -> None:
    at = app()
    for _ in range(5):
        sign_in(at, "admin", "wrong password")
    assert "locked" in at.error[0].value
    sign_in(at, "admin", "admin-demo")  # right, but too late
    assert "_session_token" not in at.session_state and "locked" in at.error[0].value
    store = Path(os.environ["BILLING_DESK_DATA_DIR"]) / "audit.sqlite3"
    with sqlite3.connect(store) as db:  # unlock admin for the tests after this one
        db.execute("DELETE FROM login_throttles")


# --- menus and refusals ----------------------------------------------------------------------------
@pytest.mark.parametrize("role", list(MENUS))
def test_each_role_reaches_exactly_its_pages(sandbox_control: SandboxControl, role: str) -> None:
    at = app(role)
    assert at.title[0].value == "Customer" and f"Role: {role.capitalize()}" in texts(at)
    for name, path in PAGES.items():
        if name in MENUS[role]:
            at.switch_page(path).run()
            assert not at.exception and at.title[0].value != "Not available", name
        else:
            with pytest.raises(ValueError):
                at.switch_page(path)
            at.switch_page("pages/not_allowed.py").run()
            assert "can't use this page" in at.error[0].value


@pytest.mark.parametrize("state", [{"authentication_status": True, "username": "admin", "roles": ["admin"]},
                                   {"_session_token": "made-up.0123456789abcdef0123456789abcdef"},
                                   {"_session_token": ""}])
def test_tampered_session_state_gets_the_login_form(sandbox_control: SandboxControl, state: dict) -> None:
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=30)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert at.title[0].value == "Billing Desk" and "login_username" in {field.key for field in at.text_input}


# --- customer --------------------------------------------------------------------------------------
def test_customer_page_shows_the_customer(sandbox_control: SandboxControl) -> None:
    at = look_up(app("support"), "org_abc123")
    page = texts(at)
    for expected in ("Acme Analytics", "Growth", "$399.00 per month", "Visa •••• 4242", "Active"):
        assert expected in page, expected
    assert at.query_params["org"] in ("org_abc123", ["org_abc123"])
    assert not any(button.label == "Subscription actions" for button in at.button)  # support can't


@pytest.mark.parametrize(("entered", "message"), [
    ("org abc", "No customer the console has read matches “org abc”"),
    ("cus_123", "looks customers up only by organization id"), ("", "Type an organization id"),
    ("<i>zq</i>", "No customer the console has read matches"), ("x" * 101, "matches “" + "x" * 60 + "…”")])
def test_lookup_validation_sends_nothing(sandbox_control: SandboxControl, entered: str, message: str) -> None:
    at = app("support")
    before = sandbox_control.stats()["requests"]
    at = look_up(at, entered)
    assert message in at.error[0].value
    assert sandbox_control.stats()["requests"] == before


@pytest.mark.parametrize(("fault", "message"), [
    ({"status": 503}, "internal error"), ({"status": 401, "code": "api_key_revoked"}, "API key"),
    ({"malformed": True}, "can't read"), ({"status": 404, "code": "organization_not_found",
                                          "message": "No organization with id 'org_abc123'."}, "No organization"),
])
def test_api_failures_become_clear_messages(sandbox_control: SandboxControl, fault: dict, message: str) -> None:
    sandbox_control.add_fault("customer-info", **fault)
    at = look_up(app("finance"), "org_abc123")
    assert not at.exception
    assert "Couldn't look up org_abc123" in at.error[0].value and message in at.error[0].value
    sandbox_control.clear_faults()
    next(button for button in at.button if button.label == "Try again").click()
    at.run()
    assert "Acme Analytics" in texts(at)  # once the fault clears, the same lookup works


def test_support_e_mails_the_portal_link_to_the_customer_and_never_sees_it(sandbox_control: SandboxControl) -> None:
    at = look_up(app("support"), "org_abc123")
    assert not [button for button in at.button if button.label == "See portal link"]  # support: not even offered
    before = len(sandbox_control.mailbox())
    at.button(key="send_portal_link").click()
    at.run()
    assert not at.exception and not at.error and not at.code  # no link on screen
    assert any("Portal link queued for" in toast.value for toast in at.toast)
    deadline = time.monotonic() + 15
    while len(sandbox_control.mailbox()) == before:  # the console's delivery worker, over real SMTP
        assert time.monotonic() < deadline, "the e-mail never reached the sandbox's mailbox"
        time.sleep(0.2)
    received = sandbox_control.mailbox()[0]
    assert "/sandbox/portal/bps_" in received["body"]
    finance = app("finance")
    finance.switch_page("pages/audit.py").run()
    frame = finance.dataframe[0].value
    row = frame[frame.action == "portal link e-mailed"].iloc[0]
    assert (row.user, row.outcome, row.organization_id) == ("support", "succeeded", "org_abc123")
    assert "/sandbox/portal/" not in frame.to_csv()
    again = look_up(app("support"), "org_abc123")
    assert any("Portal link e-mailed to" in caption.value and "delivered" in caption.value
               for caption in again.caption), [caption.value for caption in again.caption]


def test_under_the_default_policy_nobody_sees_a_portal_link(sandbox_control: SandboxControl) -> None:
    """A cancel waits for a second person by default, and a portal link can cancel: finance gets the button
    switched off, saying why, and only the e-mail to the customer."""
    at = look_up(app("finance"), "org_abc123")
    shown = next(button for button in at.button if button.label == "See portal link")
    assert shown.disabled and "second person" in (shown.help or "")


# --- plans -------------------------------------------------------------------------------------------
def test_plans_page_and_a_refused_checkout_link(sandbox_control: SandboxControl) -> None:
    at = app("support", org="org_abc123")
    at.switch_page("pages/plans.py").run()
    frame = at.dataframe[0].value
    assert list(frame[frame.current == "✓"].plan) == ["Growth"] and len(frame) == 10
    at.selectbox[0].select_index(1).run()  # Starter monthly
    next(button for button in at.button if button.label == "Create checkout link").click()
    at.run()
    assert "already has a subscription" in at.error[0].value  # the API's own words, clearly
    assert not at.code


def test_checkout_link_for_an_organization_without_a_subscription(sandbox_control: SandboxControl) -> None:
    organization_id = sandbox_control.organizations("none")[0]["id"]
    at = app("support", org=organization_id)
    at.switch_page("pages/plans.py").run()
    at.selectbox[0].select_index(2).run()  # Starter yearly
    at.text_input(key="cancel_url").input("javascript:alert(1)").run()
    next(button for button in at.button if button.label == "Create checkout link").click()
    at.run()
    shown = at.error[0].value.replace("\\", "").replace("\u2060", "")  # as read on screen (shown literally)
    assert "must start with https://" in shown and not at.code
    at.text_input(key="cancel_url").input("https://evil.example/back").run()  # https, but not the company's
    next(button for button in at.button if button.label == "Create checkout link").click()
    at.run()
    assert "one of the company's sites" in at.error[0].value and not at.code
    at.text_input(key="cancel_url").input("http://127.0.0.1:8501/back").run()  # the sandbox may use loopback
    next(button for button in at.button if button.label == "Create checkout link").click()
    at.run()
    assert "/sandbox/checkout/cs_test_" in at.code[0].value


# --- subscription and audit ----------------------------------------------------------------------------
def test_subscription_page_previews_and_validates(sandbox_control: SandboxControl) -> None:
    at = app("finance", org="org_abc123")
    at.switch_page("pages/subscription.py").run()
    assert "Growth · $399.00 per month" in texts(at)
    move = at.selectbox[0]
    labels = move.options
    assert "Growth · $399.00 per month" not in labels and "Scale · $699.00 per month" in labels
    move.select("Scale · $699.00 per month").run()
    assert "takes effect immediately" in at.warning[0].value
    at.selectbox[0].select("Starter · $179.00 per month").run()
    assert "end of the current period" in at.info[0].value
    at.text_input(key="process_session").input("sub_123")
    next(button for button in at.button if button.label == "Process checkout…").click()
    at.run()
    assert "checkout session id looks like" in at.error[0].value
    assert not at.session_state["dialog"] if "dialog" in at.session_state else True


def test_subscription_page_without_a_subscription(sandbox_control: SandboxControl) -> None:
    organization_id = sandbox_control.organizations("none")[0]["id"]
    at = app("admin", org=organization_id)
    at.switch_page("pages/subscription.py").run()
    assert "no live subscription to change" in texts(at)


def test_audit_log_filters_and_downloads(sandbox_control: SandboxControl) -> None:
    at = app("admin")
    at.switch_page("pages/audit.py").run()
    assert at.title[0].value == "Audit log"
    all_rows = at.dataframe[0].value
    assert {"at", "user", "role", "action", "organization_id", "reason", "outcome", "error"} <= set(all_rows.columns)
    at.multiselect[2].select("denied").run()  # outcome filter
    filtered = at.dataframe[0].value
    assert set(filtered.outcome) <= {"denied"} and len(filtered) <= len(all_rows)
    assert any(button.label == "Download CSV" for button in at.get("download_button"))


# --- bulk lookup -------------------------------------------------------------------------------------
def test_bulk_lookup_of_fifty_ids(sandbox_control: SandboxControl) -> None:
    known = [row["id"] for row in sandbox_control.organizations()][:48]
    pasted = ", ".join(known + ["org_nobody", "bad$id", known[0], "cus_123"])
    at = app("support")
    at.switch_page("pages/bulk.py").run()
    at.text_area(key="bulk_text").input(pasted).run()
    summary = texts(at)
    assert "**49** to look up · 1 duplicates skipped · 2 invalid, not sent" in summary
    at.button(key="bulk_start").click().run()
    job_id = _param(at, "job")
    assert job_id, "the new job is opened (?job=ID)"
    assert at.text_area(key="bulk_text").value == "", "the box is emptied: a second click can't start it twice"
    for _ in range(120):  # the page polls the store in a fragment, which AppTest doesn't run on its own
        at.run()
        if any(button.label == "Download results CSV" for button in at.get("download_button")):
            break
        time.sleep(0.5)
    frame = next(table.value for table in at.dataframe if "organization_id" in table.value.columns)
    assert len(frame) == 49 and list(frame.organization_id[:48]) == known
    assert frame.set_index("organization_id").loc["org_nobody", "status"] == "not found"
    assert "49 of 49 looked up · 1 not found · 0 failed" in at.get("progress")[0].proto.text
    assert {"Download results CSV", "Download results Excel"} <= {button.label for button in at.get("download_button")}
    assert {metric.label for metric in at.metric} >= {"Active", "Not found"} or len(at.metric) >= 3
    jobs = next(table.value for table in at.dataframe if "who" in table.value.columns)
    assert list(jobs.id) == [job_id] and list(jobs.status) == ["Done"]


def test_finance_sees_the_summary_of_a_job_and_admin_sees_everyone_s_jobs(sandbox_control: SandboxControl) -> None:
    known = [row["id"] for row in sandbox_control.organizations()][:20]
    at = app("finance")
    at.switch_page("pages/bulk.py").run()
    assert "Your jobs" in texts(at) or not at.dataframe
    at.text_area(key="bulk_text").input(" ".join(known)).run()
    at.button(key="bulk_start").click().run()
    job_id = _param(at, "job")
    for _ in range(120):
        at.run()
        if any(button.label == "Download summary CSV" for button in at.get("download_button")):
            break
        time.sleep(0.5)
    assert "Finance summary" in texts(at)
    assert {"Download summary CSV", "Download summary Excel"} <= {button.label for button in at.get("download_button")}
    assert any(metric.label == "MRR" for metric in at.metric)
    admin = app("admin")
    admin.switch_page("pages/bulk.py").run()
    assert "Everyone's jobs" in texts(admin)
    jobs = next(table.value for table in admin.dataframe if "who" in table.value.columns)
    assert job_id in list(jobs.id) and "finance" in list(jobs.who)
    support = app("support")
    support.switch_page("pages/bulk.py").run()
    support.query_params["job"] = job_id
    support.run()
    assert "no bulk lookup with that id that you may see" in texts(support)  # not theirs


def test_a_job_whose_key_is_refused_ends_failed_saying_why(sandbox_control: SandboxControl) -> None:
    known = [row["id"] for row in sandbox_control.organizations()][:30]
    sandbox_control.add_fault("customer-info", status=401, code="api_key_revoked")
    try:
        at = app("support")
        at.switch_page("pages/bulk.py").run()
        at.text_area(key="bulk_text").input(" ".join(known)).run()
        at.button(key="bulk_start").click().run()
        for _ in range(60):
            at.run()
            if at.error:
                break
            time.sleep(0.5)
    finally:
        sandbox_control.clear_faults()
    assert at.error[0].value.startswith("The Payments API refused Billing Desk's API key, so the job stopped")
    assert "were looked up; their results are below." in at.error[0].value
    jobs = next(table.value for table in at.dataframe if "who" in table.value.columns)
    assert list(jobs.status)[0] == "Failed"


def _param(at: AppTest, name: str) -> str | None:
    value = at.query_params.get(name)
    return value[0] if isinstance(value, list) else value


# --- hostile input through every page input ---------------------------------------------------------------
@pytest.mark.parametrize("value", HOSTILE_INPUTS, ids=lambda value: repr(value[:20]))
def test_every_page_input_refuses_hostile_values(sandbox_control: SandboxControl, value: str) -> None:
    unsent = _refused_by(validation.organization_id, value)
    at = app("finance", org="org_abc123")
    before = sandbox_control.stats()["requests"]
    at = look_up(at, value)
    assert not at.exception
    if unsent:  # not an organization id: the box says so, unless the directory holds a customer it matches
        listed = "search_results" in at.session_state and at.session_state["search_results"]
        opened = at.session_state["lookup_input"] == ""  # cleared as a customer opens
        assert (at.error and at.error[0].value) or listed or opened, "the lookup box says what is wrong"
    at.switch_page("pages/subscription.py").run()
    before = sandbox_control.stats()["requests"]
    at.text_input(key="process_session").input(value)
    next(button for button in at.button if button.label == "Process checkout…").click()
    at.run()
    if _refused_by(validation.checkout_session_id, value):
        assert any("checkout session id" in error.value for error in at.error)
        assert not at.session_state["dialog"] if "dialog" in at.session_state else True
    if value.strip() and _refused_by(lambda text: validation.redirect_url(text, "success URL"), value):
        at.switch_page("pages/plans.py").run()
        at.selectbox[0].select_index(1).run()
        at.text_input(key="success_url").input(value).run()
        before = sandbox_control.stats()["requests"]
        next(button for button in at.button if button.label == "Create checkout link").click()
        at.run()
        assert any("success URL" in error.value for error in at.error) and not at.code
    assert sandbox_control.stats()["requests"] == before, "nothing was sent"
    assert not at.exception


def _refused_by(check, value: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        check(value)
    except (InvalidInputError, InputRefused):
        return True
    return False


def test_api_data_with_markup_is_shown_literally(sandbox_control: SandboxControl) -> None:
    at = app("support", org="org_markup")
    heading = next(element.value for element in at.markdown if element.value.startswith("### "))
    assert "\\<b\\>" in heading and "\\*\\*Stars\\*\\*" in heading and "\\$5" in heading
    assert texts(at).splitlines()[0] != "" and "<b>Bold</b> **Stars** $5" in texts(at)


# --- faults on every action AppTest can click -----------------------------------------------------------
PAGE_FAULTS = {"503": {"status": 503}, "429 storm": {"status": 429}, "malformed JSON": {"malformed": True},
               "key revoked": {"status": 401, "code": "api_key_revoked"}}


def _plans_page(at: AppTest) -> AppTest:
    return at.switch_page("pages/plans.py").run()


def _portal_link(at: AppTest) -> AppTest:
    at.button(key="send_portal_link").click()
    return at.run()


def _checkout_link(at: AppTest) -> AppTest:
    at.switch_page("pages/plans.py").run()
    at.selectbox[0].select_index(1).run()
    next(button for button in at.button if button.label == "Create checkout link").click()
    return at.run()


ACTIONS = {  # operation: (what the page says it couldn't do, how to do it, what success shows)
    "subscription-plans": ("load the plans", _plans_page, lambda at: bool(at.dataframe)),
    "customer-portal": ("send the portal link", _portal_link,
                        lambda at: any("Portal link queued for" in toast.value for toast in at.toast)),
    "subscription-checkout": ("create a checkout link", _checkout_link,
                              lambda at: "/sandbox/checkout/" in at.code[0].value),
}


@pytest.mark.parametrize("fault", list(PAGE_FAULTS))
@pytest.mark.parametrize("operation", list(ACTIONS))
def test_page_actions_under_faults(sandbox_control: SandboxControl, operation: str, fault: str) -> None:
    doing, act, succeeded = ACTIONS[operation]
    organization_id = sandbox_control.organizations("none")[0]["id"]
    at = app("admin", org=organization_id)
    sandbox_control.add_fault(operation, **PAGE_FAULTS[fault])
    at = act(at)
    assert not at.exception
    assert any(f"Couldn't {doing}" in error.value for error in at.error), [error.value for error in at.error]
    if operation != "subscription-plans":
        assert not at.code  # no link shown
    sandbox_control.clear_faults()
    st.cache_data.clear()
    at = act(app("admin", org=organization_id))
    assert succeeded(at)


def test_misconfiguration_stops_with_a_generic_message_and_logs_the_detail(
        sandbox_control: SandboxControl, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("BILLING_DESK_SANDBOX")
    monkeypatch.setenv("PAYMENTS_API_URL", "http://payments.example.com/api/v1")
    monkeypatch.setenv("PAYMENTS_API_KEY", "bsk_live_" + "ab" * 16)
    monkeypatch.setenv("BILLING_DESK_USERS", "/etc/billing-desk/users.yaml")
    at = app()
    shown = at.error[0].value
    assert "isn't configured correctly" in shown and "users.yaml" not in shown and "https" not in shown
    assert not at.text_input  # no login form, nothing else
    assert any("must use https" in record.getMessage() for record in caplog.records)  # the operator's detail
