"""The console's operations against the sandbox: roles, audit before the call, one write per intent."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import text

from sandbox.control_client import SandboxControl
from services.audit import AuditLog, AuditUnavailable
from services.auth.roles import Actor
from services.desk import BillingDesk
from services.payments.client import PaymentsClient
from services.inputs import InputRefused
from services.payments.errors import InvalidInputError, UnprocessableError
from services.plan_change import change_options, preview_change
from tests.hostile_inputs import SECRET_SHAPED_API_TEXT
from services.auth.roles import PermissionDenied, Role

SUPPORT, FINANCE = Actor("sam", Role.SUPPORT), Actor("fay", Role.FINANCE)


@pytest.fixture
def audit(store_url: str) -> AuditLog:
    return AuditLog(store_url)


@pytest.fixture
def desk(client: PaymentsClient, audit: AuditLog) -> BillingDesk:
    return BillingDesk(client, audit, redirect_hosts=("desk.example.com",))


def _audit_text(audit: AuditLog) -> str:
    """Every row ever appended (audit_rows), not only the folded lines of the audit_events view."""
    with audit.engine.connect() as conn:
        return "\n".join(str(tuple(row)) for row in conn.execute(text("SELECT * FROM audit_rows")))


def test_support_is_refused_writes_by_the_service_itself(desk: BillingDesk, audit: AuditLog,
                                                         control: SandboxControl) -> None:
    with pytest.raises(PermissionDenied):
        desk.change_plan(SUPPORT, "org_abc123", "price_ScaleMonthly01", "prod_Scale0001", "asked", "k1")
    with pytest.raises(PermissionDenied):
        desk.cancel_subscription(SUPPORT, "org_abc123", "asked", "org_abc123", "k2")
    with pytest.raises(PermissionDenied):
        desk.process_checkout(SUPPORT, "cs_test_abc", "asked", "k3")
    assert control.mutations() == []
    events = audit.events()
    assert len(events) == 3 and set(events.outcome) == {"denied"} and set(events.user) == {"sam"}


def test_a_plan_change_is_audited_before_and_after_and_the_customer_re_read(desk: BillingDesk,
                                                                            audit: AuditLog) -> None:
    result = desk.change_plan(FINANCE, "org_abc123", "price_ScaleMonthly01", "prod_Scale0001",
                              "  Customer   needs more seats ", "intent-1")
    assert result.change and result.change.change == "upgrade"
    assert result.customer and result.customer.subscription.plan_name == "Scale"  # type: ignore[union-attr]
    row = audit.events().iloc[0]
    assert (row.user, row.role, row.action, row.organization_id, row.outcome) == (
        "fay", "finance", "change plan", "org_abc123", "succeeded")
    assert row.reason == "Customer needs more seats" and '"prorationAmount"' in row.parameters


def test_a_write_on_one_replica_changes_the_organization_version_every_replica_reads(
        client: PaymentsClient, store_url: str, desk: BillingDesk) -> None:
    other = BillingDesk(client, AuditLog(store_url))  # a second console process on the same store
    before = other.organization_version(FINANCE, "org_abc123")
    untouched = other.organization_version(FINANCE, "org_def456")
    desk.change_plan(FINANCE, "org_abc123", "price_ScaleMonthly01", "prod_Scale0001", "more seats", "v-1")
    after = other.organization_version(FINANCE, "org_abc123")
    assert before is not None and after is not None and after > before  # cached reads keyed on it miss
    assert other.organization_version(FINANCE, "org_def456") == untouched  # other organizations keep theirs


def test_the_same_intent_twice_is_one_write_and_one_row(desk: BillingDesk, audit: AuditLog,
                                                        control: SandboxControl) -> None:
    for _ in range(2):  # a double click, or a rerun during the write
        desk.cancel_subscription(FINANCE, "org_abc123", "closing", "org_abc123", "intent-cancel")
    assert len(control.mutations("cancel")) == 1
    events = audit.events()
    assert len(events) == 1 and events.iloc[0].attempts == 2 and events.iloc[0].outcome == "succeeded"


def test_no_write_happens_when_the_audit_row_cannot_be_stored(client: PaymentsClient, store_url: str,
                                                              control: SandboxControl) -> None:
    audit = AuditLog(store_url)
    with audit.engine.begin() as conn:
        conn.execute(text("DROP VIEW audit_events"))  # the store is broken
        conn.execute(text("DROP TABLE audit_rows"))
    with pytest.raises(AuditUnavailable):
        BillingDesk(client, audit).cancel_subscription(FINANCE, "org_abc123", "closing", "org_abc123", "k")
    assert control.mutations() == []


def test_a_refused_write_is_recorded_as_failed_with_the_api_code(desk: BillingDesk, audit: AuditLog,
                                                                 control: SandboxControl) -> None:
    organization_id = control.organizations("none")[0]["id"]
    with pytest.raises(UnprocessableError):
        desk.cancel_subscription(FINANCE, organization_id, "closing", organization_id, "k")
    row = audit.events().iloc[0]
    assert row.outcome == "failed" and "no_active_subscription" in row.error and row.request_id


@pytest.mark.parametrize(("reason", "typed", "field"), [("", "org_abc123", "reason"), ("   ", "org_abc123", "reason"),
                                                        ("ok", "org_abc12", "confirmation"), ("ok", "", "confirmation"),
                                                        ("x" * 501, "org_abc123", "reason")])
def test_bad_confirmation_input_sends_nothing_and_records_nothing(desk: BillingDesk, audit: AuditLog,
                                                                  control: SandboxControl, reason: str, typed: str,
                                                                  field: str) -> None:
    with pytest.raises(InputRefused) as refused:
        desk.cancel_subscription(FINANCE, "org_abc123", reason, typed, "k")
    assert refused.value.field == field
    assert control.mutations() == [] and audit.events().empty


def test_links_are_returned_once_and_never_stored(desk: BillingDesk, audit: AuditLog, sandbox) -> None:
    portal = desk.show_portal_link(FINANCE, "org_abc123", "k-portal")  # no policy here: finance may cancel unaided
    organization_id = SandboxControl(sandbox.root_url, sandbox.api_key).organizations("none")[0]["id"]
    checkout = desk.create_checkout_link(SUPPORT, organization_id, "price_StarterMonthly01", "prod_Starter0001",
                                         "https://desk.example.com/ok", None, "k-checkout")
    stored = _audit_text(audit)
    assert portal.url not in stored and checkout.url not in stored
    assert checkout.checkout_session_id not in stored  # only a masked form
    assert "/sandbox/portal/" not in stored and sandbox.api_key not in stored
    assert "portal" in repr(portal) or "url" not in repr(portal)  # repr hides the URL
    assert portal.url not in repr(portal)
    assert set(audit.events().outcome) == {"succeeded"}


def test_an_interrupted_write_is_shown_as_unknown_after_a_restart(store_url: str, desk: BillingDesk) -> None:
    url = store_url
    before = AuditLog(url, boot_id="first")
    event_id = before.begin(user="fay", role="finance", action="cancel subscription", organization_id="org_abc123",
                            parameters={}, reason="closing", idempotency_key="k-crash")  # then the process dies
    after = AuditLog(url, boot_id="second")
    assert after.mark_interrupted() == 1
    [unsettled] = after.unsettled("org_abc123")
    assert unsettled["id"] == event_id and unsettled["outcome"] == "unknown"
    BillingDesk(desk.client, after).settle_unknown(FINANCE, event_id, "org_abc123")
    row = after.events().iloc[0]
    assert row.outcome == "unknown" and "Re-read by fay: status active" in row.error


def test_plan_change_preview_matches_what_the_api_does(client: PaymentsClient, control: SandboxControl) -> None:
    control.advance_clock(days=9)
    now = datetime.fromisoformat(control.now().replace("Z", "+00:00"))  # the sandbox's test clock
    catalog, customer = client.list_plans("org_abc123"), client.get_customer("org_abc123")
    options = {option.label: option for option in change_options(catalog, customer)}
    assert "Growth · $399.00 per month" not in options  # the current price is not an option
    assert not any(label.startswith(("Enterprise", "Free Trial")) for label in options)
    upgrade = preview_change(catalog, customer, options["Scale · $699.00 per month"], now)
    downgrade = preview_change(catalog, customer, options["Starter · $179.00 per month"], now)
    yearly = preview_change(catalog, customer, options["Growth · $3,990.00 per year"], now)
    assert (upgrade.kind, downgrade.kind, yearly.kind) == ("upgrade", "downgrade", "upgrade")
    assert "immediately" in upgrade.consequence and "end of the current period" in downgrade.consequence
    actual = client.update_subscription("org_abc123", "price_ScaleMonthly01", "prod_Scale0001")
    assert abs(actual.proration - upgrade.estimated_charge) <= Decimal("0.05")  # type: ignore[operator]


def test_processing_is_filed_under_the_expected_organization_until_the_api_names_the_real_one(
        desk: BillingDesk, audit: AuditLog, client: PaymentsClient, control: SandboxControl) -> None:
    payer = control.organizations("none")[0]["id"]
    with pytest.raises(UnprocessableError):  # not paid yet: the API refuses, the row stays where it was filed
        desk.process_checkout(FINANCE, client.create_checkout(payer, "price_StarterMonthly01",
                                                              "prod_Starter0001").checkout_session_id or "",
                              "paid by phone", "process-1", "org_abc123")
    failed = audit.events().iloc[0]
    assert (failed.action, failed.organization_id, failed.outcome) == ("process checkout", "org_abc123", "failed")
    assert audit.unsettled("org_abc123") == []  # failed is known, not unknown
    link = client.create_checkout(payer, "price_StarterMonthly01", "prod_Starter0001")
    control.pay(link.url)
    result = desk.process_checkout(FINANCE, link.checkout_session_id or "", "paid", "process-2", "org_abc123")
    assert result.processed and result.processed.organization_id == payer
    assert audit.events().iloc[0].organization_id == payer  # the API's answer wins over the guess
    with pytest.raises(InvalidInputError):
        desk.process_checkout(FINANCE, link.checkout_session_id or "", "paid", "process-3", "<script>")


@pytest.mark.parametrize(("url", "problem"), [
    ("https://evil.example/ok", "one of the company's sites"), ("http://desk.example.com/ok", "https://"),
    ("javascript:alert(1)", "https://"), ("http://127.0.0.1:9/ok", "https://")])
def test_checkout_redirects_must_be_https_on_an_allowed_host(desk: BillingDesk, control: SandboxControl, url: str,
                                                             problem: str) -> None:
    with pytest.raises(InputRefused, match=problem):
        desk.create_checkout_link(SUPPORT, "org_abc123", "price_StarterMonthly01", "prod_Starter0001", url, None, "k")
    assert control.mutations() == []
    sandbox_desk = BillingDesk(desk.client, desk.audit, loopback_redirects=True)  # the sandbox's own pages
    assert sandbox_desk._redirect("http://127.0.0.1:9/ok", "success URL") == "http://127.0.0.1:9/ok"


@pytest.mark.parametrize("api_text", list(SECRET_SHAPED_API_TEXT))
def test_the_api_s_error_text_is_scrubbed_before_it_is_stored_or_shown(desk: BillingDesk, audit: AuditLog,
                                                                      control: SandboxControl, api_text: str) -> None:
    """A real answer from the sandbox carrying a secret-shaped message: the error the page shows and every audit
    row the write left hold none of it (the organization's own id stays)."""
    control.add_fault("customer-portal", status=404, code="resource_missing", message=api_text)
    with pytest.raises(Exception) as raised:
        desk.show_portal_link(FINANCE, "org_abc123", "scrub-" + str(abs(hash(api_text))))
    secret = SECRET_SHAPED_API_TEXT[api_text]
    shown = f"{raised.value} {getattr(raised.value, 'user_message', '')}"
    assert secret not in shown and secret not in _audit_text(audit)
    assert "org_abc123" in _audit_text(audit)
    assert "removed" in shown or len(getattr(raised.value, "message", "")) <= 300
