"""The customer directory (services/directory/): every customer read leaves its row, and a search by whatever a
person has finds it. Both stores, against the sandbox over real HTTP.
"""

from __future__ import annotations

import getpass
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from sandbox import SandboxSettings, start_sandbox
from sandbox.control_client import SandboxControl
from sandbox.server import RunningSandbox
from services.audit import AuditFilter, AuditLog
from services.auth.roles import Actor, PermissionDenied, Role
from services.bulk import import_file_ids
from services.console import fill_from_sandbox
from services.desk import BillingDesk
from services.formatting import search_result_line
from services.directory import BULK_JOB, LOOKUP, REFRESH as REFRESH_READ, SANDBOX_SEED, Directory, RefreshSchedule, fold
from services.directory.refresh import SCHEDULER
from services.directory.similarity import word_similarity
from services.inputs import InputRefused
from services.jobs.store import IMPORT, REFRESH, JobStore
from services.jobs.worker import JobWorker
from services.payments.client import PaymentsClient
from services.payments.errors import NotFoundError
from services.payments.models import CustomerInfo
from services.payments.rate_pacer import RatePacer
from services.store import now, open_store
from services.store.rate_budget import SharedRateBudget

SUPPORT, FINANCE, ADMIN = Actor("sam", Role.SUPPORT), Actor("fay", Role.FINANCE), Actor("ada", Role.ADMIN)
ORG = "org_abc123"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def audit(store_url: str) -> Iterator[AuditLog]:
    log = AuditLog(open_store(store_url))
    yield log
    log.engine.dispose()


