"""Revenue at scale: 100,000 organizations with 365 days of snapshots in a throwaway PostgreSQL.

Measured: (a) a day's snapshot of the 100,000 written by the console's own code (`take_snapshot`), three days in a
row with a few hundred changes each; (b) the month's ledger, first page, server side (`revenue_ledger`), every month
and movement; (c) the Revenue page in headless Chromium on a console started on that store: the click on its link
in the menu to the first frame showing the whole page (its last table drawn, the run ended), timed in the page.

The history is made in SQL from a story per organization (joined on some day, maybe a trial converting, a plan
change, a churn, a reactivation) and the day and cohort rollups aggregated from it, as the console would have
written them; the directory itself by bench/directory_scale.py's `make_rows`.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from services.revenue import movement

from .directory_scale import PLANS, _summary, load_postgres, make_rows
from .support import report

SNAPSHOT_TARGET_S, LEDGER_TARGET_MS, PAGE_TARGET_MS = 10.0, 300.0, 1000.0
KINDS = ("new", "expansion", "reactivation", "contraction", "churn", "first_counted", "no_longer_counted")


def stories(rows: list[dict[str, Any]], days: int, seed: int = 24) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Per organization, its segments (first day index, last day index, plan, price, status, MRR), its movements
    and its first paid day index: ending in the state its directory row holds."""
    chance = random.Random(seed)
    segments, movements, first_paid = [], [], []
    for row in rows:
        final_mrr = row["mrr_cents"] or 0
        joined = 0 if chance.random() < 0.6 else chance.randrange(1, days - 1)
        path = [(joined, row["plan"], row["price_cents"], row["status"], final_mrr)]
        if final_mrr and chance.random() < 0.15 and joined < days - 2:  # a trial converted
            converted = chance.randrange(joined + 1, days)
            path = [(joined, "Free Trial", 0, "trialing", 0), (converted, *path[0][1:])]
        if final_mrr and chance.random() < 0.12 and path[-1][0] < days - 2:  # a plan change before the last
            plan, monthly, _ = chance.choice(PLANS)
            changed = chance.randrange(path[-1][0] + 1, days)
            last = path.pop()
            path += [(last[0], plan, monthly, "active", monthly), (changed, *last[1:])]
        if not final_mrr and row["status"] == "canceled" and chance.random() < 0.7 and joined < days - 2:
            plan, monthly, _ = chance.choice(PLANS)  # paid, then churned
            churned = chance.randrange(joined + 1, days)
            path = [(joined, plan, monthly, "active", monthly), (churned, *path[0][1:])]
        for index, (start, plan, price, status, mrr) in enumerate(path):
            end = path[index + 1][0] - 1 if index + 1 < len(path) else days - 1
            segments.append((row["organization_id"], start, end, plan, price, status, mrr))
            before = path[index - 1][4] if index else None
            kind = movement(before, mrr, any(step[4] for step in path[:index]))
            if kind:
                movements.append((start, row["organization_id"], kind, before or 0, mrr,
                                  path[index - 1][1] if index else None, plan))
        paid = next((step[0] for step in path if step[4]), None)
        if paid is not None:
            first_paid.append((row["organization_id"], paid))
    return segments, movements, first_paid


