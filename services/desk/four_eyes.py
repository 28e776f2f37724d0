"""Four-eyes approvals (services/approvals/): a cancel or plan change the policy holds back waits for a second
person, who approves it (the write is then made with the request's idempotency key), rejects it, or lets it expire."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from ..approvals.policy import Gate, gate, snapshot_of
from ..approvals.store import APPROVED, EXPIRED, REJECTED, WAITING, WITHDRAWN, AlreadyWaiting, ApprovalRequest
from ..audit import AuditUnavailable, reading
from ..auth.roles import Action, Actor, PermissionDenied, allowed
from ..directory import APPROVAL
from ..formatting import day, money
from ..inputs import InputRefused, reason_text, typed_confirmation
from ..payments import validation
from ..payments.errors import PaymentsError
from ..payments.models import CustomerInfo, PlanCatalog, PlanChangeResult
from ..plan_change import PlanOption
from .core import DeskCore, WriteOutcomeUnknown, WriteResult


@dataclass(frozen=True)
class RequestReview:
    """An approval request as its approver sees it: the customer re-read now, and whether it still applies."""
    request: ApprovalRequest
    customer: CustomerInfo | None
    stale: str | None  # what changed since the request (it can't be approved), None when nothing did
    read_error: PaymentsError | None = None
    mine: bool = False  # the person looking asked for it (may withdraw, may not approve)


SYSTEM_USER = "billing-desk"  # who the audit log names for what the console does on its own (an expiry)
_DECIDED = {APPROVED: "was already approved", REJECTED: "was rejected", WITHDRAWN: "was withdrawn by its requester",
            EXPIRED: "expired"}


def _decided_sentence(request: ApprovalRequest | None, then: str = " a moment ago; nothing was done.") -> str:
    """A request no longer waiting (decided by someone else, withdrawn, expired): what happened, by whom."""
    said = _DECIDED.get(request.status if request else "", "is no longer waiting")
    who = (f" by {request.decided_by}" if request and request.decided_by and request.status in (APPROVED, REJECTED)
           else "")
    return f"This request {said}{who}{then}"


def _staleness(request: ApprovalRequest, customer: CustomerInfo) -> str | None:
    """One sentence naming what changed on the customer since the request was filed, or None."""
    now_state, then = snapshot_of(customer), request.snapshot
    if now_state["cancelAtPeriodEnd"] and not then.get("cancelAtPeriodEnd"):
        return "the subscription has been set to cancel since"
    if now_state["status"] != then.get("status"):
        return f"its status changed from {then.get('status')} to {now_state['status']}"
    if now_state["priceId"] != then.get("priceId") or now_state["productId"] != then.get("productId"):
        return "its plan changed since"
    if now_state["scheduledPriceId"] != then.get("scheduledPriceId"):
        return "a plan change was scheduled since"
    return None


def _request_summary(held: Gate, customer: CustomerInfo, catalog: PlanCatalog | None, price_id: str | None) -> str:
    """What the write will do, as one line the approver reads (kept with the request, as the requester saw it)."""
    subscription = customer.subscription
    current = catalog.find_price(subscription.price_id) if catalog and subscription else None
    current_label = PlanOption(*current).label if current else (subscription.plan_name if subscription else None)
    ends = day(subscription.current_period_end) if subscription else "the end of the period"
    at_stake = (f" {money(Decimal(held.at_stake_cents) / 100)} a month of revenue is at stake."
                if held.at_stake_cents else "")
    if held.kind == "cancel":
        return f"Cancel {current_label or 'the subscription'}: it stops renewing and ends on {ends}.{at_stake}"
    target = catalog.find_price(price_id) if catalog and price_id else None
    target_label = PlanOption(*target).label if target else price_id
    when = f"at the end of the period ({ends})" if held.kind == "downgrade" else "immediately, prorated"
    return f"{held.kind.capitalize()} from {current_label or 'the current plan'} to {target_label}, {when}.{at_stake}"


class Approvals(DeskCore):
    """Requests for a second person's approval: filing, listing, reviewing and deciding them."""

    def approval_gate(self, actor: Actor, organization_id: str, action: Action, customer: CustomerInfo,
                      catalog: PlanCatalog | None, price_id: str | None = None) -> Gate:
        """Whether this cancel or plan change of the customer (as the page read it) waits for a second person,
        and what it puts at stake; the write itself is checked again on a fresh read."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        return gate(self.policy, customer, catalog, action.value, price_id)

    def request_approval(self, actor: Actor, action: Action, organization_id: str, reason: str,
                         idempotency_key: str, *, price_id: str | None = None, product_id: str | None = None,
                         typed_organization_id: str | None = None) -> ApprovalRequest:
        """Files a request for a write the policy holds back, instead of making it: what it will send, the
        customer as it is now, the reason, and the idempotency key the write will use. The same key again
        returns the same request."""
        if action not in (Action.CANCEL_SUBSCRIPTION, Action.CHANGE_PLAN):
            raise InputRefused("approval", "Only cancellations and plan changes can wait for a second person.")
        organization_id = validation.organization_id(organization_id)
        parameters: dict[str, Any] = {}
        if action == Action.CHANGE_PLAN:
            parameters = {"priceId": validation.price_id(price_id or ""),
                          "productId": validation.product_id(product_id or "")}
        reason = reason_text(reason)
        if action == Action.CANCEL_SUBSCRIPTION:
            typed_confirmation(typed_organization_id, organization_id)
        self._authorize(actor, action, organization_id, parameters, reason)
        held, customer, catalog = self._fresh_gate(action, organization_id, parameters.get("priceId"))
        if not held.needs_approval:
            raise InputRefused("approval", f"This {held.kind} doesn't need a second person's approval: make it "
                                           "directly.")
        summary = _request_summary(held, customer, catalog, parameters.get("priceId"))
        try:
            request, new, expired = self.approvals.file(
                organization_id=organization_id, action=action.value, kind=held.kind, parameters=parameters,
                summary=summary, at_stake_cents=held.at_stake_cents, snapshot=held.snapshot, reason=reason,
                requested_by=actor.username, requester_role=actor.role.value, requester_subject=actor.subject,
                idempotency_key=idempotency_key, expiry=self.policy.expiry)
        except AlreadyWaiting:
            raise InputRefused("approval", f"A request for {organization_id} is already waiting for a second "
                                           "approver; it must be decided or withdrawn first.") from None
        for gone in expired:
            self._record_step(None, "expire request", gone, "")
        if new:
            try:
                self._record_step(actor, "request approval", request, reason)
            except AuditUnavailable:  # no request may wait without its audit row
                self.approvals.decide(request.id, WITHDRAWN, SYSTEM_USER, "system", "The audit log was unavailable.")
                raise
        return request

    def requests_waiting_for(self, actor: Actor, organization_id: str) -> list[ApprovalRequest]:
        """The requests waiting on this organization (the Customer and Subscription pages' notice)."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        with reading():  # one query on every lookup; the expiry sweep only when one of them has run out
            found = self.approvals.waiting(validation.organization_id(organization_id), past_expiry=True)
            moment = self.approvals.clock()
            if any(request.expired_at(moment) for request in found):
                self._expire_due()
            return [request for request in found if not request.expired_at(moment)]

    def approval_requests(self, actor: Actor, decided: bool = False) -> list[ApprovalRequest]:
        """The requests waiting, oldest first; with `decided`, the latest requests of every status, newest first."""
        self._authorize(actor, Action.APPROVE_REQUESTS)
        with reading():
            self._expire_due()
            return self.approvals.recent() if decided else self.approvals.waiting()

    def waiting_for_me(self, actor: Actor) -> int:
        """How many requests this person may decide (waiting, not their own); 0 for those who can't approve."""
        if not allowed(actor.role, Action.APPROVE_REQUESTS) or not self.policy.may_approve(actor.role):
            return 0
        with reading():
            return self.approvals.waiting_count(excluding_requester=actor.username, excluding_subject=actor.subject)

    def review_request(self, actor: Actor, request_id: str) -> RequestReview:
        """One request with its customer re-read now: what will change, and whether it still applies (stale)."""
        request = self._request(actor, request_id)
        try:
            customer = self._read_customer(request.organization_id, APPROVAL)
        except PaymentsError as problem:
            return RequestReview(request, None, None, problem, mine=self._asked(actor, request))
        stale = _staleness(request, customer) if request.status == WAITING else None
        return RequestReview(request, customer, stale, mine=self._asked(actor, request))

    def approve_request(self, actor: Actor, request_id: str, reason: str) -> WriteResult:
        """Approves a waiting request and makes its write with the request's idempotency key, re-reads the
        customer and records the outcome. Refused (one sentence, nothing sent) for a role the policy doesn't
        name, the requester, a request no longer waiting or expired, or one whose customer changed since."""
        request = self._decidable(actor, request_id)
        reason = reason_text(reason)
        action = Action(request.action)
        self._authorize(actor, action, request.organization_id, request.parameters, reason)
        customer = self._read_customer(request.organization_id, APPROVAL)
        stale = _staleness(request, customer)
        if stale and (now_state := self.approvals.get(request.id)) and now_state.status != WAITING:
            raise InputRefused("request", _decided_sentence(now_state))  # decided meanwhile: that is the news
        if stale:
            raise InputRefused("approval", f"This request is stale: {stale}. It can't be approved; reject it, and "
                                           "ask again if the change is still wanted.")
        try:
            self._decide(actor, request, APPROVED, reason, "approve request")
        except AuditUnavailable:  # decided but not recorded, and nothing sent: it waits again
            self.approvals.reopen(request.id, actor.username)
            raise
        parameters = {**request.parameters, "request": request.id, "requestedBy": request.requested_by}
        organization_id = request.organization_id
        call: Callable[[], Any]
        if action == Action.CANCEL_SUBSCRIPTION:
            call = lambda: self.client.cancel_subscription(organization_id, idempotency_key=request.idempotency_key)
        else:
            call = lambda: self.client.update_subscription(organization_id, request.parameters["priceId"],
                                                           request.parameters["productId"],
                                                           idempotency_key=request.idempotency_key)
        try:
            result, audit_id = self._write(actor, action, organization_id, parameters, request.reason,
                                           request.idempotency_key, call)
        except WriteOutcomeUnknown as unknown:
            self.approvals.record_outcome(request.id, "unknown", unknown.user_message, unknown.audit_id)
            raise
        except AuditUnavailable:  # the write's intent couldn't be stored, so nothing was sent: it waits again
            self.approvals.reopen(request.id, actor.username)
            raise
        except Exception as problem:  # refused by the API, the audit log, or anything else: recorded, never stuck
            said = getattr(problem, "user_message", "Unexpected error in Billing Desk.")
            self.approvals.record_outcome(request.id, "failed", said, None)
            raise
        self.approvals.record_outcome(request.id, "succeeded", None, audit_id)
        after, problem = self._reread(organization_id)
        return WriteResult(audit_id, after, problem, change=result if isinstance(result, PlanChangeResult) else None)

    def reject_request(self, actor: Actor, request_id: str, reason: str) -> ApprovalRequest:
        request = self._decidable(actor, request_id)
        reason = reason_text(reason)
        self._decide(actor, request, REJECTED, reason, "reject request")
        return self._request(actor, request.id)

    def withdraw_request(self, actor: Actor, request_id: str) -> ApprovalRequest:
        """The requester takes their request back before anyone decides it."""
        request = self._request(actor, request_id)
        if not self._asked(actor, request):
            raise InputRefused("request", "Only the person who asked can withdraw a request; an approver can "
                                          "reject it.")
        self._decide(actor, request, WITHDRAWN, None, "withdraw request")
        return self._request(actor, request.id)

    def _request(self, actor: Actor, request_id: str) -> ApprovalRequest:
        """A request its requester, or someone who may decide requests, may see."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER)
        if not any(allowed(actor.role, action) for action in (Action.APPROVE_REQUESTS, Action.CHANGE_PLAN,
                                                               Action.CANCEL_SUBSCRIPTION)):
            self._authorize(actor, Action.APPROVE_REQUESTS)  # a role that neither asks nor decides: refused
        with reading():
            self._expire_due()
            request = self.approvals.get(str(request_id or ""))
        if request is None or not (self._asked(actor, request) or allowed(actor.role, Action.APPROVE_REQUESTS)):
            raise InputRefused("request", "There is no approval request with that id that you may see.")
        return request

    def _decidable(self, actor: Actor, request_id: str) -> ApprovalRequest:
        self._authorize(actor, Action.APPROVE_REQUESTS, parameters={"request": str(request_id)[:32]})
        if not self.policy.may_approve(actor.role):
            denied = PermissionDenied(actor.role.value, Action.APPROVE_REQUESTS)
            self._deny(actor, Action.APPROVE_REQUESTS.value, None, denied.user_message,
                       {"request": str(request_id)[:32]})
            raise denied
        request = self._request(actor, request_id)
        if request.status != WAITING:
            raise InputRefused("request", _decided_sentence(request, "; it can't be decided again."))
        if self._asked(actor, request):
            self._deny(actor, Action.APPROVE_REQUESTS.value, request.organization_id,
                       "The requester can't decide their own request.", {"request": request.id})
            raise InputRefused("request", "You asked for this change, so a second person must decide it "
                                          "(you can withdraw it).")
        return request

    def _decide(self, actor: Actor, request: ApprovalRequest, status: str, reason: str | None, step: str) -> None:
        """Moves the request out of `waiting` (one winner if two people click at once) and records the step."""
        if not self.approvals.decide(request.id, status, actor.username, actor.role.value, reason):
            raise InputRefused("request", _decided_sentence(self.approvals.get(request.id)))
        self._record_step(actor, step, request, reason or "")

    def _record_step(self, actor: Actor | None, step: str, request: ApprovalRequest, reason: str) -> None:
        self.audit.record(user=actor.username if actor else SYSTEM_USER, role=actor.role.value if actor else "system",
                          action=step, organization_id=request.organization_id, outcome="succeeded",
                          reason=reason, subject=actor.subject if actor else None, required=actor is not None,
                          parameters={"request": request.id, "write": request.action, "kind": request.kind,
                                      **request.parameters, "requestedBy": request.requested_by,
                                      "atStakeCents": request.at_stake_cents,
                                      "expiresAt": request.expires_at.isoformat()})

    def _expire_due(self) -> None:
        for request in self.approvals.expire_due():
            self._record_step(None, "expire request", request, "")

    @staticmethod
    def _asked(actor: Actor, request: ApprovalRequest) -> bool:
        return request.asked_by(actor.username, actor.subject)
