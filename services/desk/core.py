"""The desk's core: the role check every operation starts with and the one shape every write takes.

A write checks the actor's role, validates its input, stores its audit row before the API call (AuditUnavailable:
the call is not made), calls the API with the intent's idempotency key, completes the row with the outcome and
re-reads the customer. Each concern of the desk (customers.py, writes.py, ...) builds on `DeskCore`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, TypeVar

from ..approvals.policy import ApprovalPolicy, Gate, gate
from ..approvals.store import ApprovalBook
from ..audit import AuditLog
from ..auth.roles import Action, Actor, PermissionDenied, require
from ..directory import LOOKUP, Directory
from ..inputs import InputRefused
from ..jobs.store import JobStore
from ..outbox import Outbox
from ..payments.client import PaymentsClient
from ..payments.errors import (ApiConnectionError, ApiTimeoutError, NotFoundError, PaymentsError,
                               UnexpectedResponseError)
from ..payments.models import CustomerInfo, PlanCatalog, PlanChangeResult, ProcessResult

T = TypeVar("T")
log = logging.getLogger("billing_desk.desk")


@dataclass(frozen=True)
class WriteResult:
    audit_id: int
    customer: CustomerInfo | None  # re-read after the write; None if the re-read failed
    reread_error: PaymentsError | None = None
    change: PlanChangeResult | None = None
    processed: ProcessResult | None = None


class WriteOutcomeUnknown(PaymentsError):
    """The request went out but no usable answer came back: the write may have happened."""

    def __init__(self, cause: PaymentsError, action: Action, audit_id: int | None = None) -> None:
        super().__init__(f"No usable answer to {action.value}: {cause.message}", code=cause.code,
                         request_id=cause.request_id, operation=action.value)
        self.action = action
        self.audit_id = audit_id  # the write's audit row: settling it later names this write

    @property
    def user_message(self) -> str:
        return ("The Payments API didn't confirm it, so it may or may not have happened. "
                "Re-read the customer before doing anything else; trying again is safe, it can't happen twice.")


def _outcome_unknown(error: PaymentsError) -> bool:
    """A timeout after sending, or an unreadable answer, leaves a write's outcome unknown; a refused
    connection (nothing sent) does not."""
    if isinstance(error, (ApiTimeoutError, UnexpectedResponseError)):
        return True
    return isinstance(error, ApiConnectionError) and error.code == "connection_broken"


def _error_text(error: PaymentsError) -> str:
    detail = ", ".join(part for part in (f"code {error.code}" if error.code else "",
                                         f"request {error.request_id}" if error.request_id else "") if part)
    return f"{error.user_message} ({detail})" if detail else error.user_message


class DeskCore:
    """What every concern of the desk shares: the API client, the audit log and the stores; the role check each
    operation starts with; the shape every write takes (audited before, re-read after); the approval policy's
    check a write must pass."""

    def __init__(self, client: PaymentsClient, audit: AuditLog, *, redirect_hosts: tuple[str, ...] = (),
                 loopback_redirects: bool = False, jobs: JobStore | None = None,
                 on_job_started: Callable[[], object] = lambda: None, policy: ApprovalPolicy | None = None,
                 approvals: ApprovalBook | None = None, outbox: Outbox | None = None,
                 on_mail_queued: Callable[[], object] = lambda: None, directory: Directory | None = None) -> None:
        """`redirect_hosts`: where checkout links may send customers; `loopback_redirects`: the sandbox's own
        pages on 127.0.0.1 are allowed too. `jobs`: the bulk jobs' store (by default on the audit log's);
        `on_job_started` wakes this process's job workers. `policy`: which writes wait for a second person
        (services/approvals/policy.py; the console passes its configuration's, by default cancel and downgrade;
        none when not given); `approvals`: the requests' store (by default on the audit log's). `outbox`: where
        e-mail to customers is queued (None: no mail server, so portal links can't be sent); `on_mail_queued`
        wakes this process's delivery worker. `directory`: where every customer read is noted (by default on the
        audit log's store)."""
        self.client, self.audit = client, audit
        self.note_window = timedelta(hours=1)  # the notes limit's window
        self.policy = policy if policy is not None else ApprovalPolicy(kinds=frozenset())  # none unless configured
        self.approvals = approvals or ApprovalBook(audit.engine)
        self.jobs = jobs or JobStore(audit.engine)
        self.on_job_started = on_job_started
        self.outbox, self.on_mail_queued = outbox, on_mail_queued
        self.redirect_hosts, self.loopback_redirects = redirect_hosts, loopback_redirects
        self.directory = directory if directory is not None else Directory(audit.engine)

    # --- every read of a customer: noted in the directory (services/directory/) ----------------------------
    def _read_customer(self, organization_id: str, read_by: str = LOOKUP) -> CustomerInfo:
        """The customer as the API has it now; the directory notes it (or that the organization is gone)."""
        try:
            customer = self.client.get_customer(organization_id)
        except NotFoundError:
            self.directory.note_gone(organization_id, read_by)
            raise
        self.directory.note(customer, read_by)
        return customer

    # --- the role check every operation starts with ------------------------------------------------------
    def _authorize(self, actor: Actor, action: Action, organization_id: str | None = None,
                   parameters: dict[str, Any] | None = None, reason: str = "") -> None:
        try:
            require(actor.role, action)
        except PermissionDenied as denied:
            self.audit.record(user=actor.username, role=actor.role.value, action=action.value,
                              organization_id=organization_id, outcome="denied", error=denied.user_message,
                              parameters=parameters or {}, reason=reason, subject=actor.subject)
            raise

    @property
    def api_url(self) -> str:
        """Which Payments API this desk drives (keeps cached reads of two APIs apart)."""
        return self.client.base_url

    @property
    def requests_per_minute(self) -> int:
        """The API's rate limit as last announced in its headers (1,000 until it says otherwise)."""
        return self.client.pacer.limit or 1000

    # --- the approval policy every cancel and plan change passes (four_eyes.py files and decides requests) ----
    def _fresh_gate(self, action: Action, organization_id: str, price_id: str | None) -> tuple[Gate, CustomerInfo,
                                                                                               PlanCatalog | None]:
        customer = self._read_customer(organization_id)
        needs_catalog = action == Action.CHANGE_PLAN or self.policy.threshold_cents is not None
        catalog = self.client.list_plans(organization_id) if needs_catalog else None
        return gate(self.policy, customer, catalog, action.value, price_id), customer, catalog

    def _unless_held_back(self, actor: Actor, action: Action, organization_id: str, parameters: dict[str, Any],
                          reason: str) -> None:
        """Refuses a write the policy holds back for a second person (read fresh, so a page can't skip it)."""
        concerned = {"cancel"} if action == Action.CANCEL_SUBSCRIPTION else {"downgrade", "upgrade"}
        if not self.policy.kinds & concerned:  # nothing this write could be is held back: no reads needed
            return
        self._authorize(actor, action, organization_id, parameters, reason)
        held, _, _ = self._fresh_gate(action, organization_id, parameters.get("priceId"))
        if held.needs_approval:
            refusal = (f"A {held.kind} needs a second person's approval ({self.policy.approvers_text}): request it "
                       "instead, and it is made once approved.")
            self._deny(actor, action.value, organization_id, refusal, parameters, reason)
            raise InputRefused("approval", refusal)

    def _deny(self, actor: Actor, action: str, organization_id: str | None, error: str,
              parameters: dict[str, Any], reason: str = "") -> None:
        """A refusal that is not a role's (the policy, the requester's own request), recorded as one."""
        self.audit.record(user=actor.username, role=actor.role.value, action=action, organization_id=organization_id,
                          outcome="denied", error=error, parameters=parameters, reason=reason, subject=actor.subject)

    # --- the shape every write shares ----------------------------------------------------------------------
    def _write(self, actor: Actor, action: Action, organization_id: str | None, parameters: dict[str, Any],
               reason: str, idempotency_key: str, call: Callable[[], T],
               summarise: Callable[[T], dict[str, Any]] | None = None,
               organization_of: Callable[[T], str | None] | None = None,
               recorded_as: str | None = None) -> tuple[T, int]:
        """`recorded_as`: the audit log's name for the action, when it isn't the permission's own."""
        self._authorize(actor, action, organization_id, parameters, reason)
        audit_id = self.audit.begin(user=actor.username, role=actor.role.value, action=recorded_as or action.value,
                                    organization_id=organization_id, parameters=parameters, reason=reason,
                                    idempotency_key=idempotency_key, subject=actor.subject)
        try:
            result = call()
        except PaymentsError as error:
            if _outcome_unknown(error):
                unknown = WriteOutcomeUnknown(error, action, audit_id)
                self.audit.complete(audit_id, "unknown", unknown.user_message + f" ({error.code or 'no answer'})",
                                    error.request_id)
                raise unknown from None
            self.audit.complete(audit_id, "failed", _error_text(error), error.request_id)
            raise
        except Exception:
            self.audit.complete(audit_id, "failed", "Unexpected error in Billing Desk.")
            raise
        self.audit.complete(audit_id, "succeeded", result=summarise(result) if summarise else None,
                            organization_id=organization_of(result) if organization_of else None)
        return result, audit_id

    def _reread(self, organization_id: str | None) -> tuple[CustomerInfo | None, PaymentsError | None]:
        if not organization_id:
            return None, None
        try:
            return self._read_customer(organization_id), None
        except PaymentsError as problem:
            return None, problem
