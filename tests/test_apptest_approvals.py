"""Four-eyes approvals through Streamlit's AppTest, with the console's default policy (cancel and downgrade wait
for a second person): who sees the Approvals page, the requester can't approve their own, an approver approves
and the write is made once, a stale request can't be approved, an expiry on a clock the test moves, the
customer's notice, history and notes. Requests are filed by the desk (the dialog's click is a browser test's:
tests/e2e/test_approvals.py); the console's own desk, so everything else goes through the pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from sandbox.control_client import SandboxControl
from services.auth.roles import Action, Actor, PermissionDenied, Role
from services.desk import BillingDesk
from tests.test_apptest import app, apptest_console, texts

FINANCE = Actor("finance", Role.FINANCE)


@pytest.fixture(scope="module")
def sandbox_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxControl]:
    """A console of its own (another configuration: its own data, sandbox and the default approval policy)."""
    with apptest_console(tmp_path_factory.mktemp("approvals"), unset=("BILLING_DESK_APPROVAL_ACTIONS",)) as control:
        yield control


@pytest.fixture
def desk(sandbox_control: SandboxControl) -> Iterator[BillingDesk]:
    from ui.console import get_console  # the console the pages use (built once per configuration)

    st.cache_data.clear()
    console_desk = get_console().desk
    clock = console_desk.approvals.clock
    yield console_desk
    console_desk.approvals.clock = clock


def _active(control: SandboxControl, skip: int = 0) -> str:
    rows = [row["id"] for row in control.organizations() if row["status"] == "active" and not row.get("canceling")]
    return rows[skip]


def _request(desk: BillingDesk, organization_id: str, key: str) -> str:
    return desk.request_approval(FINANCE, Action.CANCEL_SUBSCRIPTION, organization_id, "The customer asked by email",
                                 key, typed_organization_id=organization_id).id


def _open(user: str, request_id: str | None = None) -> AppTest:
    at = app(user)
    at.switch_page("pages/approvals.py")
    if request_id:
        at.query_params["request"] = request_id
    return at.run()


def test_the_approvals_page_is_for_approvers_and_the_requester_cannot_approve(desk: BillingDesk,
                                                                              sandbox_control: SandboxControl) -> None:
    organization_id = _active(sandbox_control)
    request_id = _request(desk, organization_id, "apptest-key-1")
    with pytest.raises(ValueError):  # not in support's menu (nor registered for it)
        app("support").switch_page("pages/approvals.py")
    with pytest.raises(PermissionDenied):  # and refused by the desk itself
        desk.approval_requests(Actor("support", Role.SUPPORT))
    admin = app("admin")
    assert any("1 request waiting for you" in str(link.proto.label) for link in admin.get("page_link"))
    requester = _open("finance", request_id)
    assert "You asked for this change, so a second person must decide it." in texts(requester)
    assert not [button for button in requester.button if button.label.startswith("Approve")]
    sent_before = len(sandbox_control.mutations("cancel"))
    admin = _open("admin", request_id)
    assert "Waiting (1)" in texts(admin) and "Cancel " in texts(admin)
    admin.text_area(key=f"decision_reason_{request_id}").input("Confirmed with the customer by phone")  # one submit, as a form
    next(button for button in admin.button if button.label == "Approve and make the change").click().run()
    assert "Approved: Cancel" in texts(admin) and "cancelling at period end" in texts(admin)
    assert len(sandbox_control.mutations("cancel")) == sent_before + 1
    assert "Nothing is waiting for approval." in texts(admin)
    again = _open("admin", request_id)
    assert "approved by **admin**" in texts(again).replace("Approved", "approved")
    assert not [button for button in again.button if button.label.startswith("Approve")]


def test_a_stale_request_cannot_be_approved_and_an_expired_one_is_gone(desk: BillingDesk,
                                                                       sandbox_control: SandboxControl) -> None:
    first, second = _active(sandbox_control, 1), _active(sandbox_control, 2)
    stale_id = _request(desk, first, "apptest-key-2")
    desk.client.cancel_subscription(first, idempotency_key="apptest-elsewhere")  # changed elsewhere since
    admin = _open("admin", stale_id)
    assert "Stale: the subscription has been set to cancel since." in texts(admin)
    approve = next(button for button in admin.button if button.label == "Approve and make the change")
    assert approve.disabled
    admin.text_area(key=f"decision_reason_{stale_id}").input("No longer needed")
    next(button for button in admin.button if button.label == "Reject").click().run()
    assert f"Rejected: nothing was sent for {first}." in texts(admin)

    expiring_id = _request(desk, second, "apptest-key-3")
    moved = datetime.now(timezone.utc) + timedelta(hours=24, minutes=1)
    desk.approvals.clock = lambda: moved  # the test's clock: a day and a minute later
    admin = _open("admin", expiring_id)
    assert "Nothing is waiting for approval." in texts(admin)
    assert "Status **Expired**" in texts(admin).replace("Status Expired", "Status **Expired**")
    assert not [button for button in admin.button if button.label.startswith("Approve")]


def test_an_approved_write_whose_outcome_was_unknown_says_so_then_what_the_re_read_saw(
        desk: BillingDesk, sandbox_control: SandboxControl) -> None:
    """The request's state as the store keeps it after a write with no answer (tests/test_approvals.py makes it
    through the sandbox); the page says it, then what the person who settled it saw."""
    request_id = _request(desk, _active(sandbox_control, 4), "apptest-key-unknown")
    assert desk.approvals.decide(request_id, "approved", "admin", "admin", "Confirmed")
    desk.approvals.record_outcome(request_id, "unknown", "The Payments API didn't confirm it.", 424242)
    assert "The write's outcome is unknown: re-read the customer" in texts(_open("admin", request_id))
    assert desk.approvals.settle_outcome(request_id, 424242, "fiona: status active, plan Growth")
    shown = texts(_open("admin", request_id))
    assert ("The write's outcome was unknown until the customer was re-read by fiona: status active, plan Growth"
            in shown)


def test_the_customer_page_shows_the_waiting_request_its_history_and_takes_notes(
        desk: BillingDesk, sandbox_control: SandboxControl) -> None:
    organization_id = _active(sandbox_control, 3)
    request_id = _request(desk, organization_id, "apptest-key-4")
    support = app("support", org=organization_id)
    assert "Waiting for a second approver" in texts(support) and "Asked by **finance**" in texts(support)
    assert not [button for button in support.button if button.label == "Withdraw"]  # not theirs
    finance = app("finance", org=organization_id)
    next(button for button in finance.button if button.label == "Withdraw").click().run()
    assert "Waiting for a second approver" not in texts(finance)
    assert desk.review_request(FINANCE, request_id).request.status == "withdrawn"
    history = finance.expander[0] if finance.expander else None
    assert history is not None and history.label == "History and notes"
    finance.session_state["customer_history_open"] = True
    finance.run()
    finance.text_area(key="customer_note_text").input("Called about the invoice; promised a callback.")
    next(button for button in finance.button if button.label == "Add note").click().run()
    frame = next(table.value for table in finance.dataframe if "reason" in table.value.columns)
    assert list(frame.action[:3]) == ["add note", "withdraw request", "request approval"]
    assert frame.reason.iloc[0] == "Called about the invoice; promised a callback."
    assert frame.request.iloc[1] == request_id[:8] and pd.isna(frame.request.iloc[0])  # a note has none (not "nan")
    assert finance.text_area(key="customer_note_text").value == ""  # emptied once stored
    next(button for button in finance.button if button.label == "Add note").click().run()
    assert "Write the note first" in " ".join(element.value for element in finance.error)

    for number in range(20):  # 23 actions: a second page of history (from two people: 20 notes an hour each)
        desk.add_note(FINANCE if number % 2 else Actor("fiona", Role.FINANCE), organization_id, f"Follow-up {number}")
    finance.run()

    def captions() -> str:
        return " ".join(caption.value for caption in finance.caption)

    assert "Page 1 of 2" in captions()
    next(button for button in finance.button if button.label == "Older").click().run()
    frame = next(table.value for table in finance.dataframe if "reason" in table.value.columns)
    assert "Page 2 of 2" in captions() and list(frame.action) == ["add note", "withdraw request", "request approval"]
    next(button for button in finance.button if button.label == "Newer").click().run()
    assert "Page 1 of 2" in captions()