def load_history(url: str, rows: list[dict[str, Any]], first: date, days: int) -> dict[str, float]:
    """The directory and `days` days of revenue history from `first`, in bulk; seconds each step took."""
    import psycopg

    timings: dict[str, float] = {}
    began = time.perf_counter()
    load_postgres(url, rows)
    timings["directory_s"] = time.perf_counter() - began
    segments, movements, first_paid = stories(rows, days)
    began = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("CREATE TEMP TABLE segments (organization_id text, first_day int, last_day int, plan text, "
                     "price int, status text, mrr int)")
        with conn.cursor() as cursor, cursor.copy("COPY segments FROM STDIN") as copy:
            for segment in segments:
                copy.write_row(segment)
        primary_key = conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'revenue_snapshots'::regclass "
                                   "AND contype = 'p'").fetchone()[0]
        conn.execute(f"ALTER TABLE revenue_snapshots DROP CONSTRAINT {primary_key}")
        conn.execute("DROP INDEX ix_revenue_snapshots_organization")
        conn.execute(
            "INSERT INTO revenue_snapshots SELECT %s::date + d, organization_id, plan, price, 'USD', 'month', 1, "
            "status, false, mrr, false FROM segments, generate_series(first_day, last_day) AS d", (first,))
        timings["snapshots_rows_s"] = time.perf_counter() - began
        conn.execute(f"ALTER TABLE revenue_snapshots ADD CONSTRAINT {primary_key} PRIMARY KEY (day, organization_id)")
        conn.execute("CREATE INDEX ix_revenue_snapshots_organization ON revenue_snapshots (organization_id, day)")
        timings["snapshots_indexes_s"] = time.perf_counter() - began - timings["snapshots_rows_s"]
        movement_copy = ("COPY revenue_movements (day, organization_id, kind, from_mrr_cents, to_mrr_cents, "
                         "from_plan, to_plan) FROM STDIN")
        with conn.cursor() as cursor, cursor.copy(movement_copy) as copy:
            for day, *rest in movements:
                copy.write_row((first + timedelta(days=day), *rest))
        with conn.cursor() as cursor, cursor.copy("COPY revenue_customers FROM STDIN") as copy:
            for organization_id, day in first_paid:
                copy.write_row((organization_id, first + timedelta(days=day)))
        sums = ", ".join(f"coalesce(sum(abs(to_mrr_cents - from_mrr_cents)) FILTER (WHERE kind = '{kind}'), 0) "
                         f"AS {kind}_cents, count(*) FILTER (WHERE kind = '{kind}') AS {kind}_count" for kind in KINDS)
        names = ", ".join(f"{kind}_cents, {kind}_count" for kind in KINDS)
        picked = ", ".join(f"coalesce(m.{kind}_cents, 0), coalesce(m.{kind}_count, 0)" for kind in KINDS)
        conn.execute(f"""
            INSERT INTO revenue_days (day, organizations, customers, mrr_cents, unknown, carried, trialing,
                                      scheduled_churn_cents, scheduled_churn_customers, {names}, taken_at, taken_by)
            WITH m AS (SELECT day, {sums} FROM revenue_movements GROUP BY day),
                 s AS (SELECT day, count(*) AS organizations, count(*) FILTER (WHERE mrr_cents > 0) AS customers,
                              coalesce(sum(mrr_cents) FILTER (WHERE mrr_cents > 0), 0) AS mrr,
                              count(*) FILTER (WHERE status = 'trialing') AS trialing
                       FROM revenue_snapshots GROUP BY day)
            SELECT s.day, s.organizations, s.customers, s.mrr, 0, 0, s.trialing, 0, 0, {picked}, now(), 'bench'
            FROM s LEFT JOIN m ON m.day = s.day""")
        conn.execute("""
            INSERT INTO revenue_cohort_days (day, cohort, customers, mrr_cents)
            SELECT s.day, date_trunc('month', c.first_paid_day)::date, count(*), sum(s.mrr_cents)
            FROM revenue_snapshots s JOIN revenue_customers c USING (organization_id)
            WHERE s.mrr_cents > 0 GROUP BY 1, 2""")
        conn.commit()
        for table in ("revenue_snapshots", "revenue_movements", "revenue_days", "revenue_cohort_days",
                      "revenue_customers"):
            conn.execute(f"ANALYZE {table}")
        conn.commit()
        timings["snapshot_rows"] = conn.execute("SELECT count(*) FROM revenue_snapshots").fetchone()[0]
        timings["movements"] = conn.execute("SELECT count(*) FROM revenue_movements").fetchone()[0]
    timings["history_s"] = time.perf_counter() - began
    return {key: round(value, 1) for key, value in timings.items()}