@pytest.fixture
def sandbox_slow(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A sandbox allowing 600 requests a minute, in a bucket of 30: a refresh spends the bucket at once."""
    running = start_sandbox(SandboxSettings(db_path=tmp_path / "slow.sqlite3", rate_limit=600, rate_burst=30))
    yield running
    running.stop()


@pytest.fixture
def directory(audit: AuditLog) -> Directory:
    return Directory(audit.engine)


@pytest.fixture
def desk(client: PaymentsClient, audit: AuditLog, directory: Directory) -> BillingDesk:
    return BillingDesk(client, audit, directory=directory)


def _named(control: SandboxControl, organization_id: str, name: str, email: str) -> None:
    control.set_profile(organization_id, organizationName=name, email=email)


def test_a_lookup_puts_the_organization_in_the_directory(desk: BillingDesk, directory: Directory) -> None:
    assert directory.entry(ORG) is None
    customer = desk.customer(SUPPORT, ORG)
    entry = directory.entry(ORG)
    assert entry is not None and entry.last_read_by == LOOKUP
    assert (entry.customer_id, entry.email, entry.status) == (customer.customer_id, customer.email, customer.status)
    assert entry.name == customer.display_name
    with directory.engine.connect() as conn:  # no card data, not even the last four digits; no address
        stored = " ".join(str(value) for value in conn.execute(text("SELECT * FROM directory_organizations")).one())
    assert customer.card_last4 and customer.card_last4 not in stored.replace(customer.organization_id, "")
    assert not customer.address or not customer.address.line1 or customer.address.line1 not in stored


def test_mrr_follows_the_finance_summary_rule(desk: BillingDesk, directory: Directory,
                                              control: SandboxControl) -> None:
    """Active and past due count their price a month (a yearly one a twelfth); trials and the canceled zero."""
    for row in control.organizations():
        customer = desk.customer(SUPPORT, row["id"])
        entry = directory.entry(row["id"])
        subscription = customer.subscription
        assert entry is not None
        if customer.status not in ("active", "past_due") or subscription is None:
            assert entry.mrr_cents == 0, row
        elif subscription.unit_amount is not None and subscription.interval in ("month", "year"):
            months = {"month": 1, "year": 12}[subscription.interval] * subscription.interval_count
            assert entry.mrr_cents == round(subscription.unit_amount / months), row


@pytest.mark.parametrize("typed", ["org_abc123", "org_abc", "quokka", "QUOKKA", "Quökka", "quokla freight", "qokka",
                                   "billing@quokkafreight", "quokkafreight.example.com"])
def test_search_finds_the_organization_by_whatever_a_person_has(
        desk: BillingDesk, directory: Directory, control: SandboxControl, typed: str) -> None:
    _named(control, ORG, "Quokka Freight", "billing@quokkafreight.example.com")
    for organization_id in [row["id"] for row in control.organizations()][:30]:
        desk.customer(SUPPORT, organization_id)
    found = [entry.organization_id for entry in desk.search_customers(SUPPORT, typed)]
    assert found and found[0] == ORG, found


def test_an_exact_customer_id_comes_first(desk: BillingDesk, control: SandboxControl) -> None:
    others = [row["id"] for row in control.organizations()][:10]
    for organization_id in [*others, ORG]:
        desk.customer(SUPPORT, organization_id)
    customer_id = desk.customer(SUPPORT, ORG).customer_id
    assert customer_id
    found = desk.search_customers(SUPPORT, customer_id)
    assert found[0].organization_id == ORG and found[0].match == "exact"


def test_results_are_newest_read_first_among_equals(desk: BillingDesk, directory: Directory,
                                                    control: SandboxControl) -> None:
    first, second = [row["id"] for row in control.organizations(status="active")][:2]
    _named(control, first, "Harbor Freight One", "a@harbor.example")
    _named(control, second, "Harbor Freight Two", "b@harbor.example")
    desk.customer(SUPPORT, first)
    desk.customer(SUPPORT, second)
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "harbor")][:2] == [second, first]
    desk.customer(SUPPORT, first)
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "harbor")][:2] == [first, second]


def test_a_read_saying_the_organization_is_gone_marks_it(desk: BillingDesk, directory: Directory,
                                                          control: SandboxControl) -> None:
    desk.customer(SUPPORT, ORG)
    control.add_fault("customer-info", status=404, code="not_found", count=1)
    with pytest.raises(NotFoundError):
        desk.customer(SUPPORT, ORG)
    entry = directory.entry(ORG)
    assert entry is not None and entry.gone_at is not None
    desk.customer(SUPPORT, ORG)
    assert directory.entry(ORG).gone_at is None  # type: ignore[union-attr]


def test_a_changed_customer_is_updated_not_duplicated(desk: BillingDesk, directory: Directory,
                                                      control: SandboxControl) -> None:
    desk.customer(SUPPORT, ORG)
    _named(control, ORG, "Renamed Holdings", "ap@renamed.example")
    desk.customer(SUPPORT, ORG)
    assert directory.size(max_age=0) == 1
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "renamed")] == [ORG]
    assert desk.search_customers(SUPPORT, "billing@") == [] or all(
        entry.email and "billing@" in entry.email for entry in desk.search_customers(SUPPORT, "billing@"))


@pytest.mark.parametrize("typed, sentence", [("", "Type an organization id"), ("   ", "Type an organization id"),
                                             ("x" * 10_000, "at most 200 characters; this one has 10,000")])
def test_bad_searches_get_one_sentence(desk: BillingDesk, typed: str, sentence: str) -> None:
    with pytest.raises(InputRefused, match=sentence):
        desk.search_customers(SUPPORT, typed)


@pytest.mark.parametrize("typed", ['"', "' OR 1=1 --", "NEAR(a b)", "a*", "%", "_", "\\", "name_key : x", "\x00x"])
def test_hostile_searches_are_text(desk: BillingDesk, typed: str) -> None:
    desk.customer(SUPPORT, ORG)
    try:
        found = desk.search_customers(SUPPORT, typed)
    except InputRefused:
        return
    assert all(typed.strip().casefold() in entry.organization_id.casefold() or entry.match == "similar name"
               or typed.strip() in (entry.name or "") + (entry.email or "") + (entry.customer_id or "")
               for entry in found)


def test_short_queries_match_the_start_of_an_id(desk: BillingDesk) -> None:
    desk.customer(SUPPORT, ORG)
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "or")] == [ORG]
    assert desk.search_customers(SUPPORT, "bc") == []


def test_a_bulk_job_read_is_noted_with_its_source(directory: Directory, client: PaymentsClient) -> None:
    customer = client.get_customer(ORG)
    assert directory.note(customer, BULK_JOB)
    assert directory.entry(ORG).last_read_by == BULK_JOB  # type: ignore[union-attr]


def test_forget_is_admin_only_audited_and_undone_by_a_read(desk: BillingDesk, directory: Directory,
                                                           audit: AuditLog) -> None:
    desk.customer(SUPPORT, ORG)
    for actor in (SUPPORT, FINANCE):
        with pytest.raises(PermissionDenied):
            desk.forget_organization(actor, ORG, "asked to be forgotten")
    assert desk.forget_organization(ADMIN, ORG, "asked to be forgotten") is True
    assert directory.entry(ORG) is None and desk.search_customers(SUPPORT, ORG) == []
    events = audit.events(AuditFilter(actions=("forget organization",)))
    assert list(events.outcome) == ["succeeded"] and list(events.reason) == ["asked to be forgotten"]
    desk.customer(SUPPORT, ORG)
    assert directory.entry(ORG) is not None


def test_the_retention_purge_removes_what_was_not_read(directory: Directory, client: PaymentsClient,
                                                       control: SandboxControl) -> None:
    old, recent = ORG, control.organizations(status="active")[1]["id"]
    directory.clock = lambda: now() - timedelta(days=401)
    directory.note(client.get_customer(old), LOOKUP)
    directory.clock = now
    directory.note(client.get_customer(recent), LOOKUP)
    assert directory.purge(timedelta(days=400)) == 1
    assert directory.entry(old) is None and directory.entry(recent) is not None


def test_export_is_finance_and_admin_only_formula_safe_and_audited(
        desk: BillingDesk, control: SandboxControl, audit: AuditLog) -> None:
    _named(control, ORG, "=HYPERLINK(\"http://evil.example\")", "x@quokkafreight.example.com")
    desk.customer(SUPPORT, ORG)
    with pytest.raises(PermissionDenied):
        desk.directory_export(SUPPORT, "csv")
    exported = desk.directory_export(FINANCE, "csv").decode("utf-8-sig")
    assert ORG in exported and "'=HYPERLINK" in exported
    assert desk.directory_export(ADMIN, "xlsx")[:2] == b"PK"
    events = audit.events(AuditFilter(actions=("export directory",)))
    assert sorted(events.user) == ["ada", "fay"] and set(events.outcome) == {"succeeded"}


def test_the_note_of_a_read_never_fails_the_read(client: PaymentsClient, audit: AuditLog) -> None:
    broken = Directory(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(text("DROP TABLE directory_organizations"
                          + (" CASCADE" if audit.engine.dialect.name == "postgresql" else "")))
    desk = BillingDesk(client, audit, directory=broken)
    assert desk.customer(SUPPORT, ORG).organization_id == ORG


def test_fold_and_similarity() -> None:
    assert fold("  Zoë   Ltd ") == "zoe ltd"
    assert fold("ÅNGSTRÖM") == "angstrom"
    assert word_similarity("kestrel", "kestrel labs") == 1.0
    assert word_similarity("kestral", "kestrel labs") >= 0.4
    assert word_similarity("acme", "kestrel labs") == 0.0


FAST = {"lease": timedelta(seconds=2), "heartbeat_every": 0.2, "idle_poll": 0.05}


def test_an_import_fills_the_directory_through_a_job(desk: BillingDesk, directory: Directory, audit: AuditLog,
                                                      client: PaymentsClient, control: SandboxControl) -> None:
    ids = [row["id"] for row in control.organizations()][:12]
    parsed = import_file_ids(("organizationId,name\n" + "\n".join(f"{org},x" for org in ids)
                              + "\nnot an id,y\n" + f"{ids[0]},dup\n").encode())
    assert parsed.valid == ids and parsed.invalid_count == 1 and parsed.duplicates == [ids[0]]
    with pytest.raises(PermissionDenied):
        desk.import_organizations(FINANCE, ids)
    job_id = desk.import_organizations(ADMIN, ids)
    assert JobWorker(desk.jobs, client, on_read=directory.note_job_read, **FAST).run_once()  # type: ignore[arg-type]
    assert desk.jobs.job(job_id).kind == IMPORT  # type: ignore[union-attr]
    assert directory.size(max_age=0) == len(ids)
    assert {directory.entry(org).last_read_by for org in ids} == {"import"}  # type: ignore[union-attr]
    events = audit.events(AuditFilter(actions=("import organizations",)))
    assert list(events.user) == ["ada"] and f'"organizations": {len(ids)}' in events.parameters[0]


def test_a_bulk_lookup_by_a_person_fills_it_too(desk: BillingDesk, directory: Directory,
                                                client: PaymentsClient) -> None:
    desk.start_bulk_job(SUPPORT, [ORG, "org_doesnotexist"])
    assert JobWorker(desk.jobs, client, on_read=directory.note_job_read, **FAST).run_once()  # type: ignore[arg-type]
    assert directory.entry(ORG).last_read_by == BULK_JOB  # type: ignore[union-attr]
    assert directory.entry("org_doesnotexist") is None  # a not-found id is not added


@pytest.mark.parametrize("content, said", [(b"\xff\xfe\x00binary", "isn't UTF-8 text"),
                                           (b"Acme Inc\nGlobex Corp\n", "no organization ids")])
def test_an_import_file_that_is_not_a_list_of_ids_gets_one_sentence(content: bytes, said: str) -> None:
    try:
        parsed = import_file_ids(content)
    except InputRefused as refused:
        assert said in refused.message
        return
    assert not parsed.valid and said == "no organization ids"


def test_a_sandbox_console_fills_its_directory_from_the_sandbox(sandbox: RunningSandbox, client: PaymentsClient,
                                                                control: SandboxControl, audit: AuditLog) -> None:
    directory = Directory(audit.engine)
    assert fill_from_sandbox(sandbox, client, directory) == directory.size() == len(control.organizations())
    assert directory.entry(ORG).last_read_by == SANDBOX_SEED  # type: ignore[union-attr]


def test_the_command_imports_a_file_and_queues_a_refresh(tmp_path: Path, store_url: str,
                                                         control: SandboxControl, client: PaymentsClient) -> None:
    store = open_store(store_url)
    Directory(store).note(client.get_customer(ORG), LOOKUP)
    ids = [row["id"] for row in control.organizations()][:5]
    listing = tmp_path / "organizations.csv"
    listing.write_text("organization_id\n" + "\n".join(ids) + "\n")
    environment = {**{key: value for key, value in os.environ.items() if not key.startswith(("BILLING_DESK_",
                                                                                               "PAYMENTS_API"))},
                   "AUDIT_DATABASE_URL": store_url, "BILLING_DESK_SANDBOX": "1",
                   "BILLING_DESK_DATA_DIR": str(tmp_path / "data"),
                   "BILLING_DESK_AUDIT_KEY": secrets.token_urlsafe(48),
                   "BILLING_DESK_COOKIE_KEY": secrets.token_urlsafe(48)}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.directory", *arguments], cwd=ROOT, env=environment,
                              capture_output=True, text=True, timeout=120)

    imported = run("import", str(listing))
    assert imported.returncode == 0, imported.stderr
    assert "Queued 5 organizations" in imported.stdout
    refreshed = run("refresh")
    assert refreshed.returncode == 0 and "Queued 1 organizations" in refreshed.stdout, refreshed.stderr
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"\xff\xfe\x00\x01")
    refused = run("import", str(broken))
    assert refused.returncode == 1 and "isn't UTF-8 text" in refused.stderr
    jobs = JobStore(store).jobs()
    assert sorted(job.kind for job in jobs) == [IMPORT, REFRESH]
    assert {job.username for job in jobs} == {f"command line ({getpass.getuser()})"}
    events = AuditLog(store).events(AuditFilter(actions=("import organizations", "refresh directory")))
    assert sorted(events.action) == ["import organizations", "refresh directory"]
    store.dispose()


def _schedule(audit: AuditLog, directory: Directory, jobs: JobStore, hour: int, at: datetime, by: str
              ) -> RefreshSchedule:
    return RefreshSchedule(audit.engine, directory, jobs, audit, hour=hour, by=by, clock=lambda: at)


def test_the_daily_refresh_is_queued_once_among_all_processes(
        desk: BillingDesk, directory: Directory, audit: AuditLog, client: PaymentsClient,
        control: SandboxControl) -> None:
    ids = [row["id"] for row in control.organizations()][:6]
    for organization_id in ids:
        desk.customer(SUPPORT, organization_id)
    jobs = JobStore(audit.engine)
    early = datetime(2026, 12, 8, 2, 59, tzinfo=timezone.utc)
    assert _schedule(audit, directory, jobs, 3, early, "replica-1").run_due() is None  # not yet its hour
    due = early + timedelta(minutes=1)
    processes = [_schedule(audit, directory, jobs, 3, due, f"replica-{index}") for index in range(4)]
    results: list[list[str] | None] = []
    threads = [threading.Thread(target=lambda schedule=schedule: results.append(schedule.run_due()))
               for schedule in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    queued = [result for result in results if result]
    assert len(results) == 4 and len(queued) == 1  # one process won the day
    assert [job.kind for job in jobs.jobs()] == [REFRESH] and jobs.jobs()[0].total == len(ids)
    assert _schedule(audit, directory, jobs, 3, due + timedelta(hours=5), "replica-9").run_due() is None
    # Changed outside the console: a cancel through the sandbox's customer portal, a new name the customer typed.
    entries = {org: directory.entry(org) for org in ids[1:]}
    cancelling = next(org for org, entry in entries.items()
                      if entry is not None and entry.status == "active" and not entry.cancel_at_period_end)
    portal = client.create_portal(cancelling)
    assert "end at the end of the current period" in requests.post(f"{portal.url}/cancel", timeout=5).text
    control.set_profile(ids[0], organizationName="Capybara Renamed")
    assert desk.search_customers(SUPPORT, "capybara") == []
    assert not directory.entry(cancelling).cancel_at_period_end  # type: ignore[union-attr]
    worker = JobWorker(jobs, client, on_read=directory.note_job_read, **FAST)  # type: ignore[arg-type]
    assert worker.run_once()
    found = desk.search_customers(SUPPORT, "capybara")
    assert [entry.organization_id for entry in found] == [ids[0]] and found[0].last_read_by == "refresh"
    assert directory.entry(cancelling).cancel_at_period_end  # type: ignore[union-attr]
    assert "Cancelling" in search_result_line(desk.search_customers(SUPPORT, cancelling)[0], now())
    events = audit.events(AuditFilter(actions=("refresh directory",)))
    assert list(events.user) == [SCHEDULER]


def test_a_sandbox_fill_counts_as_the_day_s_refresh(directory: Directory, audit: AuditLog) -> None:
    jobs = JobStore(audit.engine)
    noon = datetime(2026, 12, 8, 12, tzinfo=timezone.utc)
    assert _schedule(audit, directory, jobs, 3, noon, "console").claim_today("sandbox fill")
    assert _schedule(audit, directory, jobs, 3, noon, "console").run_due() is None and jobs.jobs() == []


def test_background_reads_leave_the_rate_to_people(sandbox_slow: RunningSandbox, audit: AuditLog) -> None:
    """Two processes on one key (their shared budget in the store): one refreshing the directory in the background,
    the other a person looking customers up. The person's lookups never wait for the rate; the refresh does, and
    the API refuses nothing (counted at the sandbox)."""
    control = SandboxControl(sandbox_slow.root_url, sandbox_slow.api_key)
    ids = [row["id"] for row in control.organizations()]
    worker_client = PaymentsClient(sandbox_slow.base_url, sandbox_slow.api_key,
                                   pacer=RatePacer(shared=SharedRateBudget(audit.engine, sandbox_slow.api_key)))
    person_client = PaymentsClient(sandbox_slow.base_url, sandbox_slow.api_key,
                                   pacer=RatePacer(shared=SharedRateBudget(audit.engine, sandbox_slow.api_key)))
    person_client.get_customer(ids[0])  # each learns the bucket from the headers first
    worker_client.get_customer(ids[0])
    jobs, directory = JobStore(audit.engine), Directory(audit.engine)
    job_id = jobs.create(SCHEDULER, "system", ids * 2, kind=REFRESH)  # more than the bucket holds
    worker = JobWorker(jobs, worker_client, on_read=directory.note_job_read, concurrency=4, **FAST).start()
    try:
        time.sleep(1.0)  # the refresh has spent the bucket down to the people's reserve
        waited_before = person_client.pacer.waited_seconds
        for organization_id in ids[:5]:
            person_client.get_customer(organization_id)
            time.sleep(0.2)
        person_waited = person_client.pacer.waited_seconds - waited_before
        assert worker_client.pacer.waited_seconds > 1.0  # the refresh was paced
        assert person_waited == 0.0  # the person never waited for the rate
    finally:
        worker.stop(timeout=30)
    assert control.stats()["rateLimited"] == 0
    assert (jobs.job(job_id) or jobs.jobs()[0]).kind == REFRESH


def test_a_refresh_killed_midway_is_resumed_by_another_worker(audit: AuditLog, sandbox_slow: RunningSandbox) -> None:
    """A worker dies mid-refresh (as under kill -9: nothing finished or released); another takes the job over
    once its claim lapses and reads what is left, so the directory ends with every organization."""
    control = SandboxControl(sandbox_slow.root_url, sandbox_slow.api_key)
    ids = [row["id"] for row in control.organizations()]
    jobs, directory = JobStore(audit.engine), Directory(audit.engine)
    for organization_id in ids:  # known to the directory (a refresh only brings known rows up to date)
        directory.note(CustomerInfo(organization_id, None), LOOKUP)
    job_id = jobs.create(SCHEDULER, "system", ids, kind=REFRESH)
    with PaymentsClient(sandbox_slow.base_url, sandbox_slow.api_key) as client:
        first = JobWorker(jobs, client, on_read=directory.note_job_read, concurrency=2, **FAST).start()
        deadline = time.monotonic() + 60
        while (jobs.job(job_id).done or 0) < 10 and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
        first.kill()
        killed_at = jobs.job(job_id).done  # type: ignore[union-attr]
        assert 10 <= killed_at < len(ids)
        second = JobWorker(jobs, client, on_read=directory.note_job_read, concurrency=2, **FAST).start()
        deadline = time.monotonic() + 120
        while jobs.job(job_id).status != "done" and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.1)
        second.stop()
    assert jobs.job(job_id).status == "done"  # type: ignore[union-attr]
    assert directory.size() == len(ids)
    assert {directory.entry(org).last_read_by for org in ids} == {"refresh"}  # type: ignore[union-attr]


def test_the_refresh_neither_keeps_the_unused_nor_brings_back_the_forgotten(
        directory: Directory, client: PaymentsClient, control: SandboxControl) -> None:
    used, unused, forgotten = [row["id"] for row in control.organizations()][:3]
    old = now() - timedelta(days=401)
    directory.clock = lambda: old
    for organization_id in (used, unused, forgotten):
        directory.note(client.get_customer(organization_id), LOOKUP)
    directory.clock = now
    directory.note(client.get_customer(used), BULK_JOB)  # a person's work reads it again
    directory.note(client.get_customer(unused), REFRESH_READ)  # only the daily refresh does
    assert directory.forget(forgotten)
    assert directory.note(client.get_customer(forgotten), REFRESH_READ) is False  # a refresh adds nothing
    assert directory.entry(forgotten) is None
    assert directory.purge(timedelta(days=400)) == 1
    assert directory.entry(unused) is None and directory.entry(used) is not None


def test_a_refresh_that_could_not_be_queued_gives_the_day_back(
        desk: BillingDesk, directory: Directory, audit: AuditLog) -> None:
    desk.customer(SUPPORT, ORG)
    due = datetime(2026, 12, 8, 4, tzinfo=timezone.utc)

    class Refusing(JobStore):
        def create(self, *args: object, **kwargs: object) -> str:
            raise RuntimeError("the store refused")

    with pytest.raises(RuntimeError):
        _schedule(audit, directory, Refusing(audit.engine), 3, due, "replica-1").run_due()
    queued = _schedule(audit, directory, JobStore(audit.engine), 3, due, "replica-2").run_due()
    assert queued and len(queued) == 1  # tried again, and queued this time


def test_background_jobs_keep_no_customer_data_in_their_items(audit: AuditLog, client: PaymentsClient) -> None:
    jobs, directory = JobStore(audit.engine), Directory(audit.engine)
    job_id = jobs.create(SCHEDULER, "system", [ORG], kind=REFRESH, limited=False)
    directory.note(client.get_customer(ORG), LOOKUP)
    assert JobWorker(jobs, client, on_read=directory.note_job_read, **FAST).run_once()  # type: ignore[arg-type]
    assert jobs.results(job_id) == [{"organization_id": ORG, "status": "active", "error": None}]


# --- a million organizations' ways (migration 0014; bench/directory_scale.py measures them) ------------------------
def _words(directory: Directory) -> set[str]:
    with directory.engine.connect() as conn:
        return set(conn.execute(text("SELECT DISTINCT word FROM directory_name_words")).scalars())


def test_forgetting_an_organization_leaves_none_of_its_name_s_words(desk: BillingDesk, directory: Directory,
                                                                    control: SandboxControl) -> None:
    other = control.organizations(status="active")[1]["id"]
    _named(control, ORG, "Quokka Freight", "billing@quokka.example")
    _named(control, other, "Wombat Freight", "ap@wombat.example")
    desk.customer(SUPPORT, ORG)
    desk.customer(SUPPORT, other)
    assert {"quokka", "freight", "wombat"} <= _words(directory)
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "qokka")] == [ORG]
    assert desk.forget_organization(ADMIN, ORG, "asked to be forgotten")
    words = _words(directory)
    assert "quokka" not in words and {"freight", "wombat"} <= words  # another name still holds "freight"
    assert desk.search_customers(SUPPORT, "qokka") == []
    desk.customer(SUPPORT, ORG)  # read again: it comes back, misspellings and all
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "qokka")] == [ORG]


def test_the_purge_takes_the_words_of_what_it_removes(directory: Directory, client: PaymentsClient,
                                                      control: SandboxControl) -> None:
    recent = control.organizations(status="active")[1]["id"]
    _named(control, ORG, "Quokka Freight", "billing@quokka.example")
    _named(control, recent, "Wombat Logistics", "ap@wombat.example")
    directory.clock = lambda: now() - timedelta(days=401)
    directory.note(client.get_customer(ORG), LOOKUP)
    directory.clock = now
    directory.note(client.get_customer(recent), LOOKUP)
    assert directory.purge(timedelta(days=400)) == 1
    words = _words(directory)
    assert not {"quokka", "freight"} & words and {"wombat", "logistics"} <= words


def test_a_broad_search_walks_the_newest_reads_first(desk: BillingDesk, control: SandboxControl,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Over `BROAD` matches, the newest-read index is walked rather than every match sorted; on PostgreSQL the newest
    reads are tried before the index: the same answer every way."""
    from services.directory import search

    ids = [row["id"] for row in control.organizations(status="active")][:5]
    for number, organization_id in enumerate(ids):
        _named(control, organization_id, f"Harbor Freight {number}", f"ap{number}@harbor.example")
        desk.customer(SUPPORT, organization_id)
    newest_first = list(reversed(ids))
    sorted_answer = [entry.organization_id for entry in desk.search_customers(SUPPORT, "harbor")]
    monkeypatch.setattr(search, "BROAD", 2)
    monkeypatch.setattr(search, "NEWEST_TRIED_FIRST", 2)  # PostgreSQL: the newest two tried, then the index
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "harbor")] == sorted_answer
    assert sorted_answer == newest_first
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "or")] == newest_first  # short
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "harbor", limit=2)] == newest_first[:2]


