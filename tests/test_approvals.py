"""Four-eyes approvals through the desk, on SQLite and PostgreSQL, against a real sandbox: a held-back write is
refused and filed as a request instead; only a second person of an approving role can approve it; approval
writes once with the request's idempotency key (also when two approvers click at once); expired, withdrawn and
stale requests can't be approved; every step is an audit row in the hash chain. Then a customer's history and
notes."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text, update

from sandbox import RunningSandbox
from sandbox.control_client import SandboxControl
from services.approvals.policy import ApprovalPolicy, gate, monthly_cents
from services.approvals.store import (APPROVED, EXPIRED, REJECTED, WAITING, WITHDRAWN, ApprovalBook,
                                      approval_requests)
from services.audit import AuditFilter, AuditLog, AuditUnavailable
from services.audit.verify import verify
from services.auth.roles import Action, Actor, PermissionDenied, Role
from services.config import ConfigError, load_config
from services.desk import NOTES_PER_HOUR, BillingDesk, WriteOutcomeUnknown
from services.inputs import InputRefused
from services.jobs.store import bulk_jobs
from services.payments.client import PaymentsClient
from services.payments.models import Price
from services.plan_change import change_options, preview_change
from services.store import open_store

# The database refuses audit rows of one action (a real trigger: the store fails for exactly that row).
REFUSE_APPROVAL_ROWS = {
    "sqlite": ["""CREATE TRIGGER refuse_approval_rows BEFORE INSERT ON audit_rows WHEN NEW.action = '{action}'
                  BEGIN SELECT RAISE(ABORT, 'refused'); END"""],
    "postgresql": ["""CREATE OR REPLACE FUNCTION refuse_approval_rows() RETURNS trigger LANGUAGE plpgsql AS
                      $$ BEGIN RAISE EXCEPTION 'refused'; END $$""",
                   """CREATE TRIGGER refuse_approval_rows BEFORE INSERT ON audit_rows FOR EACH ROW
                      WHEN (NEW.action = '{action}') EXECUTE FUNCTION refuse_approval_rows()"""],
}
FRED = Actor("fred", Role.FINANCE)  # asks
ANN = Actor("ann", Role.ADMIN)  # approves
FIONA = Actor("fiona", Role.FINANCE)  # another approver
SAM = Actor("sam", Role.SUPPORT)


class Clock:
    """The approvals' clock, moved by the test."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def audit(store_url: str) -> AuditLog:
    return AuditLog(open_store(store_url))


@pytest.fixture
def desk(client: PaymentsClient, audit: AuditLog, clock: Clock) -> BillingDesk:
    return BillingDesk(client, audit, policy=ApprovalPolicy(), approvals=ApprovalBook(audit.engine, clock))


def _live(control: SandboxControl, client: PaymentsClient, skip: int = 0) -> str:
    """An active organization, not cancelling, with a plan that has a lower one to move to."""
    found = 0
    for row in control.organizations():
        if row["status"] != "active" or row.get("canceling"):
            continue
        customer = client.get_customer(row["id"])
        catalog = client.list_plans(row["id"])
        if customer.subscription and customer.subscription.scheduled_change is None and any(
                preview_change(catalog, customer, option).kind == "downgrade"
                for option in change_options(catalog, customer)):
            if found == skip:
                return row["id"]
            found += 1
    raise AssertionError("the sandbox has no such organization")


def _downgrade(client: PaymentsClient, organization_id: str) -> tuple[str, str]:
    customer, catalog = client.get_customer(organization_id), client.list_plans(organization_id)
    option = next(option for option in change_options(catalog, customer)
                  if preview_change(catalog, customer, option).kind == "downgrade")
    return option.price.price_id, option.plan.product_id


def _sent(control: SandboxControl, operation: str, organization_id: str) -> list[dict[str, Any]]:
    return [row for row in control.mutations(operation) if organization_id in str(row)]


def _actions(audit: AuditLog, organization_id: str) -> list[tuple[str, str, str]]:
    frame = audit.events(AuditFilter(organization=organization_id))
    return list(zip(frame.user, frame.action, frame.outcome))[::-1]  # oldest first


