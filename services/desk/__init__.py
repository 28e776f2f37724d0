"""Billing Desk's operations: every read and write a person can make, through one object, `BillingDesk`.

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
| search_customers, directory_size | LOOK_UP_CUSTOMER         | refusals       |
| directory_export          | EXPORT_DIRECTORY                | every export   |
| forget_organization, import_organizations | MANAGE_DIRECTORY | every forget and import |

Four-eyes approvals (services/approvals/): a cancel or plan change the policy holds back is refused here with one
sentence unless it comes through `approve_request`, which performs it with the request's idempotency key.

The table above is the one place that says which permission each operation checks (who holds each permission:
services/auth/roles.py); tests/test_desk_roles.py calls every public operation as every role and fails when one
is missing from it. `BillingDesk` is composed of one class per concern, each in its own module, all built on
`DeskCore` (core.py: the role check, the shape every write shares, the approval policy's check):

| module          | concern                                                          |
|-----------------|------------------------------------------------------------------|
| `core.py`       | `DeskCore`, `WriteResult`, `WriteOutcomeUnknown`                 |
| `customers.py`  | customers and plans                                              |
| `writes.py`     | checkout links, processing a checkout, plan changes, cancels, settling |
| `portal.py`     | portal links                                                     |
| `four_eyes.py`  | approval requests (`RequestReview`)                              |
| `bulk_jobs.py`  | bulk lookups (`BulkJobView`)                                     |
| `audit_log.py`  | the audit log's reads and exports                                |
| `history.py`    | a customer's history and notes                                   |
| `directory.py`  | the customer directory: search, export, forget                   |
"""


from __future__ import annotations

from .audit_log import AuditLogReads
from .bulk_jobs import JOB_COLUMNS, BulkJobs, BulkJobView
from .core import DeskCore, WriteOutcomeUnknown, WriteResult
from .customers import CustomerReads
from .directory import DirectoryReads
from .four_eyes import SYSTEM_USER, Approvals, RequestReview
from .history import BULK_LOOKUPS_SHOWN, HISTORY_COLUMNS, NOTES_PER_HOUR, History
from .portal import PortalLinks
from .revenue import RevenueReads
from .writes import Writes

__all__ = ["BULK_LOOKUPS_SHOWN", "HISTORY_COLUMNS", "JOB_COLUMNS", "NOTES_PER_HOUR", "SYSTEM_USER", "BillingDesk",
           "BulkJobView", "RequestReview", "WriteOutcomeUnknown", "WriteResult"]


class BillingDesk(CustomerReads, DirectoryReads, RevenueReads, Writes, PortalLinks, Approvals, BulkJobs, AuditLogReads,
                  History, DeskCore):
    """The one road from the pages to the Payments API and the store (`ui/reads.py` only caches around it)."""
