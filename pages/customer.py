"""Customer: look up an organization and see its subscription, card and contact at a glance.

The lookup box and the customer below it are one fragment: a lookup, a recent-lookup pill, Refresh or a
portal link reruns only them, not the router and the sidebar around them (docs/performance.md). What must
change the whole page does so explicitly: the Subscription actions button switches page (a full run of that
page, `?org=` set), and the `?org=` in the address follows each lookup from inside the fragment.
"""

from __future__ import annotations

import logging

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from services.auth.roles import Action, Actor, Page, allowed
from services.formatting import card, customer_notices, day, price_with_interval
from services.run_log import RunTimer
from services.tables import plan_name
from ui import guard, organization, reads, session
from ui import portal as portal_ui
from ui.approvals import waiting_notice
from ui.console import get_console
from ui.directory import directory_panel
from ui.history import history
from ui.present import customer_heading, escape_markdown, facts_html
from ui.widgets import fresh_link_panel, stop_on_read_error

HINT = ("Find a customer by organization id, customer id, e-mail or name to see their subscription, card and "
        "contact details.")
# The run log names the fragment's own runs apart from the page's full runs (app.py logs those).
LOOKUP_RUN = "Customer lookup"

session.require_page(Page.CUSTOMER)
desk = get_console().desk

st.title("Customer")


def _customer_panel(actor: Actor) -> None:
    organization_id = organization.picker()
    if not organization_id:
        st.info(HINT, icon=":material/search:")
        directory_panel(desk, actor, None)
        return
    try:
        customer = reads.customer(actor, organization_id)
    except Exception as problem:  # shown as a sentence, never a traceback
        stop_on_read_error(problem, f"look up {organization_id}")

    subscription = customer.subscription
    st.markdown(customer_heading(customer.display_name, customer.status,
                                 (customer.organization_id, customer.customer_id)))

    for kind, sentence in customer_notices(customer):
        getattr(st, kind)(escape_markdown(sentence))
    waiting_notice(desk, actor, organization_id)

    catalog = None
    if subscription and not subscription.plan_name:
        try:
            catalog = reads.plans(actor, organization_id)
        except Exception:
            catalog = None  # the plan's id is shown instead of its name
    if subscription and subscription.status == "canceled":
        period = ("Canceled on", day(subscription.canceled_at or subscription.current_period_end))
    else:
        ending = subscription and subscription.cancel_at_period_end
        period = ("Ends" if ending else "Current period ends",
                  day(subscription.current_period_end) if subscription else "—")
    # One element for all six: each element is a message for the browser to render (docs/performance.md).
    st.html(facts_html([
        [("Plan", plan_name(customer, catalog) or "No plan"),
         ("Price", price_with_interval(subscription.amount, subscription.interval, subscription.currency)
          if subscription and subscription.unit_amount is not None else None),
         period],
        [("Card", card(customer)), ("Billing email", customer.email),
         ("Address", customer.address.one_line() if customer.address else None)]]))

    with st.container(horizontal=True):
        portal_ui.send_button(desk, actor, customer)
        shown = portal_ui.show_button(desk, actor, customer)
        # A callback: the cache is cleared before this same run reads again, with no second run after it.
        st.button("Refresh", key="refresh_customer", icon=":material/refresh:", on_click=guard.callback(reads.forget_reads),
                  help="Read this customer again from the API.")
        if allowed(actor.role, Action.CHANGE_PLAN) and st.button("Subscription actions", key="to_subscription",
                                                                icon=":material/tune:"):
            st.switch_page("pages/subscription.py", query_params={"org": organization_id})  # a full run, there
    if shown:
        portal_ui.show_link(desk, actor, organization_id)
    portal_ui.delivery_line(desk, actor, organization_id)
    fresh_link_panel("portal", organization_id)
    history(desk, actor, organization_id)
    directory_panel(desk, actor, organization_id)


@guard.fragment(page=Page.CUSTOMER)
def lookup(actor: Actor) -> None:
    """The lookup and the customer. Its own runs (not the page's full runs, which app.py times) are timed here
    for the run log; every run gets the actor from the session checked now (ui/guard.py)."""
    context = get_script_run_ctx()
    own_run = context is not None and bool(context.fragment_ids_this_run)
    timer = RunTimer() if own_run else None
    try:
        _customer_panel(actor)
    except Exception:  # as app.py does for a full run: a sentence, never a traceback
        logging.getLogger("billing_desk").exception("Page Customer failed")
        st.error("Something went wrong on this page. Refresh to try again; if it persists, tell the engineering "
                 "team.", icon=":material/error:")
    finally:
        if timer is not None:
            timer.finish(LOOKUP_RUN)


lookup()