def test_the_policy_from_configuration_and_what_each_write_puts_at_stake(client: PaymentsClient,
                                                                        control: SandboxControl) -> None:
    default = load_config({"BILLING_DESK_SANDBOX": "1"}).approvals
    assert default.kinds == {"cancel", "downgrade"} and default.expiry == timedelta(hours=24)
    assert default.approver_roles == {Role.FINANCE, Role.ADMIN} and default.threshold_cents is None
    for setting, value in (("BILLING_DESK_APPROVAL_ACTIONS", "cancel,portal"), ("BILLING_DESK_APPROVERS", "support"),
                           ("BILLING_DESK_APPROVAL_HOURS", "soon"), ("BILLING_DESK_APPROVAL_THRESHOLD", "-5")):
        with pytest.raises(ConfigError) as refused:
            load_config({"BILLING_DESK_SANDBOX": "1", setting: value})
        assert str(refused.value).count(".") >= 1 and "BILLING_DESK_APPRO" in str(refused.value)
    assert monthly_cents(Price("p", "x", "year", 179_000)) == 14_917  # a yearly price counts a twelfth
    organization_id = _live(control, client)
    customer, catalog = client.get_customer(organization_id), client.list_plans(organization_id)
    current = catalog.find_price(customer.subscription.price_id)
    cancel = gate(ApprovalPolicy(), customer, catalog, "cancel subscription")
    assert (cancel.kind, cancel.at_stake_cents, cancel.needs_approval) == ("cancel", monthly_cents(current[1]), True)
    price_id, _ = _downgrade(client, organization_id)
    lower = gate(ApprovalPolicy(), customer, catalog, "change plan", price_id)
    assert lower.kind == "downgrade" and lower.needs_approval
    assert lower.at_stake_cents == monthly_cents(current[1]) - monthly_cents(catalog.find_price(price_id)[1])
    above = ApprovalPolicy(threshold_cents=lower.at_stake_cents + 1)  # under the threshold: made directly
    assert not gate(above, customer, catalog, "change plan", price_id).needs_approval
    # A price the catalog doesn't list (a custom contract) has no tier: what it bills decides.
    custom = replace(customer, subscription=replace(customer.subscription, price_id="price_CustomDeal01",
                                                    unit_amount=500_000, interval="month"))
    cheaper = gate(ApprovalPolicy(), custom, catalog, "change plan", price_id)
    assert cheaper.kind == "downgrade" and cheaper.needs_approval
    assert cheaper.at_stake_cents == 500_000 - monthly_cents(catalog.find_price(price_id)[1])
    unknown = replace(custom, subscription=replace(custom.subscription, unit_amount=None))
    assert gate(ApprovalPolicy(), unknown, catalog, "change plan", price_id).needs_approval  # the safe side
    upgrade = next(option for option in change_options(catalog, customer)
                   if preview_change(catalog, customer, option).kind == "upgrade")
    up = gate(ApprovalPolicy(), customer, catalog, "change plan", upgrade.price.price_id)
    assert (up.kind, up.at_stake_cents, up.needs_approval) == ("upgrade", 0, False)


