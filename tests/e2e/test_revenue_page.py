"""The Revenue page in Chromium: a console whose store holds two months of daily snapshots with known movements;
finance reads the figures and downloads a month's ledger (formula-safe, audited); support doesn't see the page."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import delete, insert

from services.directory import LOOKUP, directory_organizations
from services.revenue import take_snapshot
from services.store import open_store

from .conftest import Console, login, nav_links, screenshot, start_console, wait_for_app, warm_up, choose

HOSTILE = '=HYPERLINK("http://evil.example","Open")'
TODAY = datetime.now(timezone.utc).date()
CHURNED_ON = TODAY - timedelta(days=20)


def _put(engine, organization_id: str, name: str, mrr: int, day: date, status: str = "active",  # type: ignore[no-untyped-def]
         plan: str = "Starter") -> None:
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(delete(directory_organizations).where(directory_organizations.c.organization_id == organization_id))
        conn.execute(insert(directory_organizations).values(
            organization_id=organization_id, name=name, plan=plan, price_cents=mrr or None, currency="USD",
            interval_unit="month", interval_count=1, status=status, cancel_at_period_end=False, mrr_cents=mrr,
            first_read_at=moment, last_read_at=moment, last_read_by=LOOKUP, last_used_at=moment,
            search_text=organization_id, name_key=name.lower()))


def seed_history(data_dir: Path) -> None:
    """Sixty days before today: Kestrel Labs pays throughout, Harbor Freight churns, the hostile name contracts from
    Scale to Growth, a trial converts."""
    engine = open_store(f"sqlite:///{data_dir / 'audit.sqlite3'}")
    for back in range(60, 0, -1):
        day = TODAY - timedelta(days=back)
        _put(engine, "org_rvkest", "Kestrel Labs", 17900, day)
        _put(engine, "org_rvharb", "Harbor Freight", 39900 if day < CHURNED_ON else 0, day, plan="Growth",
             status="active" if day < CHURNED_ON else "canceled")
        _put(engine, "org_rvhost", HOSTILE, 69900 if back > 10 else 39900, day, plan="Scale" if back > 10 else "Growth")
        _put(engine, "org_rvtrial", "Wombat Logistics", 0 if back > 35 else 17900, day,
             status="trialing" if back > 35 else "active")
        assert take_snapshot(engine, day, "test") is not None
    engine.dispose()


@pytest.fixture(scope="module")
def revenue_console(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Console]:
    data_dir = tmp_path_factory.mktemp("revenue")
    seed_history(data_dir)
    running = start_console(data_dir)  # a directory already held: no sandbox fill; today's snapshot at start
    warm_up(running, browser)
    yield running
    running.stop()


def test_finance_reads_mrr_and_downloads_a_month_s_ledger_formula_safe_and_audited(
        page: Page, revenue_console: Console) -> None:
    login(page, revenue_console, "finance", "revenue")
    expect(page.get_by_role("heading", name="Revenue", exact=True)).to_be_visible()
    metric = page.get_by_test_id("stMetric").filter(has_text="MRR").first
    expect(metric).to_contain_text("$757.00")  # 179 + 399 + 179 at the end: Kestrel, the hostile name, Wombat
    expect(page.get_by_text("4 organizations in the directory")).to_be_visible()
    month = CHURNED_ON.strftime("%Y-%m")
    choose(page, "Month", month)
    choose(page, "Movement", "Churn")
    expect(page.get_by_text(f"1 movements (churn) in {month}")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Ledger CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "org_rvharb" in text and "Harbor Freight" in text and "org_rvkest" not in text
    wait_for_app(page)
    choose(page, "Month", (TODAY - timedelta(days=10)).strftime("%Y-%m"))
    choose(page, "Movement", "Contraction")
    with page.expect_download() as download:
        page.get_by_role("button", name="Ledger CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    wait_for_app(page)
    with sqlite3.connect(revenue_console.data_dir / "audit.sqlite3") as conn:
        exports = conn.execute("SELECT COUNT(*) FROM audit_rows WHERE action = 'export revenue' "
                               "AND user = 'finance'").fetchone()[0]
    assert exports == 2
    screenshot(page, "revenue")


def test_support_has_no_revenue_page(page: Page, revenue_console: Console) -> None:
    login(page, revenue_console, "support", "revenue")
    assert "Revenue" not in nav_links(page)
    expect(page.get_by_text("MRR", exact=True)).to_have_count(0)