def test_a_broad_search_whose_matches_are_all_old_walks_no_further_than_its_reach(
        desk: BillingDesk, control: SandboxControl, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of matches all read long ago would have the walk read the whole directory: it stops after
    `WALKED_AT_MOST` reads and takes the rest from the index's first matches, newest first."""
    from services.directory import search

    zephyrine = [row["id"] for row in control.organizations(status="active")][:5]
    for number, organization_id in enumerate(zephyrine):
        _named(control, organization_id, f"Zephyrine Freight {number}", f"ap{number}@zephyrine.example")
        desk.customer(SUPPORT, organization_id)
    newer = [row["id"] for row in control.organizations(status="active")][5:9]
    for organization_id in newer:  # read after every match
        read = desk.customer(SUPPORT, organization_id)
        assert "zephyrine" not in f"{read.organization_name} {read.name} {read.email}".lower()
    monkeypatch.setattr(search, "BROAD", 2)  # the probe takes 3 of the 5 matches
    monkeypatch.setattr(search, "NEWEST_TRIED_FIRST", 2)
    monkeypatch.setattr(search, "WALKED_AT_MOST", 3)  # the newest three reads hold no match
    found = [entry.organization_id for entry in desk.search_customers(SUPPORT, "zephyrine")]
    assert len(found) == 3 and set(found) <= set(zephyrine)  # an unbounded walk would have found all five
    assert found == sorted(found, key=zephyrine.index, reverse=True)  # newest first
    monkeypatch.setattr(search, "WALKED_AT_MOST", 6)  # the reach now holds the two newest matches
    found = [entry.organization_id for entry in desk.search_customers(SUPPORT, "zephyrine")]
    assert found[:2] == [zephyrine[4], zephyrine[3]] and set(found) <= set(zephyrine) and len(set(found)) == len(found)


def test_migration_0014_keeps_the_words_of_the_names_already_kept(tmp_path: Path, store_url: str) -> None:
    from services.store import store_engine, upgrade

    engine = store_engine(store_url)
    upgrade(engine, "0013")
    moment = now()
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO directory_organizations (organization_id, status, cancel_at_period_end, first_read_at, "
            "last_read_at, last_read_by, last_used_at, search_text, name_key) VALUES ('org_kestrel', 'active', "
            "false, :at, :at, 'lookup', :at, 'org_kestrel kestrel labs', 'kestrel labs')"), {"at": moment})
    upgrade(engine)
    directory = Directory(engine)
    assert {"kestrel", "labs"} <= _words(directory)
    assert [entry.organization_id for entry in directory.search("kestral")] == ["org_kestrel"]
    engine.dispose()