def test_a_held_back_write_is_refused_sends_nothing_and_is_filed_as_a_request(
        desk: BillingDesk, audit: AuditLog, control: SandboxControl, client: PaymentsClient) -> None:
    organization_id = _live(control, client)
    with pytest.raises(InputRefused) as refused:
        desk.cancel_subscription(FRED, organization_id, "Customer asked", organization_id, "key-direct")
    assert refused.value.message.startswith("A cancel needs a second person's approval (admin or finance)")
    price_id, product_id = _downgrade(client, organization_id)
    with pytest.raises(InputRefused):
        desk.change_plan(FRED, organization_id, price_id, product_id, "Cheaper plan", "key-direct-2")
    assert not _sent(control, "cancel", organization_id)
    assert not _sent(control, "update", organization_id)
    with pytest.raises(InputRefused):  # the cancel's typed confirmation is asked for the request too
        desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, organization_id, "Customer asked", "k1",
                              typed_organization_id="org_wrong")
    with pytest.raises(PermissionDenied):  # support makes no money writes, so can't ask for one either
        desk.request_approval(SAM, Action.CANCEL_SUBSCRIPTION, organization_id, "x", "k0",
                              typed_organization_id=organization_id)
    request = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, organization_id, "Customer asked by email",
                                    "key-cancel-1", typed_organization_id=organization_id)
    again = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, organization_id, "Customer asked by email",
                                  "key-cancel-1", typed_organization_id=organization_id)  # a double click
    assert again.id == request.id and request.status == WAITING and request.requested_by == "fred"
    assert request.summary.startswith("Cancel ") and "a month of revenue is at stake" in request.summary
    assert request.expires_at - request.created_at == timedelta(hours=24)
    with pytest.raises(InputRefused) as second:
        desk.request_approval(FRED, Action.CHANGE_PLAN, organization_id, "Cheaper", "key-change-1",
                              price_id=price_id, product_id=product_id)
    assert "already waiting for a second approver" in second.value.message
    assert [r.id for r in desk.requests_waiting_for(SAM, organization_id)] == [request.id]
    assert desk.waiting_for_me(ANN) == 1 and desk.waiting_for_me(FRED) == 0 and desk.waiting_for_me(SAM) == 0
    assert not _sent(control, "cancel", organization_id)
    assert ("fred", "request approval", "succeeded") in _actions(audit, organization_id)
    assert ("fred", "cancel subscription", "denied") in _actions(audit, organization_id)


def test_only_a_second_person_of_an_approving_role_approves_and_it_writes_once(
        desk: BillingDesk, audit: AuditLog, control: SandboxControl, client: PaymentsClient) -> None:
    organization_id = _live(control, client)
    request = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, organization_id, "Customer asked",
                                    "key-cancel-2", typed_organization_id=organization_id)
    with pytest.raises(PermissionDenied):
        desk.approve_request(SAM, request.id, "looks fine")
    with pytest.raises(InputRefused) as own:
        desk.approve_request(FRED, request.id, "my own")
    assert own.value.message == ("You asked for this change, so a second person must decide it (you can withdraw "
                                 "it).")
    with pytest.raises(InputRefused):
        desk.approve_request(ANN, request.id, "")  # a reason is asked for
    review = desk.review_request(ANN, request.id)
    assert review.stale is None and review.customer.subscription.cancel_at_period_end is False and not review.mine
    result = desk.approve_request(ANN, request.id, "Confirmed with the customer")
    assert result.customer.subscription.cancel_at_period_end is True  # re-read after the write
    sent = _sent(control, "cancel", organization_id)
    assert len(sent) == 1 and "key-cancel-2" in str(sent[0])  # the request's idempotency key
    decided = desk.review_request(ANN, request.id).request
    assert (decided.status, decided.decided_by, decided.outcome, decided.audit_id) == (
        APPROVED, "ann", "succeeded", result.audit_id)
    with pytest.raises(InputRefused) as twice:
        desk.approve_request(FIONA, request.id, "me too")
    assert twice.value.message.startswith("This request was already approved by ann")
    steps = _actions(audit, organization_id)
    assert steps.index(("ann", "approve request", "succeeded")) < steps.index(("ann", "cancel subscription",
                                                                                "succeeded"))
    assert ("fred", "approve or reject a request", "denied") in steps  # the requester's try is on record
    write = audit.events(AuditFilter(organization=organization_id, actions=("cancel subscription",)))
    succeeded = write[write.outcome == "succeeded"]
    assert len(succeeded) == 1 and '"requestedBy": "fred"' in succeeded.parameters.iloc[0]
    assert f'"request": "{request.id}"' in succeeded.parameters.iloc[0]
    assert verify(audit.engine).ok  # every step inside the hash chain


