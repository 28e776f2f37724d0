"""Bulk lookups as jobs, in Chromium: a job goes on through a reload, an admin in another browser sees it in
everyone's jobs, opens it from the table and stops it, a console killed with -9 mid-job resumes it on restart
with every id fetched once but the few in flight, and finance sees a job's summary. The sandbox answers slowly
(a latency fault) so the jobs last long enough."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import Console, login, screenshot, start_console, wait_for_app, warm_up

PROGRESS = re.compile(r"([\d,]+) of ([\d,]+) looked up")


def _ids(console: Console, total: int) -> list[str]:
    known = [row["id"] for row in console.sandbox.organizations()]
    return known + [f"org_nobody{index:04d}" for index in range(total - len(known))]


def _start_job(page: Page, ids: list[str]) -> str:
    box = page.get_by_role("textbox", name="Organization ids")
    box.fill("\n".join(ids))
    box.press("Control+Enter")
    wait_for_app(page)
    page.get_by_role("button", name=f"Look up {len(ids):,} organizations").click()
    page.wait_for_url(re.compile(r"[?&]job=[0-9a-f]{32}"))
    wait_for_app(page)
    return re.search(r"job=([0-9a-f]{32})", page.url).group(1)  # type: ignore[union-attr]


def _done(page: Page) -> int:
    text = page.get_by_text(PROGRESS).first.inner_text(timeout=20_000)
    return int(PROGRESS.search(text).group(1).replace(",", ""))  # type: ignore[union-attr]


def _until(condition, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _job_row(data_dir: Path, job_id: str) -> tuple[str, int]:
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        return db.execute("SELECT status, done FROM bulk_jobs WHERE id = ?", (job_id,)).fetchone()


def test_a_job_goes_on_through_a_reload_and_an_admin_elsewhere_sees_and_stops_it(browser: Browser,
                                                                                  console: Console) -> None:
    console.sandbox.add_fault("customer-info", latencyMs=250)
    support = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    admin = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        login(support, console, "support", "bulk")
        job_id = _start_job(support, _ids(console, 1500))
        expect(support.get_by_role("heading", name="Bulk lookup of 1,500 organizations")).to_be_visible()
        _until(lambda: _done(support) >= 20)
        before = _done(support)
        support.reload()
        wait_for_app(support)
        expect(support.get_by_role("heading", name="Bulk lookup of 1,500 organizations")).to_be_visible()
        _until(lambda: _done(support) > before + 20)  # it went on while the page reloaded, and is still going
        expect(support.get_by_role("heading", name="Your jobs")).to_be_visible()
        screenshot(support, "bulk-jobs")

        login(admin, console, "admin", "bulk")
        expect(admin.get_by_role("heading", name="Everyone's jobs")).to_be_visible()
        expect(admin.get_by_test_id("stDataFrame")).to_be_visible()
        grid = admin.get_by_test_id("stDataFrame").last.bounding_box()
        assert grid is not None
        admin.mouse.click(grid["x"] + 15, grid["y"] + 35 + 17)  # the first row's checkbox: open the newest job
        admin.wait_for_url(re.compile(rf"job={job_id}"))
        wait_for_app(admin)
        expect(admin.get_by_text(re.compile(r"Started by support \(support\)"))).to_be_visible()
        screenshot(admin, "bulk-jobs-admin")
        admin.locator(".st-key-bulk_stop").get_by_role("button").click()
        expect(admin.get_by_text(re.compile(r"Stopped: [\d,]+ of 1,500 were looked up"))).to_be_visible(timeout=20_000)
        expect(support.get_by_text(re.compile(r"Stopped: [\d,]+ of 1,500 were looked up"))).to_be_visible(
            timeout=20_000)  # the owner's page, polling the store, sees it stop
        expect(support.get_by_text(re.compile("stopped by admin"))).to_be_visible()
        expect(support.get_by_role("button", name="Download results CSV")).to_be_visible()
        expect(support.get_by_role("button", name="Download results Excel")).to_be_visible()
        wait_for_app(support)
        screenshot(support, "bulk-job-stopped")
    finally:
        console.sandbox.clear_faults()
        support.context.close()
        admin.context.close()


def test_a_console_killed_mid_job_resumes_it_on_restart_fetching_each_id_once(
        page: Page, browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("jobs-crash")
    first = start_console(data_dir)
    try:
        warm_up(first, browser)  # the console's first start read the sandbox's organizations into its directory
        ids = _ids(first, 400)
        filled = first.sandbox.calls("customer-info")  # what the job's reads are counted from
        first.sandbox.add_fault("customer-info", latencyMs=150)
        login(page, first, "support", "bulk")
        job_id = _start_job(page, ids)
        _until(lambda: _job_row(data_dir, job_id)[1] >= 60)
        first.sandbox.clear_faults()
        first.sandbox.add_fault("customer-info", hangSeconds=120)  # what is in flight now stays in flight
        time.sleep(1.0)
        before = first.sandbox.calls("customer-info")
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        first.stop()
    status, done = _job_row(data_dir, job_id)
    assert status == "running" and 60 <= done < 400
    second = start_console(data_dir)  # same data: the store and the sandbox's state survive
    try:
        # Nobody opens the restarted console: its workers start with the server (ui/serve.py) and finish the job.
        _until(lambda: _job_row(data_dir, job_id) == ("done", 400), seconds=90)
        login(page, second, "support", f"bulk?job={job_id}")
        expect(page.get_by_text(re.compile(r"400 of 400 looked up"))).to_be_visible(timeout=90_000)
        expect(page.get_by_role("button", name="Download results CSV")).to_be_visible()
        wait_for_app(page)
        screenshot(page, "bulk-job-resumed")
        after = second.sandbox.calls("customer-info")
    finally:
        second.stop()
    reads: dict[str, int] = {}
    for calls, sign in ((before, 1), (after, 1), (filled, -1)):
        for path, count in calls.items():
            organization_id = path.split("organizationId=")[1]
            reads[organization_id] = reads.get(organization_id, 0) + sign * count
    reads = {organization_id: count for organization_id, count in reads.items() if count}
    assert set(reads) == set(ids), "every id was fetched"
    twice = sorted(organization for organization, count in reads.items() if count > 1)
    assert len(twice) <= 8 and max(reads.values()) <= 2, twice  # only those in flight when it was killed
    assert _job_row(data_dir, job_id) == ("done", 400)


def test_finance_sees_a_job_s_finance_summary_and_downloads_it(page: Page, console: Console) -> None:
    ids = [row["id"] for row in console.sandbox.organizations()]
    login(page, console, "finance", "bulk")
    _start_job(page, ids)
    expect(page.get_by_text(re.compile(rf"{len(ids)} of {len(ids)} looked up"))).to_be_visible(timeout=60_000)
    expect(page.get_by_role("heading", name="Finance summary")).to_be_visible()
    expect(page.get_by_role("button", name="Download summary Excel")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download results Excel").click()
    assert download.value.suggested_filename.endswith(".xlsx")
    wait_for_app(page)
    screenshot(page, "bulk-finance-summary")
