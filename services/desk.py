"""Billing Desk's operations: every read and write a person can make, in one place.

Pages reach the Payments API and the store only through `BillingDesk`; `ui/reads.py` only caches around it.
Every operation takes the `Actor` and checks the role first (a refusal raises PermissionDenied and is recorded
in the audit log). Every write then:
1. validates its input (InvalidInputError / InputRefused name the field);
2. stores its audit row before the API call (AuditUnavailable: the call is not made);
3. calls the API with the intent's idempotency key;
4. completes the audit row with the outcome, and re-reads the customer so the page shows the resulting state.
Checkout and portal URLs are returned to the caller once and never stored; audit rows hold no URL or key.

| operation                 | action (services/auth/roles.py) | audited        |
|---------------------------|---------------------------------|----------------|
| customer, plans           | LOOK_UP_CUSTOMER, VIEW_PLANS    | refusals       |
| unsettled_writes, organization_version | LOOK_UP_CUSTOMER   | refusals       |
| start_bulk_job, bulk_jobs, bulk_job | BULK_LOOKUP (everyone's: SEE_ALL_BULK_JOBS) | starts, refusals |
| stop_bulk_job, bulk_job_export | BULK_LOOKUP (a summary: FINANCE_SUMMARY) | stops, every download |
| audit_events, audit_page, audit_export, audit_choices, audit_csv, audit_chain_status | READ_AUDIT_LOG | refusals |
| send_portal_link, portal_links_sent | SEND_PORTAL_LINK      | every attempt  |
| show_portal_link, portal_link_refusal | SHOW_PORTAL_LINK, and CANCEL_SUBSCRIPTION not held back by the policy | every attempt ("portal link shown") |
| create_checkout_link      | CREATE_CHECKOUT_LINK            | every attempt  |
| process_checkout          | PROCESS_CHECKOUT                | every attempt  |
| change_plan               | CHANGE_PLAN                     | every attempt  |
| cancel_subscription       | CANCEL_SUBSCRIPTION             | every attempt  |
| settle_unknown            | SETTLE_UNKNOWN_OUTCOME          | the settled row |
| approval_gate, approval_requests, requests_waiting_for, waiting_for_me | LOOK_UP_CUSTOMER (lists: APPROVE_REQUESTS) | refusals, expiries |
| request_approval          | the write's own (CHANGE_PLAN, CANCEL_SUBSCRIPTION) | the request |
| review_request            | APPROVE_REQUESTS, or the requester | refusals |
| approve_request           | APPROVE_REQUESTS and the write's own, the policy's approver roles, never the requester | the approval, then the write (every attempt) |
| reject_request, withdraw_request | APPROVE_REQUESTS / the requester | the decision |
| customer_history, customer_bulk_lookups | VIEW_CUSTOMER_HISTORY    | refusals       |
| add_note                  | ADD_NOTE                        | the note (it is an audit row) |

Four-eyes approvals (services/approvals/): a cancel or plan change the policy holds back is refused here with one
sentence unless it comes through `approve_request`, which performs it with the request's idempotency key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, BinaryIO, Callable, TypeVar

import pandas as pd

from . import exports
from .audit import (PAGE_SIZE, AuditCursor, AuditFilter, AuditLog, AuditPage, AuditSummary, AuditUnavailable,
                    ChainStatus, approval_request_named, reading)
from .auth.roles import Action, Actor, PermissionDenied, allowed, require
from .bulk import RESULT_COLUMNS
from .approvals.policy import ApprovalPolicy, Gate, gate, snapshot_of
from .approvals.store import (APPROVED, EXPIRED, REJECTED, WAITING, WITHDRAWN, AlreadyWaiting, ApprovalBook,
                              ApprovalRequest)
from .jobs.store import Job, JobStore
from . import tables
from .tables import CUSTOMER_COLUMNS, typed_customer_frame
from .inputs import InputRefused, checkout_redirect, note_text, reason_text, typed_confirmation
from .payments import validation
from .payments.client import PaymentsClient
from .payments.errors import ApiConnectionError, ApiTimeoutError, PaymentsError, UnexpectedResponseError
from .payments.models import CustomerInfo, PlanCatalog, PlanChangeResult, ProcessResult, SessionLink
from .formatting import day, money
from .plan_change import PlanOption
from . import portal_mail
from .outbox import Message, Outbox
from .portal_mail import PortalLinkSent

T = TypeVar("T")
log = logging.getLogger("billing_desk.desk")
NOTES_PER_HOUR = 20  # notes one person may add in an hour (their length: inputs.py)
BULK_LOOKUPS_SHOWN = 100  # a customer's history lists the newest this many bulk lookups that included them
# A job's results table: the columns the Bulk page showed, then the rest of each customer's record (with the
# amounts the finance summary needs, services/tables.py).
JOB_COLUMNS = list(dict.fromkeys(RESULT_COLUMNS + CUSTOMER_COLUMNS + list(getattr(tables, "FINANCE_COLUMNS", []))))


@dataclass(frozen=True)
class BulkJobView:
    job: Job
    results: pd.DataFrame  # one row per id fetched, in the order given (empty when not asked for)


def _job_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return typed_customer_frame(records, JOB_COLUMNS)


def _naive_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Excel has no time zones: UTC times written as plain times (every time in the console is UTC)."""
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


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