def test_two_approvers_clicking_at_once_make_one_write(desk: BillingDesk, control: SandboxControl,
                                                       client: PaymentsClient, store_url: str, clock: Clock) -> None:
    """Each approver on a replica of their own: two desks on one store, as two console processes."""
    other = BillingDesk(client, AuditLog(open_store(store_url)), policy=ApprovalPolicy(),
                        approvals=ApprovalBook(open_store(store_url), clock))
    organization_id = _live(control, client)
    price_id, product_id = _downgrade(client, organization_id)
    request = desk.request_approval(FRED, Action.CHANGE_PLAN, organization_id, "Cheaper plan", "key-down-1",
                                    price_id=price_id, product_id=product_id)
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def approve(replica: BillingDesk, actor: Actor) -> None:
        start.wait()
        try:
            outcomes[actor.username] = replica.approve_request(actor, request.id, f"{actor.username} agrees")
        except InputRefused as refused:
            outcomes[actor.username] = refused.message

    assert [waiting.id for waiting in other.approval_requests(FIONA)] == [request.id]  # every replica sees it
    # The API answers the approvals' re-reads slowly, so both are past every check before either decides: only
    # the store's guarded update stands between them and a second write.
    control.add_fault("customer-info", latencyMs=300)
    threads = [threading.Thread(target=approve, args=pair) for pair in ((desk, ANN), (other, FIONA))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    refusals = [value for value in outcomes.values() if isinstance(value, str)]
    assert len(outcomes) == 2 and len(refusals) == 1, outcomes
    winner = next(name for name, value in outcomes.items() if not isinstance(value, str))
    assert refusals[0] == f"This request was already approved by {winner} a moment ago; nothing was done."
    assert len(_sent(control, "update", organization_id)) == 1
    scheduled = client.get_customer(organization_id).subscription.scheduled_change
    assert scheduled is not None and scheduled.price_id == price_id  # a downgrade waits for the period's end


def test_expired_withdrawn_rejected_and_stale_requests_cannot_be_approved(
        desk: BillingDesk, audit: AuditLog, clock: Clock, control: SandboxControl, client: PaymentsClient) -> None:
    first, second = _live(control, client), _live(control, client, skip=1)
    request = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, first, "Asked", "key-exp",
                                    typed_organization_id=first)
    clock.moment += timedelta(hours=23, minutes=59)
    assert desk.review_request(ANN, request.id).request.status == WAITING
    clock.moment += timedelta(minutes=2)  # past the 24 hours
    assert desk.requests_waiting_for(SAM, first) == []  # a customer's page: gone, and marked expired now
    assert desk.approval_requests(ANN) == [] and desk.waiting_for_me(ANN) == 0
    with pytest.raises(InputRefused) as late:
        desk.approve_request(ANN, request.id, "late")
    assert late.value.message == "This request expired; it can't be decided again."
    assert desk.review_request(ANN, request.id).request.status == EXPIRED
    assert _actions(audit, first).count(("billing-desk", "expire request", "succeeded")) == 1  # recorded once

    withdrawn = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, first, "Asked again", "key-wd",
                                      typed_organization_id=first)
    with pytest.raises(InputRefused):
        desk.withdraw_request(ANN, withdrawn.id)  # only the requester withdraws
    assert desk.withdraw_request(FRED, withdrawn.id).status == WITHDRAWN
    with pytest.raises(InputRefused) as gone:
        desk.approve_request(ANN, withdrawn.id, "ok")
    assert "was withdrawn by its requester" in gone.value.message

    rejected = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, first, "Third time", "key-rej",
                                     typed_organization_id=first)
    assert desk.reject_request(ANN, rejected.id, "The customer renewed").status == REJECTED
    with pytest.raises(InputRefused):
        desk.approve_request(FIONA, rejected.id, "ok")

    price_id, product_id = _downgrade(client, second)
    stale = desk.request_approval(FRED, Action.CHANGE_PLAN, second, "Cheaper", "key-stale",
                                  price_id=price_id, product_id=product_id)
    client.cancel_subscription(second, idempotency_key="key-elsewhere")  # the customer changes elsewhere
    review = desk.review_request(ANN, stale.id)
    assert review.stale == "the subscription has been set to cancel since"
    with pytest.raises(InputRefused) as refused:
        desk.approve_request(ANN, stale.id, "ok")
    assert refused.value.message.startswith("This request is stale: the subscription has been set to cancel since.")
    assert not _sent(control, "update", second)
    steps = {action for _, action, _ in _actions(audit, first)}
    assert {"request approval", "expire request", "withdraw request", "reject request"} <= steps
    assert verify(audit.engine).ok