def test_a_console_keeps_a_name_s_words_after_the_read_never_a_forgotten_one_s(
        audit: AuditLog, client: PaymentsClient, control: SandboxControl) -> None:
    directory = Directory(audit.engine, words_in_background=True)  # as the console keeps it
    _named(control, ORG, "Quokka Freight", "billing@quokka.example")
    assert directory.note(client.get_customer(ORG), LOOKUP)
    assert directory.word_upkeep is not None
    directory.word_upkeep.settle()
    assert {"quokka", "freight"} <= _words(directory)
    assert [entry.organization_id for entry in directory.search("qokka")] == [ORG]
    directory.word_upkeep.add("org_forgotten", "wombat logistics", None)  # forgotten before the thread got to it
    directory.word_upkeep.settle()
    assert "wombat" not in _words(directory)


def test_a_renamed_organization_leaves_none_of_its_old_name_s_words(desk: BillingDesk, directory: Directory,
                                                                   control: SandboxControl) -> None:
    _named(control, ORG, "Quokka Freight", "billing@quokka.example")
    desk.customer(SUPPORT, ORG)
    _named(control, ORG, "Wombat Freight", "billing@quokka.example")
    desk.customer(SUPPORT, ORG)
    words = _words(directory)
    assert "quokka" not in words and {"wombat", "freight"} <= words
    assert desk.forget_organization(ADMIN, ORG, "asked to be forgotten")
    assert not {"quokka", "wombat", "freight"} & _words(directory)


