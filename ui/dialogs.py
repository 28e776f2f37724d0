"""The confirmation dialogs of the Subscription page: each names the organization and the consequence, asks
for a reason (and, to cancel, the typed organization id), then makes the write through the desk.

A dialog is opened by `open_dialog`, which fixes the intent (and its idempotency key) in the session; the
page calls `show_open_dialog` on every run so the dialog stays open until confirmed or dismissed.
"""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from services import intents
from services.auth.roles import Action, Actor
from services.desk import BillingDesk, WriteResult
from services.inputs import InputRefused
from services.formatting import day, price_with_interval

from . import guard, reads
from .present import code_span, escape_markdown
from .widgets import show_error

Dialog = Callable[[BillingDesk, dict[str, Any]], None]  # the actor is checked by each dialog run (ui/guard.py)


def open_dialog(kind: str, **intent: Any) -> None:
    intent["key"] = intents.key_for(st.session_state, intent["action"], intent["parameters"])
    st.session_state["dialog"] = {"kind": kind, **intent}
    for key in ("dialog_reason", "dialog_typed"):
        st.session_state.pop(key, None)


def show_open_dialog(desk: BillingDesk, organization_id: str) -> None:
    dialog = st.session_state.get("dialog")
    if dialog and dialog.get("organization_id") == organization_id:
        _DIALOGS[dialog["kind"] + (" request" if dialog.get("held") else "")](desk, dialog)


@guard.callback
def _close() -> None:
    st.session_state["dialog"] = None


def _finish(intent: dict[str, Any], result: WriteResult, headline: str) -> None:
    intents.retire(st.session_state, intent["action"], intent["parameters"])
    st.session_state["write_result"] = {"organization_id": intent["organization_id"], "headline": headline,
                                        "result": result}
    st.session_state["dialog"] = None
    reads.forget_reads()
    st.rerun()


def _confirmation(confirm_label: str, danger: bool = False, typed_label: str | None = None) -> tuple[bool, str, str]:
    """The reason (and the typed confirmation) with the buttons, in one form: a click confirms exactly what was
    on screen when it was clicked. Outside a form each field is sent when it loses focus, and a click followed
    quickly by an edit could run with the edited text. Returns (confirmed, reason, typed)."""
    with st.form("confirmation", border=False, enter_to_submit=False):
        reason = st.text_area("Reason", key="dialog_reason", max_chars=500,
                              placeholder="e.g. Customer asked by email on …",
                              help="Required. Recorded in the audit log with your name.")
        typed = st.text_input(typed_label, key="dialog_typed") if typed_label else ""
        confirm, back = st.columns(2)
        confirmed = confirm.form_submit_button(confirm_label, type="primary", width="stretch",
                                               icon=":material/warning:" if danger else ":material/check:")
        went_back = back.form_submit_button("Go back", width="stretch")
    if went_back:  # a click inside a dialog reruns only the dialog; closing it takes a rerun of the whole page
        _close()
        st.rerun()
    return confirmed, reason, typed


def _request(desk: BillingDesk, actor: Actor, intent: dict[str, Any], reason: str, typed: str = "") -> None:
    """Files the approval request in place of the write (the policy holds it back); nothing is sent."""
    parameters = intent["parameters"]
    try:
        desk.request_approval(actor, Action(intent["action"]), intent["organization_id"], reason, intent["key"],
                              price_id=parameters.get("price"), product_id=parameters.get("product"),
                              typed_organization_id=typed or None)
    except Exception as problem:
        _policy_changed_under(problem)
        show_error(problem, "file the request")
        return
    intents.retire(st.session_state, intent["action"], intent["parameters"])
    st.session_state["dialog"] = None
    st.toast("Request filed: it waits for a second approver. Nothing was sent yet.", icon=":material/hourglass_top:")
    reads.forget_reads()
    st.rerun()


def _policy_changed_under(problem: BaseException) -> None:
    """The desk's fresh read disagreed with the page's on whether a second person is needed (the customer
    changed): the refusal says which way; the page re-reads, so closing the dialog offers the right button."""
    if isinstance(problem, InputRefused) and problem.field == "approval":
        reads.forget_reads()


def _held_line(desk: BillingDesk, intent: dict[str, Any]) -> None:
    if intent.get("held"):
        st.info(f"This needs a second person's approval ({desk.policy.approvers_text}). Confirming files a request "
                "with your reason; nothing is sent to the Payments API until someone approves it.",
                icon=":material/group:")


def _organization_line(intent: dict[str, Any]) -> str:
    return (f"**Organization:** {escape_markdown(intent['organization_name'])} "
            f"({code_span(intent['organization_id'])})")


