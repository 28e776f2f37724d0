"""Portal links: e-mailed to the customer by every role; shown on screen only to who may cancel unaided
(services/portal_mail.py)."""

from __future__ import annotations

from .. import portal_mail
from ..approvals.policy import gate
from ..auth.roles import Action, Actor, allowed
from ..inputs import InputRefused
from ..outbox import Message
from ..payments import validation
from ..payments.models import CustomerInfo, PlanCatalog, SessionLink
from ..portal_mail import PortalLinkSent
from .core import DeskCore


class PortalLinks(DeskCore):
    """Portal links to the customer, and when one may be shown instead."""

    def send_portal_link(self, actor: Actor, organization_id: str, idempotency_key: str) -> PortalLinkSent:
        """Makes a portal link and queues it, by e-mail, to the customer's billing address; nobody at the console
        sees it. The same key again (a double click, a retry) queues it once."""
        organization_id = validation.organization_id(organization_id)
        self._authorize(actor, Action.SEND_PORTAL_LINK, organization_id)
        if self.outbox is None:
            raise InputRefused("portal", "Billing Desk has no mail server configured, so it can't e-mail portal links: "
                                         "ask an admin to set BILLING_DESK_SMTP_HOST.")
        customer = self._read_customer(organization_id)
        recipient = portal_mail.recipient_of(customer)

        def send() -> PortalLinkSent:
            link = self.client.create_portal(organization_id, idempotency_key=idempotency_key)
            message_id = self.outbox.enqueue(  # type: ignore[union-attr]
                message_id=portal_mail.message_id_for(idempotency_key), kind="portal link",
                organization_id=organization_id, requested_by=actor.username, recipient=recipient,
                subject=portal_mail.SUBJECT, body=portal_mail.body(customer, link))
            return PortalLinkSent(recipient, message_id, link.expires_at)

        sent, _ = self._write(actor, Action.SEND_PORTAL_LINK, organization_id, {"to": recipient}, "", idempotency_key,
                              send, summarise=lambda sent: {"message": sent.message_id, "expiresAt": sent.expires_at},
                              recorded_as="portal link e-mailed")
        self.on_mail_queued()
        return sent

    def portal_links_sent(self, actor: Actor, organization_id: str) -> list[Message]:
        """The portal links e-mailed to this customer lately, newest first, with how their delivery went."""
        self._authorize(actor, Action.SEND_PORTAL_LINK, organization_id)
        return self.outbox.recent(organization_id, kind="portal link") if self.outbox is not None else []

    def portal_link_refusal(self, actor: Actor, organization_id: str, customer: CustomerInfo | None = None,
                            catalog: PlanCatalog | None = None) -> str | None:
        """Why this person may not see a portal link for this customer (None: they may). With `customer` (as the
        page read it) the answer is for the page; without, the customer is read fresh (the write's own check)."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        if not allowed(actor.role, Action.SHOW_PORTAL_LINK) or not allowed(actor.role, Action.CANCEL_SUBSCRIPTION):
            return ("A portal link lets whoever holds it cancel the subscription, so your role sends it to the "
                    "customer instead of seeing it.")
        if self.policy.kinds & {"downgrade", "upgrade"}:  # the portal changes plans too: any of those may be held
            return ("A portal link lets whoever holds it change the plan or cancel, and plan changes need a second "
                    "person's approval here, so the link goes to the customer instead.")
        if "cancel" not in self.policy.kinds:
            held = False
        elif customer is not None:
            held = gate(self.policy, customer, catalog, Action.CANCEL_SUBSCRIPTION.value, None).needs_approval
        else:
            held = self._fresh_gate(Action.CANCEL_SUBSCRIPTION, organization_id, None)[0].needs_approval
        if held:
            return ("A portal link lets whoever holds it cancel the subscription, and cancelling this customer needs "
                    "a second person's approval, so the link goes to the customer instead.")
        return None

    def show_portal_link(self, actor: Actor, organization_id: str, idempotency_key: str) -> SessionLink:
        """The portal link on screen, for a person who may cancel this customer without a second person."""
        organization_id = validation.organization_id(organization_id)
        self._authorize(actor, Action.SHOW_PORTAL_LINK, organization_id)
        if refusal := self.portal_link_refusal(actor, organization_id):
            self._deny(actor, "portal link shown", organization_id, refusal, {}, "")
            raise InputRefused("portal", refusal)
        link, _ = self._write(actor, Action.SHOW_PORTAL_LINK, organization_id, {}, "", idempotency_key,
                              lambda: self.client.create_portal(organization_id, idempotency_key=idempotency_key),
                              summarise=lambda link: {"expiresAt": link.expires_at}, recorded_as="portal link shown")
        return link