def test_a_misspelling_in_each_word_and_a_common_word_s_newer_names(desk: BillingDesk, directory: Directory,
                                                                      client: PaymentsClient,
                                                                      control: SandboxControl) -> None:
    """Every word typed counts: "quokka freigt" finds Quokka Freight even when more names than a page hold
    "freight" and were read since; a short word's misspelling ("pixol") is found as PostgreSQL finds it."""
    rows = [row["id"] for row in control.organizations()][:26]
    _named(control, rows[0], "Quokka Freight", "ap@quokka.example")
    _named(control, rows[1], "Pixel Studio", "ap@pixel.example")
    desk.customer(SUPPORT, rows[0])
    desk.customer(SUPPORT, rows[1])
    for number, organization_id in enumerate(rows[2:]):
        _named(control, organization_id, f"Freight Carrier {number}", f"ap{number}@carrier.example")
        desk.customer(SUPPORT, organization_id)
    found = desk.search_customers(SUPPORT, "quokka freigt")
    assert found and found[0].organization_id == rows[0] and found[0].match == "similar name"
    assert [entry.organization_id for entry in desk.search_customers(SUPPORT, "pixol")] == [rows[1]]


def test_the_similarity_is_postgresql_s_own(postgres_server) -> None:  # type: ignore[no-untyped-def]
    pairs = [("word", "two words"), ("kestral", "kestrel labs"), ("pixol", "pixel studio"), ("harbr", "harbor freight"),
             ("quokka freigt", "quokka freight ltd"), ("acme", "kestrel labs"), ("zoe", "zoe zoe ltd"),
             ("fre ight", "freight freight co"), ("o-k", "ok computer"), ("labs", "labs labs labs"),
             ("northwind", "north wind traders"), ("gmbh", "muller gmbh & co. kg"), ("a", "a b c"), ("", "x")]
    engine = open_store(postgres_server.create_database())  # the migrations create pg_trgm
    with engine.connect() as conn:
        theirs = [round(float(conn.execute(text("SELECT word_similarity(:a, :b)"), {"a": a, "b": b}).scalar()), 4)
                  for a, b in pairs]
    engine.dispose()
    assert [word_similarity(a, b) for a, b in pairs] == theirs