def _read_today(url: str, day: date, changes: int, seed: int) -> None:
    """The directory as a day's refresh leaves it: every row read that day, `changes` of them on another plan."""
    import psycopg

    chance = random.Random(seed)
    moment = datetime(day.year, day.month, day.day, 4, tzinfo=timezone.utc)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("UPDATE directory_organizations SET last_read_at = %s", (moment,))
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM directory_organizations WHERE mrr_cents > 0 ORDER BY id LIMIT %s OFFSET %s",
            (changes, chance.randrange(1000)))]
        for number, row_id in enumerate(ids):
            plan, monthly, _ = PLANS[number % len(PLANS)]
            if number % 5 == 0:
                conn.execute("UPDATE directory_organizations SET status = 'canceled', mrr_cents = 0 WHERE id = %s",
                             (row_id,))
            else:
                conn.execute("UPDATE directory_organizations SET plan = %s, price_cents = %s, mrr_cents = %s, "
                             "interval_unit = 'month' WHERE id = %s", (plan, monthly, monthly, row_id))
        conn.commit()


def measure(url: str, first: date, days: int, browser: bool) -> dict[str, Any]:
    from services.audit import AuditLog
    from services.auth.roles import Actor, Role
    from services.desk import BillingDesk
    from services.revenue import take_snapshot
    from services.store import store_engine

    engine = store_engine(url)
    results: dict[str, Any] = {"writes": []}
    last = first + timedelta(days=days - 1)
    for number in range(1, 4):  # three days after the history: a refresh's reads, then the day's snapshot
        day = last + timedelta(days=number)
        _read_today(url, day, changes=300, seed=number)
        began = time.perf_counter()
        taken = take_snapshot(engine, day, "bench")
        results["writes"].append({"day": day.isoformat(), "seconds": round(time.perf_counter() - began, 2),
                                  "organizations": taken.organizations if taken else 0,
                                  "movements": taken.movements if taken else 0})
    engine.dispose()
    audit = AuditLog(url)
    desk = BillingDesk(None, audit)  # type: ignore[arg-type]  # the figures read only the store
    actor = Actor("fay", Role.FINANCE)
    end = last + timedelta(days=3)
    start = end - timedelta(days=364)
    overview_ms = []
    for _ in range(5):
        began = time.perf_counter()
        figures = desk.revenue_overview(actor, start, end)
        overview_ms.append((time.perf_counter() - began) * 1000)
    results["overview"] = _summary(overview_ms[1:])
    samples = []
    for month in list(figures.months["month"])[-12:]:
        for kind in (None, "churn", "new", "expansion", "contraction"):
            began = time.perf_counter()
            desk.revenue_ledger(actor, month, None if kind is None else [kind], start, end)
            samples.append((time.perf_counter() - began) * 1000)
    results["ledger"] = _summary(samples)
    audit.engine.dispose()
    results["page"] = page_opens(url, end) if browser else None
    return results


def page_opens(url: str, day_taken: date, rounds: int = 12) -> dict[str, Any] | None:
    """The Revenue page opened from the menu, click to the cohorts table drawn and the run ended, in the page."""
    try:
        from playwright.sync_api import sync_playwright

        from tests.support.browser import launch_chromium, login, start_console, wait_for_app, warm_up

        from .latency import timed_click
    except Exception:
        return None
    import secrets
    import tempfile

    env = {"AUDIT_DATABASE_URL": url, "BILLING_DESK_COOKIE_KEY": secrets.token_urlsafe(48),
           "BILLING_DESK_AUDIT_KEY": secrets.token_urlsafe(48)}
    samples = []
    with tempfile.TemporaryDirectory() as data_dir:
        console = start_console(Path(data_dir), env)
        try:
            _wait_for_today(url)  # the console takes today's snapshot as it starts (the refresh is off here)
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                warm_up(console, browser)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                login(page, console, "finance")
                nav = page.get_by_test_id("stSidebarNav")
                for number in range(rounds + 1):
                    nav.get_by_role("link", name="Customer").click()
                    wait_for_app(page, settle_ms=200)
                    elapsed = timed_click(page, nav.get_by_role("link", name="Revenue"), "[data-testid='stHeading']",
                                          "Cohorts", idle=True)
                    wait_for_app(page, settle_ms=200)
                    if number:  # the first is a warm-up
                        samples.append(elapsed)
                browser.close()
        finally:
            console.stop()
    return _summary(samples)


