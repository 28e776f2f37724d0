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
| create_portal_link        | CREATE_PORTAL_LINK              | every attempt  |
| create_checkout_link      | CREATE_CHECKOUT_LINK            | every attempt  |
| process_checkout          | PROCESS_CHECKOUT                | every attempt  |
| change_plan               | CHANGE_PLAN                     | every attempt  |
| cancel_subscription       | CANCEL_SUBSCRIPTION             | every attempt  |
| settle_unknown            | SETTLE_UNKNOWN_OUTCOME          | the settled row |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO, Callable, TypeVar

import pandas as pd

from . import exports
from .audit import PAGE_SIZE, AuditCursor, AuditFilter, AuditLog, AuditPage, AuditSummary, ChainReport, reading
from .auth.roles import Action, Actor, PermissionDenied, allowed, require
from .bulk import RESULT_COLUMNS
from .jobs.store import Job, JobStore
from . import tables
from .tables import CUSTOMER_COLUMNS, typed_customer_frame
from .inputs import InputRefused, checkout_redirect, reason_text, typed_confirmation
from .payments import validation
from .payments.client import PaymentsClient
from .payments.errors import ApiConnectionError, ApiTimeoutError, PaymentsError, UnexpectedResponseError
from .payments.models import CustomerInfo, PlanCatalog, PlanChangeResult, ProcessResult, SessionLink

T = TypeVar("T")
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

    def __init__(self, cause: PaymentsError, action: Action) -> None:
        super().__init__(f"No usable answer to {action.value}: {cause.message}", code=cause.code,
                         request_id=cause.request_id, operation=action.value)
        self.action = action

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


class BillingDesk:
    def __init__(self, client: PaymentsClient, audit: AuditLog, *, redirect_hosts: tuple[str, ...] = (),
                 loopback_redirects: bool = False, jobs: JobStore | None = None,
                 on_job_started: Callable[[], object] = lambda: None) -> None:
        """`redirect_hosts`: where checkout links may send customers; `loopback_redirects`: the sandbox's own
        pages on 127.0.0.1 are allowed too. `jobs`: the bulk jobs' store (by default on the audit log's);
        `on_job_started` wakes this process's job workers."""
        self.client, self.audit = client, audit
        self.jobs = jobs or JobStore(audit.engine)
        self.on_job_started = on_job_started
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

    def audit_chain_status(self, actor: Actor) -> ChainReport:
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
    def create_portal_link(self, actor: Actor, organization_id: str, idempotency_key: str) -> SessionLink:
        organization_id = validation.organization_id(organization_id)
        link, _ = self._write(actor, Action.CREATE_PORTAL_LINK, organization_id, {}, "", idempotency_key,
                              lambda: self.client.create_portal(organization_id, idempotency_key=idempotency_key),
                              summarise=lambda link: {"expiresAt": link.expires_at})
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
        if not self.audit.settle(audit_id, organization_id,
                                 f"{actor.username}: status {customer.status}, plan {plan or '—'}"):
            raise InputRefused("audit row", "That write is not waiting to be settled for this organization; "
                                            "someone may have settled it already.")
        return customer

    # --- the shape every write shares ----------------------------------------------------------------------
    def _write(self, actor: Actor, action: Action, organization_id: str | None, parameters: dict[str, Any],
               reason: str, idempotency_key: str, call: Callable[[], T],
               summarise: Callable[[T], dict[str, Any]] | None = None,
               organization_of: Callable[[T], str | None] | None = None) -> tuple[T, int]:
        self._authorize(actor, action, organization_id, parameters, reason)
        audit_id = self.audit.begin(user=actor.username, role=actor.role.value, action=action.value,
                                    organization_id=organization_id, parameters=parameters, reason=reason,
                                    idempotency_key=idempotency_key, subject=actor.subject)
        try:
            result = call()
        except PaymentsError as error:
            if _outcome_unknown(error):
                unknown = WriteOutcomeUnknown(error, action)
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