def test_only_the_configured_approver_roles_may_approve(client: PaymentsClient, audit: AuditLog, clock: Clock,
                                                        control: SandboxControl) -> None:
    admins_only = BillingDesk(client, audit, policy=ApprovalPolicy(approver_roles=frozenset({Role.ADMIN})),
                              approvals=ApprovalBook(audit.engine, clock))
    organization_id = _live(control, client)
    request = admins_only.request_approval(ANN, Action.CANCEL_SUBSCRIPTION, organization_id, "Asked", "key-ao",
                                           typed_organization_id=organization_id)
    assert admins_only.waiting_for_me(FIONA) == 0
    with pytest.raises(PermissionDenied):
        admins_only.approve_request(FIONA, request.id, "ok")
    assert not _sent(control, "cancel", organization_id)


def test_a_customer_s_history_holds_its_actions_requests_notes_and_bulk_exports_newest_first(
        desk: BillingDesk, audit: AuditLog, control: SandboxControl, client: PaymentsClient) -> None:
    organization_id = _live(control, client)
    desk.add_note(SAM, organization_id, "Called about the invoice.\nPromised a callback.")
    with pytest.raises(InputRefused):
        desk.add_note(SAM, organization_id, "   ")
    request = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, organization_id, "Asked", "key-hist",
                                    typed_organization_id=organization_id)
    desk.withdraw_request(FRED, request.id)
    for index in range(22):  # two people: one may add 20 an hour
        desk.add_note(FIONA if index % 2 else FRED, organization_id, f"note {index}")
    summary, page = desk.customer_history(SAM, organization_id)
    # What the page shows, no more: the log's subject, parameters and errors are for those who read the log.
    assert list(page.frame.columns) == ["at", "user", "action", "reason", "outcome", "request", "request_id"]
    assert summary.total == 25 and len(page.frame) == 20 and page.next is not None
    assert list(page.frame.reason[:2]) == ["note 21", "note 20"]  # newest first
    _, older = desk.customer_history(SAM, organization_id, page.next)
    assert list(older.frame.action) == ["add note", "add note", "withdraw request", "request approval", "add note"]
    assert older.frame.reason.iloc[-1] == "Called about the invoice.\nPromised a callback."
    assert older.next is None
    job_id = desk.start_bulk_job(FIONA, [organization_id, "org_other1"])
    desk.jobs.save(job_id, 0, {"organization_id": organization_id, "status": "active"})
    desk.bulk_job_export(FIONA, job_id, "results", "csv")
    assert desk.customer_bulk_lookups(SAM, organization_id).empty  # support sees its own lookups only
    lookups = desk.customer_bulk_lookups(FIONA, organization_id)
    assert list(lookups.user) == ["fiona", "fiona"] and set(lookups.job) == {job_id}
    assert lookups.what.iloc[0] == "downloaded its results (CSV, 1 rows)"
    assert lookups.what.iloc[1] == "bulk lookup of 2 organizations"
    assert desk.customer_bulk_lookups(SAM, "org_nobodyhere").empty
    with audit.engine.begin() as conn:  # finished 31 days ago: its results are purged, the lookup is not forgotten
        conn.execute(update(bulk_jobs).where(bulk_jobs.c.id == job_id).values(
            status="done", finished_at=datetime.now(timezone.utc) - timedelta(days=31)))
    assert desk.jobs.purge() == 1 and desk.jobs.results(job_id) == []
    purged = desk.customer_bulk_lookups(FIONA, organization_id)
    assert list(purged.user) == ["fiona", "fiona"]
    today = f"{datetime.now(timezone.utc):%d %b %Y}"
    assert purged.what.iloc[1] == f"bulk lookup of 2 organizations (results purged {today})"