@dataclass(frozen=True)
class RequestReview:
    """An approval request as its approver sees it: the customer re-read now, and whether it still applies."""
    request: ApprovalRequest
    customer: CustomerInfo | None
    stale: str | None  # what changed since the request (it can't be approved), None when nothing did
    read_error: PaymentsError | None = None
    mine: bool = False  # the person looking asked for it (may withdraw, may not approve)


HISTORY_COLUMNS = ["at", "user", "action", "reason", "outcome", "request", "request_id"]


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


class BillingDesk:
    def __init__(self, client: PaymentsClient, audit: AuditLog, *, redirect_hosts: tuple[str, ...] = (),
                 loopback_redirects: bool = False, jobs: JobStore | None = None,
                 on_job_started: Callable[[], object] = lambda: None, policy: ApprovalPolicy | None = None,
                 approvals: ApprovalBook | None = None, outbox: Outbox | None = None,
                 on_mail_queued: Callable[[], object] = lambda: None) -> None:
        """`redirect_hosts`: where checkout links may send customers; `loopback_redirects`: the sandbox's own
        pages on 127.0.0.1 are allowed too. `jobs`: the bulk jobs' store (by default on the audit log's);
        `on_job_started` wakes this process's job workers. `policy`: which writes wait for a second person
        (services/approvals/policy.py; the console passes its configuration's, by default cancel and downgrade;
        none when not given); `approvals`: the requests' store (by default on the audit log's). `outbox`: where
        e-mail to customers is queued (None: no mail server, so portal links can't be sent); `on_mail_queued`
        wakes this process's delivery worker."""
        self.client, self.audit = client, audit
        self.note_window = timedelta(hours=1)  # the notes limit's window
        self.policy = policy if policy is not None else ApprovalPolicy(kinds=frozenset())  # none unless configured
        self.approvals = approvals or ApprovalBook(audit.engine)
        self.jobs = jobs or JobStore(audit.engine)
        self.on_job_started = on_job_started
        self.outbox, self.on_mail_queued = outbox, on_mail_queued
        self.redirect_hosts, self.loopback_redirects = redirect_hosts, loopback_redirects

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

    # --- reads ------------------------------------------------------------------------------------------
    def customer(self, actor: Actor, organization_id: str) -> CustomerInfo:
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        return self.client.get_customer(organization_id)

    def plans(self, actor: Actor, organization_id: str) -> PlanCatalog:
        self._authorize(actor, Action.VIEW_PLANS, organization_id)
        return self.client.list_plans(organization_id)

    def organization_version(self, actor: Actor, organization_id: str) -> int | None:
        """Changes whenever any replica records a write on this organization (the newest audit row about it):
        cached reads are keyed on it, so a write on one replica is seen at once on every other."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        return self.audit.organization_version(organization_id)

    def unsettled_writes(self, actor: Actor, organization_id: str) -> list[dict[str, Any]]:
        """Writes on this organization whose outcome is unknown and that nobody has re-read yet."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        organization_id = validation.organization_id(organization_id)
        with reading():
            return self.audit.unsettled(organization_id)

    # --- bulk lookups: durable jobs (services/jobs/) ------------------------------------------------------
    def start_bulk_job(self, actor: Actor, organization_ids: list[str]) -> str:
        """Queues a bulk lookup of these ids (in this order) for the workers; returns its id. Refused past the
        limits (ids per job, jobs queued or running per person) with one sentence."""
        self._authorize(actor, Action.BULK_LOOKUP, parameters={"organizations": len(organization_ids)})
        if len(organization_ids) > self.jobs.max_ids:
            raise InputRefused("organization ids", f"A bulk lookup takes at most {self.jobs.max_ids:,} organization "
                                                   f"ids; this one has {len(organization_ids):,}, so split it.")
        ids = [validation.organization_id(org) for org in organization_ids]
        job_id = self.jobs.create(actor.username, actor.role.value, ids)
        self.audit.record(user=actor.username, role=actor.role.value, action="start bulk lookup",
                          organization_id=None, outcome="succeeded", subject=actor.subject,
                          parameters={"job": job_id, "organizations": len(ids)})
        self.on_job_started()
        return job_id

    def bulk_jobs(self, actor: Actor, everyone: bool = False) -> list[Job]:
        """The person's bulk lookups, newest first; everyone's for a role that may see them (admin)."""
        self._authorize(actor, Action.BULK_LOOKUP)
        if everyone:
            self._authorize(actor, Action.SEE_ALL_BULK_JOBS)
        with reading():
            return self.jobs.jobs(None if everyone else actor.username)

    def bulk_job(self, actor: Actor, job_id: str, results: bool = True) -> BulkJobView:
        """One job's progress and (with `results`) the rows fetched so far, in the order given; only its owner
        and those who may see everyone's jobs may open it."""
        self._authorize(actor, Action.BULK_LOOKUP)
        with reading():
            job = self._visible_job(actor, job_id)
            frame = _job_frame(self.jobs.results(job.id) if results else [])
        return BulkJobView(job, frame)

    def stop_bulk_job(self, actor: Actor, job_id: str) -> bool:
        """Asks the job's worker to stop (a queued job stops at once); what was fetched is kept. False when it
        had already finished."""
        self._authorize(actor, Action.BULK_LOOKUP)
        job = self._visible_job(actor, job_id)
        stopped = self.jobs.request_stop(job.id, actor.username)
        if stopped:
            self.audit.record(user=actor.username, role=actor.role.value, action="stop bulk lookup",
                              organization_id=None, outcome="succeeded", subject=actor.subject,
                              parameters={"job": job.id, "owner": job.username, "fetched": job.done,
                                          "organizations": job.total})
        return stopped

    def bulk_job_export(self, actor: Actor, job_id: str, what: str = "results", fmt: str = "csv") -> bytes:
        """The job's results, or their finance summary (finance, admin), as CSV or Excel, formula-neutralised.
        Every download is an audit row (who, which job, how many rows); if it can't be stored, no file."""
        self._authorize(actor, Action.BULK_LOOKUP)
        if what not in ("results", "summary") or fmt not in ("csv", "xlsx"):
            raise InputRefused("download", "Download the results or the summary, as CSV or Excel.")
        if what == "summary":
            self._authorize(actor, Action.FINANCE_SUMMARY, parameters={"job": job_id})
        with reading():
            job = self._visible_job(actor, job_id)
            frame = _job_frame(self.jobs.results(job.id))
        summary = None
        if what == "results":
            sheets = {"Results": frame}
        else:
            from . import finance  # the finance summary (services/finance.py)

            summary = finance.summarize(frame, datetime.now(timezone.utc).date())
            sheets = finance.summary_frames(summary)
        self.audit.record(user=actor.username, role=actor.role.value, action="download bulk lookup",
                          organization_id=None, outcome="succeeded", subject=actor.subject, required=True,
                          parameters={"job": job.id, "owner": job.username, "what": what, "format": fmt,
                                      "rows": len(frame)})
        if fmt == "xlsx" and summary is not None:  # the summary's sheets, then the results it was made from
            return finance.summary_xlsx(summary, _naive_times(frame))
        if fmt == "xlsx":
            return exports.xlsx_bytes({name: _naive_times(sheet) for name, sheet in sheets.items()})
        if len(sheets) == 1:
            return exports.csv_bytes(next(iter(sheets.values())))
        return exports.csv_bytes(pd.concat([sheet.assign(table=name)[["table", *sheet.columns]]
                                            for name, sheet in sheets.items()], ignore_index=True))

    def _visible_job(self, actor: Actor, job_id: str) -> Job:
        job = self.jobs.job(str(job_id)[:64]) if job_id else None
        if job is None or (job.username != actor.username and not allowed(actor.role, Action.SEE_ALL_BULK_JOBS)):
            raise InputRefused("job", "There is no bulk lookup with that id that you may see (results are kept "
                                      f"{self.jobs.keep.days} days).")
        return job

    @property
    def api_url(self) -> str:
        """Which Payments API this desk drives (keeps cached reads of two APIs apart)."""
        return self.client.base_url

    @property
    def requests_per_minute(self) -> int:
        """The API's rate limit as last announced in its headers (1,000 until it says otherwise)."""
        return self.client.pacer.limit or 1000

    # --- the audit log ------------------------------------------------------------------------------------
    def audit_events(self, actor: Actor, filters: AuditFilter) -> pd.DataFrame:
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            return self.audit.events(filters)

    def audit_choices(self, actor: Actor, column: str) -> list[str]:
        """The values a filter can offer (users, actions)."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            return self.audit.distinct(column)

    def audit_chain_status(self, actor: Actor) -> ChainStatus:
        """Whether the audit log's hash chain verifies (rows added since the last check are hashed)."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            return self.audit.chain_status()

    def audit_page(self, actor: Actor, filters: AuditFilter, after: AuditCursor | None = None,
                   size: int = PAGE_SIZE) -> tuple[AuditSummary, AuditPage]:
        """How many events match (and the newest), and one page of them, newest first, older than `after`
        (None: the first page). The page goes no newer than the counted newest, so the two agree."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            return self.audit.summary_and_page(filters, after, size)

    def audit_export(self, actor: Actor, filters: AuditFilter, upto: AuditCursor | None = None, *,
                     zip_as: str | None = None) -> BinaryIO:
        """Every matching event (none newer than `upto`: what the page counted) as a formula-safe CSV, written
        in batches to a temporary file, rewound (services/audit.py `export`). `zip_as`: the CSV's name inside
        a zip archive, returned instead (exports.ZIP_ABOVE_ROWS says when). The caller closes it."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            exported = self.audit.export_file(filters, upto)
        if zip_as is None:
            return exported
        with exported:
            return exports.zipped(exported, zip_as)

    def audit_csv(self, actor: Actor, filters: AuditFilter) -> bytes:
        """Every matching event as a formula-safe CSV (services/exports.py), uncapped."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading(), self.audit.export_file(filters) as exported:
            return exported.read()

    # --- writes -----------------------------------------------------------------------------------------
    # --- portal links: to the customer by e-mail; on screen only for who may cancel unaided (portal_mail.py) ----
    def send_portal_link(self, actor: Actor, organization_id: str, idempotency_key: str) -> PortalLinkSent:
        """Makes a portal link and queues it, by e-mail, to the customer's billing address; nobody at the console
        sees it. The same key again (a double click, a retry) queues it once."""
        organization_id = validation.organization_id(organization_id)
        self._authorize(actor, Action.SEND_PORTAL_LINK, organization_id)
        if self.outbox is None:
            raise InputRefused("portal", "Billing Desk has no mail server configured, so it can't e-mail portal links: "
                                         "ask an admin to set BILLING_DESK_SMTP_HOST.")
        customer = self.client.get_customer(organization_id)
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
        customer = self.client.get_customer(organization_id)
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

    # --- four-eyes approvals (services/approvals/) -------------------------------------------------------------
    def approval_gate(self, actor: Actor, organization_id: str, action: Action, customer: CustomerInfo,
                      catalog: PlanCatalog | None, price_id: str | None = None) -> Gate:
        """Whether this cancel or plan change of the customer (as the page read it) waits for a second person,
        and what it puts at stake; the write itself is checked again on a fresh read."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        return gate(self.policy, customer, catalog, action.value, price_id)

    def _fresh_gate(self, action: Action, organization_id: str, price_id: str | None) -> tuple[Gate, CustomerInfo,
                                                                                               PlanCatalog | None]:
        customer = self.client.get_customer(organization_id)
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
            customer = self.client.get_customer(request.organization_id)
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
        customer = self.client.get_customer(request.organization_id)
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

    def _deny(self, actor: Actor, action: str, organization_id: str | None, error: str,
              parameters: dict[str, Any], reason: str = "") -> None:
        """A refusal that is not a role's (the policy, the requester's own request), recorded as one."""
        self.audit.record(user=actor.username, role=actor.role.value, action=action, organization_id=organization_id,
                          outcome="denied", error=error, parameters=parameters, reason=reason, subject=actor.subject)

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

    # --- a customer's history and notes --------------------------------------------------------------------
    def customer_history(self, actor: Actor, organization_id: str, after: AuditCursor | None = None,
                         size: int = 20) -> tuple[AuditSummary, AuditPage]:
        """Every console action on this organization (writes, refusals, approval steps, notes), newest first,
        a page at a time."""
        organization_id = validation.organization_id(organization_id)
        self._authorize(actor, Action.VIEW_CUSTOMER_HISTORY, organization_id)
        with reading():
            summary, page = self.audit.summary_and_page(AuditFilter(organization=organization_id), after, size)
        # Only what a customer's history shows: the audit log's other columns (the identity provider's subject,
        # parameters, errors) are for those who may read the log, not for every role that sees the customer.
        frame = page.frame.assign(request=page.frame.parameters.map(approval_request_named))[HISTORY_COLUMNS]
        return summary, AuditPage(frame, page.next)

    def customer_bulk_lookups(self, actor: Actor, organization_id: str) -> pd.DataFrame:
        """The newest `BULK_LOOKUPS_SHOWN` bulk lookups that included this organization (purged ones too: their
        results are gone, not the fact), and their downloads; support sees its own."""
        organization_id = validation.organization_id(organization_id)
        self._authorize(actor, Action.VIEW_CUSTOMER_HISTORY, organization_id)
        with reading():
            everyone = allowed(actor.role, Action.SEE_ALL_BULK_JOBS) or allowed(actor.role, Action.READ_AUDIT_LOG)
            jobs = self.jobs.jobs_including(organization_id, None if everyone else actor.username,
                                            BULK_LOOKUPS_SHOWN)
            downloads = self.audit.job_downloads([job.id for job in jobs])
        rows = [{"at": job.created_at, "user": job.username, "job": job.id,
                 "what": f"bulk lookup of {job.total:,} organizations"
                         + (f" (results purged {job.purged_at:%d %b %Y})" if job.purged_at else "")} for job in jobs]
        for line in downloads.itertuples():
            parameters = json.loads(line.parameters or "{}")
            rows.append({"at": line.at, "user": line.user,
                         "what": f"downloaded its {parameters.get('what', 'results')} "
                                 f"({str(parameters.get('format', 'csv')).upper()}, {parameters.get('rows', 0):,} rows)",
                         "job": parameters.get("job")})
        frame = pd.DataFrame(rows, columns=["at", "user", "what", "job"])
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        return frame.sort_values("at", ascending=False, kind="stable").reset_index(drop=True)

    def add_note(self, actor: Actor, organization_id: str, note: str) -> None:
        """An internal note on the customer: an audit row (who, when, the text), so it can't be edited, only
        followed by a newer one."""
        organization_id = validation.organization_id(organization_id)
        text = note_text(note)
        self._authorize(actor, Action.ADD_NOTE, organization_id)
        # A customer's history is read by people: one person's flood of notes would bury everyone else's.
        if self.audit.count_since(actor.username, "add note", datetime.now(timezone.utc) - self.note_window) >= \
                NOTES_PER_HOUR:
            raise InputRefused("note", f"You've added {NOTES_PER_HOUR} notes in the last hour, the most one person "
                                       "may; your text is kept here, so add it a little later.")
        self.audit.record(user=actor.username, role=actor.role.value, action="add note",
                          organization_id=organization_id, outcome="succeeded", reason=text,
                          subject=actor.subject, required=True)

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
            return self.client.get_customer(organization_id), None
        except PaymentsError as problem:
            return None, problem
