"""The Customer page's portal-link actions: e-mail the link to the customer (everyone), or see it (only whoever may
cancel this customer without a second person: a portal link can cancel). services/portal_mail.py says why."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import streamlit as st

from services import intents
from services.auth.roles import Action, Actor, allowed
from services.desk import BillingDesk
from services.payments.models import CustomerInfo

from .present import escape_markdown
from .widgets import remember_fresh_link, show_error

SENT_SHOWN_FOR = timedelta(hours=24)  # a sent link's delivery line stays under the customer this long


def send_button(desk: BillingDesk, actor: Actor, customer: CustomerInfo) -> None:
    """A popover that names the recipient and what the link allows; its button sends it."""
    organization_id = customer.organization_id
    with st.popover("E-mail portal link", icon=":material/forward_to_inbox:", type="primary"):
        if not customer.email:
            st.warning("This customer has no billing e-mail address, so there is nowhere to send the link.",
                       icon=":material/unsubscribe:")
            return
        st.markdown(f"Sends a link to the customer's billing portal to **{escape_markdown(customer.email)}**. There "
                    "they can update their card, see invoices or cancel. Nobody at Billing Desk sees the link.")
        if st.button(f"Send to {escape_markdown(customer.email)}", key="send_portal_link", icon=":material/send:",
                     type="primary"):
            intent = ("portal email", {"organization": organization_id})
            try:
                sent = desk.send_portal_link(actor, organization_id, intents.key_for(st.session_state, *intent))
            except Exception as problem:
                show_error(problem, "send the portal link")
            else:
                intents.retire(st.session_state, *intent)  # the next click is a new e-mail
                st.toast(f"Portal link queued for {escape_markdown(sent.recipient)}.", icon=":material/send:")


def show_button(desk: BillingDesk, actor: Actor, customer: CustomerInfo) -> bool:
    """"See portal link": for whoever may cancel this customer without a second person; for others it is off,
    its tooltip saying why. True when clicked."""
    if not allowed(actor.role, Action.SHOW_PORTAL_LINK):
        return False  # support: the link only ever goes to the customer
    refusal = desk.portal_link_refusal(actor, customer.organization_id, customer)
    return st.button("See portal link", key="see_portal_link", icon=":material/link:", disabled=refusal is not None,
                     help=refusal or "Shows the link here, to open or copy. It can cancel the subscription, so only "
                                     "people who may cancel this customer without a second person see it. Audited.")


def show_link(desk: BillingDesk, actor: Actor, organization_id: str) -> None:
    existing = st.session_state.get("fresh_link")
    if existing and existing["expires_at"] and existing["expires_at"] < datetime.now(timezone.utc):
        intents.retire(st.session_state, "portal", {"organization": organization_id})  # expired: make a new one
    intent = ("portal", {"organization": organization_id})
    try:
        link = desk.show_portal_link(actor, organization_id, intents.key_for(st.session_state, *intent))
    except Exception as problem:
        show_error(problem, "show a portal link")
    else:
        remember_fresh_link("portal", organization_id, link, intent)


def delivery_line(desk: BillingDesk, actor: Actor, organization_id: str) -> None:
    """The newest portal link e-mailed to this customer in the last day, and how its delivery went."""
    try:
        sent = desk.portal_links_sent(actor, organization_id)
    except Exception:
        return  # a missing status line is no reason to spoil the page
    recent = [message for message in sent if message.created_at and
              datetime.now(timezone.utc) - message.created_at < SENT_SHOWN_FOR]
    if not recent:
        return
    message = recent[0]
    when = f"{message.created_at:%d %b, %H:%M} UTC" if message.created_at else ""
    state = {"sent": "delivered to the mail server", "queued": "waiting to be sent", "sending": "being sent",
             "failed": "could not be delivered"}.get(message.status, message.status)
    icon = ":material/error:" if message.status == "failed" else ":material/mark_email_read:"
    st.caption(f"{icon} Portal link e-mailed to {escape_markdown(message.recipient)} on {when}: {state}"
               + (f" ({escape_markdown(message.last_error)})" if message.status == "failed" and message.last_error
                  else "."))
