"""Subscription actions: change plan, cancel, process a completed checkout. Each is confirmed in a dialog
(ui/dialogs.py) that names the organization and the consequence and asks for a reason; afterwards the customer
is re-read and the result shown (ui/outcomes.py)."""

from __future__ import annotations

import streamlit as st

from services.auth.roles import Action, Page
from services.formatting import customer_notices, day
from services.payments import validation
from services.payments.errors import InvalidInputError
from services.plan_change import PlanOption, change_options, preview_change
from ui import organization, reads, session
from ui.console import get_console
from ui.approvals import waiting_notice
from ui.dialogs import open_dialog, show_open_dialog
from ui.outcomes import write_notices
from ui.present import escape_markdown
from ui.widgets import field, status_badge, stop_on_read_error

actor = session.require_page(Page.SUBSCRIPTION)
desk = get_console().desk

st.title("Subscription actions")
organization_id = organization.chosen_or_stop(
    "Look up an organization to change its plan, cancel it, or process its checkout.")

write_notices(desk, actor, organization_id)

try:
    customer = reads.customer(actor, organization_id)
    catalog = reads.plans(actor, organization_id)
except Exception as problem:
    stop_on_read_error(problem, f"load {organization_id}")

subscription = customer.subscription
current_price = catalog.find_price(subscription.price_id if subscription else None)
current_label = (PlanOption(*current_price).label if current_price else (subscription.plan_name if subscription and subscription.plan_name else "none"))
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
        getattr(st, kind)(escape_markdown(sentence))
waiting = waiting_notice(desk, actor, organization_id)
WAITING = "A request for this organization is waiting for a second approver; it must be decided or withdrawn first."

live = subscription is not None and subscription.is_live
change_tab, cancel_tab, process_tab = st.tabs(["Change plan", "Cancel", "Process a checkout"],
                                              key="subscription_tab")
with change_tab:
    if not live:
        st.info("There is no live subscription to change. Send a checkout link from the Plans page instead.")
    elif subscription.cancel_at_period_end:
        st.info("The subscription is set to cancel at period end; it can't be changed.")
    elif waiting:
        st.info(WAITING)
    else:
        options = change_options(catalog, customer)
        target = st.selectbox("Move to", options, format_func=lambda option: option.label, index=None,
                              placeholder="Choose a plan and billing interval")
        if target is not None:
            preview = preview_change(catalog, customer, target)
            held = desk.approval_gate(actor, organization_id, Action.CHANGE_PLAN, customer, catalog,
                                      target.price.price_id).needs_approval
            (st.warning if preview.kind == "upgrade" else st.info)(escape_markdown(preview.consequence) + (
                f" It waits for a second person's approval ({desk.policy.approvers_text})." if held else ""))
            if st.button("Request approval…" if held else "Change plan…", type="primary"):
                open_dialog("change", action="change plan", organization_id=organization_id, held=held,
                      organization_name=customer.display_name, label=target.label, current_label=current_label,
                      change_kind=preview.kind, consequence=preview.consequence,
                      parameters={"organization": organization_id, "price": target.price.price_id,
                                  "product": target.plan.product_id})
with cancel_tab:
    if not live:
        st.info("There is no live subscription to cancel.")
    elif subscription.cancel_at_period_end:
        st.info(f"Already set to cancel on {day(subscription.current_period_end)}.")
    elif waiting:
        st.info(WAITING)
    else:
        ends = day(subscription.current_period_end)
        consequence = (f"The subscription stops renewing and ends on {ends}, the end of the current period. "
                       "The customer keeps access until then; nothing is refunded.")
        held = desk.approval_gate(actor, organization_id, Action.CANCEL_SUBSCRIPTION, customer, catalog).needs_approval
        st.write(consequence + (f" It waits for a second person's approval ({desk.policy.approvers_text})."
                                if held else ""))
        if st.button("Request cancellation…" if held else "Cancel subscription…", type="primary"):
            open_dialog("cancel", action="cancel subscription", organization_id=organization_id, held=held,
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
            open_dialog("process", action="process checkout", organization_id=organization_id,
                  organization_name=customer.display_name, masked_session=validation.mask_checkout_session_id(session_id),
                  parameters={"session": session_id})

show_open_dialog(desk, organization_id)
