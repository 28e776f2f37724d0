"""Subscription actions: change plan, cancel, process a completed checkout. Each is confirmed in a dialog
that names the organization and the consequence and asks for a reason; afterwards the customer is re-read."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services import intents
from services.payments import validation
from services.desk import WriteResult
from services.formatting import code_span, customer_notices, day, escape_markdown, price_with_interval
from services.payments.errors import InvalidInputError
from services.plan_change import change_options, preview_change
from services.auth.roles import Page
from ui import session, reads, organization
from ui.console import get_runtime
from ui.widgets import field, show_error, status_badge, stop_on_read_error

actor = session.require_page(Page.SUBSCRIPTION)
runtime = get_runtime()
desk = runtime.desk


def _close_dialog() -> None:
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
        _close_dialog()
        st.rerun()
    return confirmed, reason, typed


@st.dialog("Confirm plan change", width="large", on_dismiss=_close_dialog)
def confirm_change(intent: dict[str, Any]) -> None:
    st.markdown(f"**Organization:** {escape_markdown(intent['organization_name'])} "
                f"({code_span(intent['organization_id'])})")
    st.markdown(f"**From:** {escape_markdown(intent['current_label'])}  \n**To:** {escape_markdown(intent['label'])}")
    (st.warning if intent["change_kind"] == "upgrade" else st.info)(escape_markdown(intent["consequence"]))
    confirmed, reason, _ = _confirmation("Confirm upgrade" if intent["change_kind"] == "upgrade" else "Confirm downgrade")
    if confirmed:
        try:
            result = desk.change_plan(actor, intent["organization_id"], intent["parameters"]["price"],
                                      intent["parameters"]["product"], reason, intent["key"])
        except Exception as problem:
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


@st.dialog("Confirm cancellation", width="large", on_dismiss=_close_dialog)
def confirm_cancel(intent: dict[str, Any]) -> None:
    st.markdown(f"**Organization:** {escape_markdown(intent['organization_name'])} "
                f"({code_span(intent['organization_id'])})")
    st.warning(escape_markdown(intent["consequence"]))
    confirmed, reason, typed = _confirmation("Cancel subscription", danger=True,
                                             typed_label=f"Type {intent['organization_id']} to confirm")
    if confirmed:
        try:
            result = desk.cancel_subscription(actor, intent["organization_id"], reason, typed, intent["key"])
        except Exception as problem:
            show_error(problem, "cancel the subscription")
            return
        _finish(intent, result, f"Subscription set to cancel on {intent['ends']}.")


@st.dialog("Confirm processing the checkout", width="large", on_dismiss=_close_dialog)
def confirm_process(intent: dict[str, Any]) -> None:
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


def _open(kind: str, **intent: Any) -> None:
    intent["key"] = intents.key_for(st.session_state, intent["action"], intent["parameters"])
    st.session_state["dialog"] = {"kind": kind, **intent}
    for key in ("dialog_reason", "dialog_typed"):
        st.session_state.pop(key, None)


# --- the page ------------------------------------------------------------------------------------------
st.title("Subscription actions")
organization_id = organization.chosen_or_stop(
    "Look up an organization to change its plan, cancel it, or process its checkout.")

# The outcome of the last write and any unsettled ones come and go; in one container they don't move the tabs.
notices = st.container()
outcome = st.session_state.get("write_result")
if outcome and outcome["organization_id"] == organization_id:
    result: WriteResult = outcome["result"]
    with notices.container(border=True):
        st.success(escape_markdown(outcome["headline"]), icon=":material/check_circle:")
        if result.customer is not None:
            after = result.customer
            sub = after.subscription
            st.markdown(f"**Now:** {escape_markdown(sub.plan_name if sub and sub.plan_name else 'no plan')} · "
                        f"{escape_markdown(after.status.replace('_', ' '))} · period ends "
                        f"{escape_markdown(day(sub.current_period_end if sub else None))}")
            for kind, sentence in customer_notices(after):
                st.caption(escape_markdown(sentence))
        elif result.reread_error is not None:
            show_error(result.reread_error, "re-read the customer after the change")
        st.button("Dismiss", on_click=lambda: st.session_state.pop("write_result", None))

for unsettled in runtime.audit.pending_for(organization_id):
    with notices.container(border=True):
        st.warning(f"Outcome unknown: {escape_markdown(unsettled['action'])} by {escape_markdown(unsettled['user'])} "
                   f"at {unsettled['at']:%d %b %H:%M} UTC was interrupted before the API answered.")
        if st.button("Re-read the customer to settle it", key=f"settle_{unsettled['id']}"):
            try:
                reads.forget_reads()
                desk.settle_unknown(actor, unsettled["id"], organization_id)
            except Exception as problem:
                show_error(problem, "re-read the customer")
            else:
                st.rerun()

try:
    customer = reads.customer(actor, organization_id)
    catalog = reads.plans(actor, organization_id)
except Exception as problem:
    stop_on_read_error(problem, f"load {organization_id}")

subscription = customer.subscription
current_price = catalog.find_price(subscription.price_id if subscription else None)
current_label = (f"{current_price[0].name} · {price_with_interval(current_price[1].amount, current_price[1].interval)}"
                 if current_price else (subscription.plan_name if subscription and subscription.plan_name else "none"))
with st.container(border=True):
    title, badge, refresh = st.columns([4, 1, 1], vertical_alignment="center")
    title.subheader(escape_markdown(customer.display_name))
    with badge:
        status_badge(customer)
    if refresh.button("Refresh", icon=":material/refresh:"):
        reads.forget_reads()
        st.rerun()
    plan_column, period_column = st.columns(2)
    with plan_column:
        field("Current plan", current_label)
    with period_column:
        field("Current period ends", day(subscription.current_period_end) if subscription else "—")
    for kind, sentence in customer_notices(customer):
        getattr(st, kind)(sentence)

live = subscription is not None and subscription.is_live
change_tab, cancel_tab, process_tab = st.tabs(["Change plan", "Cancel", "Process a checkout"],
                                              key="subscription_tab")
with change_tab:
    if not live:
        st.info("There is no live subscription to change. Send a checkout link from the Plans page instead.")
    elif subscription.cancel_at_period_end:
        st.info("The subscription is set to cancel at period end; it can't be changed.")
    else:
        options = change_options(catalog, customer)
        target = st.selectbox("Move to", options, format_func=lambda option: option.label, index=None,
                              placeholder="Choose a plan and billing interval")
        if target is not None:
            preview = preview_change(catalog, customer, target)
            (st.warning if preview.kind == "upgrade" else st.info)(escape_markdown(preview.consequence))
            if st.button("Change plan…", type="primary"):
                _open("change", action="change plan", organization_id=organization_id,
                      organization_name=customer.display_name, label=target.label, current_label=current_label,
                      change_kind=preview.kind, consequence=preview.consequence,
                      parameters={"organization": organization_id, "price": target.price.price_id,
                                  "product": target.plan.product_id})
with cancel_tab:
    if not live:
        st.info("There is no live subscription to cancel.")
    elif subscription.cancel_at_period_end:
        st.info(f"Already set to cancel on {day(subscription.current_period_end)}.")
    else:
        ends = day(subscription.current_period_end)
        consequence = (f"The subscription stops renewing and ends on {ends}, the end of the current period. "
                       "The customer keeps access until then; nothing is refunded.")
        st.write(consequence)
        if st.button("Cancel subscription…", type="primary"):
            _open("cancel", action="cancel subscription", organization_id=organization_id,
                  organization_name=customer.display_name, consequence=consequence, ends=ends,
                  parameters={"organization": organization_id})
with process_tab:
    st.caption("After the customer pays on a checkout link, paste the checkout session id (cs_…) from the "
               "success page to start their subscription.")
    session_input = st.text_input("Checkout session id", key="process_session", placeholder="cs_test_…")
    if st.button("Process checkout…", type="primary"):
        try:
            session_id = validation.checkout_session_id(session_input)
        except InvalidInputError as problem:
            st.error(problem.user_message, icon=":material/edit:")
        else:
            _open("process", action="process checkout", organization_id=organization_id,
                  organization_name=customer.display_name, masked_session=f"{session_id[:12]}…{session_id[-6:]}",
                  parameters={"session": session_id})

dialog = st.session_state.get("dialog")
if dialog and dialog.get("organization_id") == organization_id:
    {"change": confirm_change, "cancel": confirm_cancel, "process": confirm_process}[dialog["kind"]](dialog)