def test_two_replicas_sweeping_expiries_at_once_record_each_once(
        desk: BillingDesk, audit: AuditLog, clock: Clock, store_url: str, control: SandboxControl,
        client: PaymentsClient) -> None:
    first, second = _live(control, client), _live(control, client, skip=1)
    for organization_id in (first, second):
        desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, organization_id, "Asked", f"key-{organization_id}",
                              typed_organization_id=organization_id)
    clock.moment += timedelta(hours=25)
    books = [ApprovalBook(open_store(store_url), clock) for _ in range(2)]
    start, moved = threading.Barrier(2), []

    def sweep(book: ApprovalBook) -> None:
        start.wait()
        moved.extend(request.id for request in book.expire_due())

    threads = [threading.Thread(target=sweep, args=(book,)) for book in books]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(moved) == 2 and len(set(moved)) == 2  # each request moved (and so audited) by one replica
    # Filing a request sweeps first and hands back what it expired, so the desk records it.
    third = _live(control, client, skip=2)
    desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, third, "Asked", "key-third", typed_organization_id=third)
    clock.moment += timedelta(hours=25)
    desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, first, "Asked again", "key-again",
                          typed_organization_id=first)
    assert _actions(audit, third).count(("billing-desk", "expire request", "succeeded")) == 1


def test_the_same_person_under_single_sign_on_is_the_requester_whatever_their_username(
        desk: BillingDesk, control: SandboxControl, client: PaymentsClient) -> None:
    organization_id = _live(control, client)
    asker = Actor("fred@example.com", Role.FINANCE, subject="sub-fred")
    request = desk.request_approval(asker, Action.CANCEL_SUBSCRIPTION, organization_id, "Asked", "key-sso",
                                    typed_organization_id=organization_id)
    renamed = Actor("frederick@example.com", Role.ADMIN, subject="sub-fred")  # the provider's email changed
    assert desk.waiting_for_me(renamed) == 0 and desk.review_request(renamed, request.id).mine
    with pytest.raises(InputRefused) as own:
        desk.approve_request(renamed, request.id, "fine")
    assert own.value.message.startswith("You asked for this change")
    assert desk.withdraw_request(renamed, request.id).status == WITHDRAWN


@pytest.mark.parametrize("refused", ["approve request", "cancel subscription"])  # the approval's row, the write's
def test_an_approval_whose_audit_row_cannot_be_stored_sends_nothing_and_waits_again(
        desk: BillingDesk, audit: AuditLog, control: SandboxControl, client: PaymentsClient, refused: str) -> None:
    organization_id = _live(control, client)
    request = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, organization_id, "Asked", "key-audit-down",
                                    typed_organization_id=organization_id)
    with audit.engine.begin() as conn:  # the database itself refuses the approval's audit row
        for statement in REFUSE_APPROVAL_ROWS[conn.dialect.name]:
            conn.execute(text(statement.format(action=refused)))
    try:
        with pytest.raises(AuditUnavailable):
            desk.approve_request(ANN, request.id, "ok")
    finally:
        with audit.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_approval_rows" + (" ON audit_rows" if conn.dialect.name ==
                                                                      "postgresql" else "")))
    assert not _sent(control, "cancel", organization_id)
    assert desk.review_request(ANN, request.id).request.status == WAITING  # not stuck: it can be decided
    desk.approve_request(ANN, request.id, "ok now")
    assert len(_sent(control, "cancel", organization_id)) == 1


def test_every_hostile_note_is_refused_with_one_sentence_or_kept_as_written(
        desk: BillingDesk, audit: AuditLog) -> None:
    from tests.hostile_inputs import HOSTILE_INPUTS

    kept = 0
    for index, value in enumerate(HOSTILE_INPUTS):
        writer = Actor(f"sam{index // NOTES_PER_HOUR}", Role.SUPPORT)  # the per-person limit is tested apart
        try:
            desk.add_note(writer, "org_abc123", value)
        except InputRefused as refused:
            assert refused.message.endswith(".") and "\n" not in refused.message
            continue
        kept += 1
        newest = desk.customer_history(SAM, "org_abc123")[1].frame.reason.iloc[0]
        assert newest == "\n".join(" ".join(line.split()) for line in value.strip().splitlines())
    assert kept and desk.customer_history(SAM, "org_abc123")[0].total == kept
    assert verify(audit.engine).ok