@guard.dialog("Confirm plan change", width="large", on_dismiss=_close)
def _confirm_change(desk: BillingDesk, intent: dict[str, Any], actor: Actor) -> None:
    _change(desk, actor, intent)


@guard.dialog("Request a plan change", width="large", on_dismiss=_close)
def _request_change(desk: BillingDesk, intent: dict[str, Any], actor: Actor) -> None:
    _change(desk, actor, intent)  # the same dialog, titled for what confirming does: it files a request


def _change(desk: BillingDesk, actor: Actor, intent: dict[str, Any]) -> None:
    st.markdown(_organization_line(intent))
    st.markdown(f"**From:** {escape_markdown(intent['current_label'])}  \n**To:** {escape_markdown(intent['label'])}")
    upgrade = intent["change_kind"] == "upgrade"
    (st.warning if upgrade else st.info)(escape_markdown(intent["consequence"]))
    _held_line(desk, intent)
    confirmed, reason, _ = _confirmation("Request approval" if intent.get("held") else
                                         "Confirm upgrade" if upgrade else "Confirm downgrade")
    if confirmed and intent.get("held"):
        _request(desk, actor, intent, reason)
    elif confirmed:
        try:
            result = desk.change_plan(actor, intent["organization_id"], intent["parameters"]["price"],
                                      intent["parameters"]["product"], reason, intent["key"])
        except Exception as problem:
            _policy_changed_under(problem)
            show_error(problem, "change the plan")
            return
        change = result.change
        if change and change.effective == "immediately":
            charged = f" Charged now: {price_with_interval(change.proration, None)}." if change.proration else ""
            headline = f"Upgraded to {intent['label']}, effective immediately.{charged}"
        else:
            headline = (f"Downgrade to {intent['label']} scheduled for "
                        f"{day(change.effective_at if change else None)}.")
        _finish(intent, result, headline)


@guard.dialog("Confirm cancellation", width="large", on_dismiss=_close)
def _confirm_cancel(desk: BillingDesk, intent: dict[str, Any], actor: Actor) -> None:
    _cancel(desk, actor, intent)


@guard.dialog("Request a cancellation", width="large", on_dismiss=_close)
def _request_cancel(desk: BillingDesk, intent: dict[str, Any], actor: Actor) -> None:
    _cancel(desk, actor, intent)


def _cancel(desk: BillingDesk, actor: Actor, intent: dict[str, Any]) -> None:
    st.markdown(_organization_line(intent))
    st.warning(escape_markdown(intent["consequence"]))
    _held_line(desk, intent)
    confirmed, reason, typed = _confirmation("Request cancellation" if intent.get("held") else "Cancel subscription",
                                             danger=True, typed_label=f"Type {intent['organization_id']} to confirm")
    if confirmed and intent.get("held"):
        _request(desk, actor, intent, reason, typed)
    elif confirmed:
        try:
            result = desk.cancel_subscription(actor, intent["organization_id"], reason, typed, intent["key"])
        except Exception as problem:
            _policy_changed_under(problem)
            show_error(problem, "cancel the subscription")
            return
        _finish(intent, result, f"Subscription set to cancel on {intent['ends']}.")


@guard.dialog("Confirm processing the checkout", width="large", on_dismiss=_close)
def _confirm_process(desk: BillingDesk, intent: dict[str, Any], actor: Actor) -> None:
    st.markdown(f"**Checkout session:** {code_span(intent['masked_session'])}  \n"
                f"**Expected organization:** {escape_markdown(intent['organization_name'])} "
                f"({code_span(intent['organization_id'])})")
    st.warning("Processing starts the subscription the customer paid for, immediately. Processing the same "
               "session again never creates a second subscription.")
    confirmed, reason, _ = _confirmation("Process checkout")
    if confirmed:
        try:
            result = desk.process_checkout(actor, intent["parameters"]["session"], reason, intent["key"],
                                           intent["organization_id"])
        except Exception as problem:
            show_error(problem, "process the checkout")
            return
        processed = result.processed
        where = processed.organization_id if processed else None
        headline = ("This checkout was already processed; nothing changed." if processed and processed.already_processed
                    else "Checkout processed: the subscription is active.")
        if where and where != intent["organization_id"]:
            headline += f" Note: it belonged to {where}, not {intent['organization_id']}."
            intent = {**intent, "organization_id": where}
        _finish(intent, result, headline)


_DIALOGS: dict[str, Dialog] = {"change": _confirm_change, "change request": _request_change, "cancel": _confirm_cancel,
                               "cancel request": _request_cancel, "process": _confirm_process}