def _wait_for_today(url: str, seconds: float = 120) -> None:
    from sqlalchemy import func, select

    from services.revenue.tables import revenue_days
    from services.store import store_engine

    engine = store_engine(url)
    today = datetime.now(timezone.utc).date()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(select(func.max(revenue_days.c.day))).scalar() == today:
                    return
            time.sleep(1)
        raise RuntimeError("the console took no snapshot of today within two minutes")
    finally:
        engine.dispose()


def run(organizations: int = 100_000, days: int = 365, browser: bool = True) -> dict[str, Any]:
    from services.store import open_store
    from tests.support.postgres import PostgresServer

    today = datetime.now(timezone.utc).date()
    first = today - timedelta(days=days + 3)  # three days after the history are written by the console's code,
    rows = list(make_rows(organizations, end=datetime.now(timezone.utc) - timedelta(days=4)))  # today at its start
    server = PostgresServer.start()
    try:
        url = server.create_database()
        open_store(url).dispose()
        results: dict[str, Any] = {"organizations": organizations, "days": days}
        results["load"] = load_history(url, rows, first, days)
        print(f"… revenue history loaded: {results['load']}", flush=True)
        results.update(measure(url, first, days, browser))
    finally:
        server.stop()
    return results


def table(results: dict[str, Any]) -> str:
    if not results:
        return "(not run)"
    load, writes = results["load"], results["writes"]
    page = results.get("page") or {}
    worst = max(write["seconds"] for write in writes)
    lines = [f"{results['organizations']:,} organizations, {results['days']} days of snapshots "
             f"({load['snapshot_rows']:,} rows, {load['movements']:,} movements; made in {load['history_s']} s).", "",
             "| Measure | p50 | p95 | Target |", "|---|---:|---:|---|",
             f"| A day's snapshot of {writes[0]['organizations']:,} organizations written (three days: "
             + ", ".join(f"{write['seconds']} s" for write in writes) + f") | | {worst} s (worst) | ≤ "
             f"{SNAPSHOT_TARGET_S:g} s |",
             f"| The month's ledger, first page, server side ({results['ledger']['count']} reads) | "
             f"{results['ledger']['p50_ms']} ms | {results['ledger']['p95_ms']} ms | ≤ {LEDGER_TARGET_MS:g} ms |",
             f"| The page's figures for 365 days, server side | {results['overview']['p50_ms']} ms | "
             f"{results['overview']['p95_ms']} ms | (in the page's time) |",
             "| The Revenue page opened from the menu, click to screen in Chromium | "
             + (f"{page['p50_ms']} ms | {page['p95_ms']} ms" if page else "— | —")
             + f" | ≤ {PAGE_TARGET_MS:g} ms |"]
    return "\n".join(lines)


def failures(results: dict[str, Any]) -> list[str]:
    if not results:
        return []
    missed = []
    if max(write["seconds"] for write in results["writes"]) > SNAPSHOT_TARGET_S:
        missed.append("revenue snapshot write")
    if results["ledger"]["p95_ms"] > LEDGER_TARGET_MS:
        missed.append("revenue ledger p95")
    if results.get("page") and results["page"]["p95_ms"] > PAGE_TARGET_MS:
        missed.append("Revenue page p95")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.revenue_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--organizations", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    return report(run(args.organizations, args.days, browser=not args.skip_browser), table, failures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
