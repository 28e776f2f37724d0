"""The writes on a subscription: checkout links, processing a paid checkout, plan changes, cancels, and
settling a write whose outcome is unknown."""

from __future__ import annotations

import logging

from ..auth.roles import Action, Actor
from ..inputs import InputRefused, checkout_redirect, reason_text, typed_confirmation
from ..payments import validation
from ..payments.models import CustomerInfo, SessionLink
from .core import DeskCore, WriteResult

log = logging.getLogger("billing_desk.desk")


class Writes(DeskCore):
    """Writes on a subscription, each through `_write` (audited before, re-read after)."""

    def create_checkout_link(self, actor: Actor, organization_id: str, price_id: str, product_id: str,
                             success_url: str | None, cancel_url: str | None, idempotency_key: str) -> SessionLink:
        organization_id = validation.organization_id(organization_id)
        parameters = {"priceId": validation.price_id(price_id), "productId": validation.product_id(product_id),
                      "successUrl": self._redirect(success_url, "success URL"),
                      "cancelUrl": self._redirect(cancel_url, "cancel URL")}
        link, _ = self._write(
            actor, Action.CREATE_CHECKOUT_LINK, organization_id, parameters, "", idempotency_key,
            lambda: self.client.create_checkout(organization_id, parameters["priceId"], parameters["productId"],
                                                parameters["successUrl"], parameters["cancelUrl"],
                                                idempotency_key=idempotency_key),
            summarise=lambda link: {"expiresAt": link.expires_at, "checkoutSession":
                                    validation.mask_checkout_session_id(link.checkout_session_id or "")})
        return link

    def _redirect(self, url: str | None, field: str) -> str | None:
        return checkout_redirect(url, field, self.redirect_hosts, self.loopback_redirects) if url else None

    def process_checkout(self, actor: Actor, checkout_session_id: str, reason: str, idempotency_key: str,
                         expected_organization_id: str | None = None) -> WriteResult:
        """`expected_organization_id`, the organization the person is working on, is where the audit row is
        filed until the API says which organization the session belonged to (so a failure or an unknown
        outcome shows up on that organization's page)."""
        session_id = validation.checkout_session_id(checkout_session_id)
        expected = validation.organization_id(expected_organization_id) if expected_organization_id else None
        reason = reason_text(reason)
        processed, audit_id = self._write(
            actor, Action.PROCESS_CHECKOUT, expected,
            {"checkoutSession": validation.mask_checkout_session_id(session_id)}, reason, idempotency_key,
            lambda: self.client.process_checkout(session_id, idempotency_key=idempotency_key),
            summarise=lambda result: {"organizationId": result.organization_id, "status": result.status,
                                      "subscriptionId": result.subscription_id,
                                      "alreadyProcessed": result.already_processed},
            organization_of=lambda result: result.organization_id)
        customer, problem = self._reread(processed.organization_id)
        return WriteResult(audit_id, customer, problem, processed=processed)

    def change_plan(self, actor: Actor, organization_id: str, price_id: str, product_id: str, reason: str,
                    idempotency_key: str) -> WriteResult:
        organization_id = validation.organization_id(organization_id)
        parameters = {"priceId": validation.price_id(price_id), "productId": validation.product_id(product_id)}
        reason = reason_text(reason)
        self._unless_held_back(actor, Action.CHANGE_PLAN, organization_id, parameters, reason)
        change, audit_id = self._write(
            actor, Action.CHANGE_PLAN, organization_id, parameters, reason, idempotency_key,
            lambda: self.client.update_subscription(organization_id, parameters["priceId"], parameters["productId"],
                                                    idempotency_key=idempotency_key),
            summarise=lambda result: {"change": result.change, "effective": result.effective,
                                      "effectiveAt": result.effective_at, "prorationAmount": result.proration_amount})
        customer, problem = self._reread(organization_id)
        return WriteResult(audit_id, customer, problem, change=change)

    def cancel_subscription(self, actor: Actor, organization_id: str, reason: str, typed_organization_id: str,
                            idempotency_key: str) -> WriteResult:
        organization_id = validation.organization_id(organization_id)
        reason = reason_text(reason)
        typed_confirmation(typed_organization_id, organization_id)
        self._unless_held_back(actor, Action.CANCEL_SUBSCRIPTION, organization_id, {}, reason)
        _, audit_id = self._write(actor, Action.CANCEL_SUBSCRIPTION, organization_id, {}, reason, idempotency_key,
                                  lambda: self.client.cancel_subscription(organization_id,
                                                                          idempotency_key=idempotency_key))
        customer, problem = self._reread(organization_id)
        return WriteResult(audit_id, customer, problem)

    def settle_unknown(self, actor: Actor, audit_id: int, organization_id: str) -> CustomerInfo:
        """Re-reads the customer of a write whose outcome is unknown and records who looked and what they saw.
        Only that organization's row, and only while it is unknown and unsettled."""
        organization_id = validation.organization_id(organization_id)
        self._authorize(actor, Action.SETTLE_UNKNOWN_OUTCOME, organization_id, {"auditId": audit_id})
        customer = self._read_customer(organization_id)
        plan = customer.subscription.plan_name if customer.subscription else None
        seen = f"{actor.username}: status {customer.status}, plan {plan or '—'}"
        if not self.audit.settle(audit_id, organization_id, seen):
            raise InputRefused("audit row", "That write is not waiting to be settled for this organization; "
                                            "someone may have settled it already.")
        try:  # an approved write: its request says so too
            if request_id := self.audit.approval_request_of(audit_id):
                self.approvals.settle_outcome(request_id, audit_id, seen)
        except Exception:  # settled in the audit log, which is what counts; the request still says unknown
            log.warning("Settled audit row %s, but its approval request could not record it.", audit_id,
                        exc_info=True)
        return customer
