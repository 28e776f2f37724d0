"""The production shape, in Chromium through nginx: two console replicas on one PostgreSQL (deploy/cluster.py,
what `make cluster` runs), on a sandbox API both replicas share.

- a write on replica 1 is seen at once on replica 2 (the organization's version in the store keys the cache);
- replica 1 killed with -9 mid-write: the next page load lands on replica 2, still signed in, and the write it
  had in flight is offered for re-reading as "Outcome unknown";
- PostgreSQL restarted mid-session: reads go on, writes are refused with the audit-unavailable sentence, and the
  console writes again once it is back, with no restart;
- the process running a bulk job killed with -9: started again, the job is taken over and finishes, each id
  fetched once but those in flight.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from deploy.cluster import Cluster, free_port
from sandbox.control_client import SandboxControl
from services.payments.client import PaymentsClient

from tests.support.browser import screenshot, wait_for_app
from tests.support.cluster import pinned, served_by, sign_in
UPGRADE_TO = "Expansion · $999.00 per month"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's own temporary folder: that is private to root, and PostgreSQL runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="billing-desk-cluster-"))
    folder.chmod(0o755)
    running = Cluster(folder, port=free_port(), replica_ports=[free_port(), free_port()],
                      postgres_port=free_port(), sandbox_port=free_port(), mailbox_port=free_port()).start()
    yield running
    running.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def control(cluster: Cluster) -> SandboxControl:
    return SandboxControl(cluster.api_url.removesuffix("/api/v1"), cluster.api_key)


def organizations_to_upgrade(cluster: Cluster, control: SandboxControl, count: int) -> list[str]:
    """Active organizations on a plan below Expansion, not cancelling."""
    client = PaymentsClient(cluster.api_url, cluster.api_key)
    found = []
    for row in control.organizations("active", canceling=False):
        subscription = client.get_customer(row["id"]).subscription
        if subscription and subscription.plan_name in ("Starter", "Growth") and subscription.interval == "month":
            found.append(row["id"])
        if len(found) == count:
            return found
    raise AssertionError("the sandbox has too few organizations to upgrade")


def start_upgrade(page: Page, organization_id: str) -> None:
    """On the Subscription page of `organization_id`: choose Expansion and confirm, without waiting for the end."""
    tab = page.get_by_role("tab", name="Change plan")
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    wait_for_app(page)
    page.get_by_role("combobox", name="Move to").click()
    page.get_by_role("option", name=UPGRADE_TO, exact=True).click()
    wait_for_app(page)
    page.get_by_role("button", name="Change plan…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name="Reason").fill("Customer needs more seats")
    dialog.get_by_role("button", name="Confirm upgrade").click()


def test_a_write_on_one_replica_is_seen_at_once_on_the_other(browser: Browser, cluster: Cluster,
                                                              control: SandboxControl) -> None:
    (organization_id,) = organizations_to_upgrade(cluster, control, 1)
    reader_context, writer_context = pinned(browser, cluster, "replica-2"), pinned(browser, cluster, "replica-1")
    reader, writer = reader_context.new_page(), writer_context.new_page()
    try:
        sign_in(reader, cluster, f"customer?org={organization_id}")
        assert served_by(reader, cluster) == "replica-2"
        expect(reader.get_by_text("$999.00 per month")).to_have_count(0)  # read, and now cached on replica 2

        sign_in(writer, cluster, f"subscription?org={organization_id}")
        assert served_by(writer, cluster) == "replica-1"
        start_upgrade(writer, organization_id)
        expect(writer.get_by_text(re.compile(r"Upgraded to Expansion"))).to_be_visible()

        reader.reload()  # within the cache's minute: without the version, replica 2 would show the old plan
        wait_for_app(reader)
        expect(reader.get_by_text("$999.00 per month")).to_be_visible()
        screenshot(reader, "cluster-customer")  # as served through nginx by replica 2, in test mode
    finally:
        reader_context.close()
        writer_context.close()


def test_a_replica_killed_mid_write_hands_its_people_to_the_other(browser: Browser, cluster: Cluster,
                                                                 control: SandboxControl) -> None:
    (organization_id,) = organizations_to_upgrade(cluster, control, 1)
    context = pinned(browser, cluster, "replica-1")
    page = context.new_page()
    try:
        sign_in(page, cluster, f"subscription?org={organization_id}")
        # The API takes its time answering, so the write is in flight when replica 1 dies.
        control.add_fault("subscription-update", hangSeconds=8)
        start_upgrade(page, organization_id)
        deadline = time.monotonic() + 15
        while not any(fault["hits"] for fault in control.faults()):
            assert time.monotonic() < deadline, "the upgrade never reached the API"
            time.sleep(0.1)
        cluster.replicas[0].kill()  # kill -9

        page.reload()  # the next page load: nginx finds replica 1 gone and sends it to replica 2
        wait_for_app(page)
        expect(page.get_by_role("button", name="Log out")).to_be_visible()  # still signed in
        assert served_by(page, cluster) == "replica-2"
        unknown = page.get_by_text(re.compile(r"Outcome unknown: change plan by finance"))
        deadline = time.monotonic() + 60  # replica 2 settles it at its next heartbeat (every 10 s)
        while not unknown.count():
            assert time.monotonic() < deadline, "the interrupted write was never offered for re-reading"
            page.wait_for_timeout(2000)
            page.reload()
            wait_for_app(page)
        page.get_by_role("button", name="Re-read the customer to settle it").click()
        wait_for_app(page)
        expect(unknown).to_have_count(0)
        # Whether the API finished the write its caller died waiting for is the API's business (this sandbox
        # drops a request whose caller went away); it is never made twice.
        assert len([m for m in control.mutations("update") if m["organization_id"] == organization_id]) <= 1
    finally:
        control.clear_faults()
        context.close()
        cluster.restart_replica(1)


def test_a_database_restart_refuses_writes_keeps_reads_and_recovers(browser: Browser, cluster: Cluster,
                                                                    control: SandboxControl) -> None:
    (organization_id,) = organizations_to_upgrade(cluster, control, 1)
    context = pinned(browser, cluster, "replica-2")
    page = context.new_page()
    try:
        sign_in(page, cluster, f"subscription?org={organization_id}")
        cluster.postgres.stop("fast")
        try:
            start_upgrade(page, organization_id)
            expect(page.get_by_text("The audit log can't be written right now, so nothing was changed.")
                   ).to_be_visible()
            assert not [m for m in control.mutations("update") if m["organization_id"] == organization_id]
            page.keyboard.press("Escape")
            wait_for_app(page)
            page.get_by_role("link", name="Customer", exact=True).click()  # a read, in the same session
            wait_for_app(page)
            expect(page.get_by_role("button", name="Log out")).to_be_visible()
            expect(page.get_by_text("Current period ends")).to_be_visible()
        finally:
            cluster.postgres.start()
        page.get_by_role("link", name="Subscription actions").click()
        wait_for_app(page)
        start_upgrade(page, organization_id)
        expect(page.get_by_text(re.compile(r"Upgraded to Expansion"))).to_be_visible()
    finally:
        context.close()


def test_a_bulk_job_outlives_the_process_running_it(cluster: Cluster, control: SandboxControl) -> None:
    """The job's worker (a replica's, or the worker process) killed with -9 mid-job: once it is started again
    (as `make cluster` and systemd do), the job is taken over at once and finishes, every id fetched once but
    those in flight."""
    from services.jobs.store import JobStore
    from services.store import store_engine

    engine = store_engine(cluster.postgres.url())
    jobs = JobStore(engine)
    known = [row["id"] for row in control.organizations()]
    ids = known + [f"org_nobody{index:04d}" for index in range(600 - len(known))]
    before = control.calls("customer-info")
    control.add_fault("customer-info", latencyMs=150)
    job_id = jobs.create("support", "support", ids)
    try:
        deadline = time.monotonic() + 60
        while jobs.job(job_id).done < 60:
            assert time.monotonic() < deadline, "no worker ran the job"
            time.sleep(0.2)
        pid = int(jobs.job(job_id).worker_id.split(":")[1])
        holders = {child.process.pid: child for child in [*cluster.replicas, cluster.worker]}
        holders[pid].kill()  # kill -9
        if holders[pid] is cluster.worker:
            cluster.worker = cluster._worker().start()
        else:
            cluster.restart_replica(cluster.replicas.index(holders[pid]) + 1)
        deadline = time.monotonic() + 120
        while jobs.job(job_id).status != "done":
            assert time.monotonic() < deadline, f"the job was not taken over: {jobs.job(job_id)}"
            time.sleep(0.5)
    finally:
        control.clear_faults()
    after = control.calls("customer-info")
    reads = {path: count - before.get(path, 0) for path, count in after.items() if count > before.get(path, 0)}
    assert {path.split("organizationId=")[1] for path in reads} == set(ids)
    assert sum(count > 1 for count in reads.values()) <= 8 and max(reads.values()) <= 2
    assert len(jobs.results(job_id)) == len(ids)
    engine.dispose()
