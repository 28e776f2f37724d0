"""Customer: look up an organization and see its subscription, card and contact at a glance."""

from __future__ import annotations

from datetime import datetime, timezone

import streamlit as st

from services import intents
from services.formatting import card, customer_notices, day, escape_markdown, price_with_interval
from services.tables import plan_name
from services.auth.roles import Action, Page, allowed
from ui import session, reads, organization
from ui.console import get_runtime
from ui.widgets import field, fresh_link_panel, show_error, status_badge, stop_on_read_error

actor = session.require_page(Page.CUSTOMER)
desk = get_runtime().desk

st.title("Customer")
organization_id = organization.chosen_or_stop(
    "Look up an organization by its id to see its subscription, card and contact details.")

try:
    customer = reads.customer(actor, organization_id)
except Exception as problem:  # shown as a sentence, never a traceback
    stop_on_read_error(problem, f"look up {organization_id}")

subscription = customer.subscription
heading, badge = st.columns([5, 1], vertical_alignment="center")
heading.subheader(escape_markdown(customer.display_name))
with badge:
    status_badge(customer)
st.caption(" · ".join(escape_markdown(part) for part in (customer.organization_id, customer.customer_id) if part))

for kind, sentence in customer_notices(customer):
    getattr(st, kind)(sentence)

with st.container(border=True):
    plan_column, price_column, period_column = st.columns(3)
    with plan_column:
        catalog = None
        if subscription and not subscription.plan_name:
            try:
                catalog = reads.plans(actor, organization_id)
            except Exception:
                catalog = None  # the plan's id is shown instead of its name
        field("Plan", plan_name(customer, catalog) or "No plan")
    with price_column:
        field("Price", price_with_interval(subscription.amount, subscription.interval, subscription.currency)
              if subscription and subscription.unit_amount is not None else "—")
    with period_column:
        if subscription and subscription.status == "canceled":
            field("Canceled on", day(subscription.canceled_at or subscription.current_period_end))
        else:
            ending = subscription and subscription.cancel_at_period_end
            field("Ends" if ending else "Current period ends",
                  day(subscription.current_period_end) if subscription else "—")
with st.container(border=True):
    card_column, email_column, address_column = st.columns(3)
    with card_column:
        field("Card", card(customer))
    with email_column:
        field("Billing email", customer.email)
    with address_column:
        field("Address", customer.address.one_line() if customer.address else None)

portal_column, refresh_column, actions_column, _ = st.columns([1.3, 1, 1.6, 2])
if portal_column.button("Create portal link", key="create_portal_link", icon=":material/link:", type="primary",
                        help="A link to the customer's billing portal, where they update their card or cancel."):
    existing = st.session_state.get("fresh_link")
    if existing and existing["expires_at"] and existing["expires_at"] < datetime.now(timezone.utc):
        intents.retire(st.session_state, "portal", {"organization": organization_id})  # expired: make a new one
    key = intents.key_for(st.session_state, "portal", {"organization": organization_id})
    try:
        link = desk.create_portal_link(actor, organization_id, key)
    except Exception as problem:
        show_error(problem, "create a portal link")
    else:
        st.session_state["fresh_link"] = {"kind": "portal", "organization_id": organization_id, "url": link.url,
                                          "expires_at": link.expires_at,
                                          "intent": ("portal", {"organization": organization_id}),
                                          "expires": f"{link.expires_at:%H:%M} UTC" if link.expires_at else None}
if refresh_column.button("Refresh", key="refresh_customer", icon=":material/refresh:",
                         help="Read this customer again from the API."):
    reads.forget_reads()
    st.rerun()
if allowed(actor.role, Action.CHANGE_PLAN) and actions_column.button("Subscription actions",
                                                                        key="to_subscription", icon=":material/tune:"):
    st.switch_page("pages/subscription.py", query_params={"org": organization_id})
fresh_link_panel("portal", organization_id)