def test_an_approved_write_with_an_unknown_outcome_is_settled_on_its_request_too(
        sandbox: RunningSandbox, audit: AuditLog, control: SandboxControl, client: PaymentsClient,
        clock: Clock) -> None:
    """The approval's write goes out and no answer comes back: the request says the outcome is unknown and names
    the write's audit row; once a person re-reads the customer (settles that row), the request says what they
    saw, and settling again changes nothing."""
    impatient = PaymentsClient(sandbox.base_url, sandbox.api_key, timeout=(1.0, 0.5), backoff_factor=0.05)
    desk = BillingDesk(impatient, audit, policy=ApprovalPolicy(), approvals=ApprovalBook(audit.engine, clock))
    organization_id = _live(control, client)
    request = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, organization_id, "Asked", "key-unknown",
                                    typed_organization_id=organization_id)
    control.clear_faults()
    control.add_fault("subscription-cancel", hangSeconds=1.5, count=2)  # the retry too
    try:
        with pytest.raises(WriteOutcomeUnknown) as unknown:
            desk.approve_request(ANN, request.id, "Confirmed")
    finally:
        control.clear_faults()
    waiting = desk.review_request(ANN, request.id).request
    assert (waiting.outcome, waiting.audit_id) == ("unknown", unknown.value.audit_id)
    assert [row["id"] for row in audit.unsettled(organization_id)] == [unknown.value.audit_id]

    seen = desk.settle_unknown(FIONA, unknown.value.audit_id, organization_id)

    settled = desk.review_request(ANN, request.id).request
    assert settled.outcome == "settled"
    assert settled.outcome_error == f"fiona: status {seen.status}, plan {seen.subscription.plan_name}"
    assert not desk.approvals.settle_outcome(request.id, unknown.value.audit_id, "again")  # once
    desk.approvals.record_outcome(request.id, "unknown", "late", None)  # a late record never undoes it
    assert desk.review_request(ANN, request.id).request.outcome_error == settled.outcome_error

    # The console dies between sending the write and recording its outcome on the request (its lease then marks
    # the write unknown; here the hang does, and the request's record is undone): settling it still reaches the
    # request, found through the write's audit row.
    second = _live(control, client, skip=1)
    died = desk.request_approval(FRED, Action.CANCEL_SUBSCRIPTION, second, "Asked", "key-died",
                                 typed_organization_id=second)
    control.add_fault("subscription-cancel", hangSeconds=1.5, count=2)
    try:
        with pytest.raises(WriteOutcomeUnknown) as lost:
            desk.approve_request(ANN, died.id, "Confirmed")
    finally:
        control.clear_faults()
    with audit.engine.begin() as conn:  # as if it had never been recorded
        conn.execute(update(approval_requests).where(approval_requests.c.id == died.id)
                     .values(outcome=None, outcome_error=None, audit_id=None))
    desk.settle_unknown(FIONA, lost.value.audit_id, second)
    recovered = desk.review_request(ANN, died.id).request
    assert (recovered.outcome, recovered.audit_id) == ("settled", lost.value.audit_id)
    assert verify(audit.engine).ok


def test_one_person_adds_at_most_twenty_notes_an_hour_and_is_told_so(desk: BillingDesk, audit: AuditLog) -> None:
    for index in range(NOTES_PER_HOUR):
        desk.add_note(SAM, "org_abc123", f"Call {index + 1} with the customer")
    with pytest.raises(InputRefused) as refused:
        desk.add_note(SAM, "org_abc123", "One too many")
    assert refused.value.field == "note" and "20 notes in the last hour" in refused.value.message
    assert refused.value.message.endswith(".") and "\n" not in refused.value.message
    desk.add_note(Actor("fay", Role.FINANCE), "org_abc123", "Someone else still may")  # a limit per person
    assert desk.customer_history(SAM, "org_abc123")[0].total == NOTES_PER_HOUR + 1
    desk.note_window = timedelta(milliseconds=1)  # as if the hour had passed: the window moves on
    desk.add_note(SAM, "org_abc123", "The next hour")
