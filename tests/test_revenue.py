"""Revenue over time (services/revenue/): daily snapshots, MRR movements, rollups, on both stores; and a scripted
month on the sandbox's test clock whose movements the test computes itself, from the sandbox's own state and the
changes it makes, never with the console's code."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from sandbox import RunningSandbox, SandboxSettings, start_sandbox
from sandbox.catalog import PRICES, price_of
from sandbox.control_client import SandboxControl
from services.directory import LOOKUP, REFRESH, Directory, directory_organizations
from services.payments.client import PaymentsClient
from services.revenue import LABELS, ledger, movement, overview, take_snapshot
from services.revenue.tables import revenue_days, revenue_movements, revenue_snapshots
from services.store import open_store

DAY1 = date(2026, 11, 1)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    """The shared fixture's sandbox, with a rate that lets a month of daily reads of every organization through
    in seconds (the rate limit is not what these tests are about)."""
    running = start_sandbox(SandboxSettings(db_path=tmp_path / "sandbox.sqlite3", rate_limit=100_000))
    yield running
    running.stop()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(("before", "after", "paid_before", "kind"), [
    (0, 17900, False, "new"), (0, 17900, True, "reactivation"), (17900, 39900, True, "expansion"),
    (39900, 17900, True, "contraction"), (17900, 0, True, "churn"), (17900, 17900, True, None), (0, 0, True, None),
    (None, 17900, False, "first_counted"), (17900, None, True, "no_longer_counted"), (None, 0, False, None),
    (0, None, True, None), (None, None, True, None)])
def test_each_change_is_one_kind_of_movement(before: int | None, after: int | None, paid_before: bool,
                                             kind: str | None) -> None:
    assert movement(before, after, paid_before) == kind
    assert kind is None or kind in LABELS


def _put(engine: Engine, organization_id: str, mrr: int | None, day: date, status: str = "active",
         plan: str = "Starter", cancelling: bool = False, gone: bool = False) -> None:
    """The directory's row for an organization as read on `day` (noon UTC)."""
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(delete(directory_organizations).where(
            directory_organizations.c.organization_id == organization_id))
        conn.execute(insert(directory_organizations).values(
            organization_id=organization_id, plan=plan, price_cents=mrr, currency="USD", interval_unit="month",
            interval_count=1, status=status, cancel_at_period_end=cancelling, mrr_cents=mrr, first_read_at=moment,
            last_read_at=moment, last_read_by=LOOKUP, last_used_at=moment, gone_at=moment if gone else None,
            search_text=organization_id, name_key=""))


def _day_totals(engine: Engine) -> dict[date, dict[str, Any]]:
    with engine.connect() as conn:
        return {date.fromisoformat(str(row.day)): row._asdict()
                for row in conn.execute(select(revenue_days).order_by(revenue_days.c.day))}


def _moves(engine: Engine) -> set[tuple[str, str, str, int]]:
    with engine.connect() as conn:
        return {(str(row.day), row.organization_id, row.kind, row.to_mrr_cents - row.from_mrr_cents)
                for row in conn.execute(select(revenue_movements))}


def test_days_are_taken_once_with_their_movements_and_missing_days_carried(engine: Engine) -> None:
    day = {n: DAY1 + timedelta(days=n - 1) for n in range(1, 8)}
    _put(engine, "org_a", 17900, day[1])
    _put(engine, "org_b", 0, day[1], status="trialing", plan="Free Trial")
    _put(engine, "org_c", 39900, day[1], plan="Growth", cancelling=True)
    _put(engine, "org_d", None, day[1])  # counted, its price unknown
    taken = take_snapshot(engine, day[1], "test")
    assert taken is not None and (taken.organizations, taken.carried, taken.movements) == (4, 0, 2)
    assert take_snapshot(engine, day[1], "test") is None  # once

    _put(engine, "org_a", 39900, day[2], plan="Growth")  # upgraded
    _put(engine, "org_b", 17900, day[2])  # the trial converted
    assert take_snapshot(engine, day[2], "test").carried == 2  # c and d not read that day

    _put(engine, "org_c", 0, day[4], status="canceled")  # its period ended
    _put(engine, "org_b", 0, day[4], status="canceled")
    _put(engine, "org_a", 17900, day[4])  # a downgrade took effect
    assert take_snapshot(engine, day[4], "test").filled_days == 1  # day 3: nothing read, copied

    _put(engine, "org_b", 17900, day[6])  # back
    _put(engine, "org_e", 69900, day[6], plan="Scale")  # first read, already paying
    with engine.begin() as conn:  # a forgotten organization leaves the directory
        conn.execute(delete(directory_organizations).where(directory_organizations.c.organization_id == "org_a"))
    _put(engine, "org_c", 0, day[6], status="canceled", gone=True)
    assert take_snapshot(engine, day[6], "test").filled_days == 1
    assert take_snapshot(engine, day[5], "test") is None  # never a day before one taken

    assert _moves(engine) == {
        (str(day[1]), "org_a", "first_counted", 17900), (str(day[1]), "org_c", "first_counted", 39900),
        (str(day[2]), "org_a", "expansion", 22000), (str(day[2]), "org_b", "new", 17900),
        (str(day[4]), "org_a", "contraction", -22000), (str(day[4]), "org_b", "churn", -17900),
        (str(day[4]), "org_c", "churn", -39900), (str(day[6]), "org_b", "reactivation", 17900),
        (str(day[6]), "org_e", "first_counted", 69900), (str(day[6]), "org_a", "no_longer_counted", -17900)}
    totals = _day_totals(engine)
    assert list(totals) == [day[n] for n in range(1, 7)]
    assert totals[day[1]]["mrr_cents"] == 57800 and totals[day[1]]["customers"] == 2
    assert (totals[day[1]]["unknown"], totals[day[1]]["trialing"]) == (1, 1)
    assert (totals[day[1]]["scheduled_churn_cents"], totals[day[1]]["scheduled_churn_customers"]) == (39900, 1)
    assert totals[day[3]]["taken_by"] == "carried" and totals[day[3]]["carried"] == 4
    assert totals[day[3]]["mrr_cents"] == totals[day[2]]["mrr_cents"] and totals[day[3]]["new_count"] == 0
    assert totals[day[6]]["mrr_cents"] == 17900 + 69900
    previous = 0
    for figures in totals.values():  # MRR moves only by its movements, day after day
        growth = sum(figures[f"{kind}_cents"] for kind in ("new", "expansion", "reactivation", "first_counted"))
        loss = sum(figures[f"{kind}_cents"] for kind in ("contraction", "churn", "no_longer_counted"))
        assert figures["mrr_cents"] == previous + growth - loss
        previous = figures["mrr_cents"]
    with engine.connect() as conn:
        carried = conn.execute(select(revenue_snapshots.c.carried).where(revenue_snapshots.c.day == day[3])).scalars()
        assert list(carried) == [True] * 4
        gone = conn.execute(select(revenue_snapshots.c.status, revenue_snapshots.c.mrr_cents).where(
            revenue_snapshots.c.day == day[6], revenue_snapshots.c.organization_id == "org_c")).one()
        assert tuple(gone) == ("gone", 0)

    figures = overview(engine, day[1], day[6])
    [month] = figures.months.to_dict("records")
    assert (month["new"], month["expansion"], month["reactivation"], month["contraction"], month["churn"]) == (
        179.0, 220.0, 179.0, 220.0, 578.0)
    assert month["mrr_start"] == 0 and month["mrr_end"] == 878.0 and month["customers_churned"] == 2
    assert figures.carried_days == [day[3], day[5]]
    page, total = ledger(engine, "2026-11", ["churn"], day[1], day[6])
    assert total == 2 and list(page["organization_id"]) == ["org_c", "org_b"]  # largest first


def _monthly_cents(price_id: str) -> int:
    """The test's own MRR rule: a monthly price as it is, a yearly one a twelfth, rounded half up to the cent."""
    _, price = PRICES[price_id]
    exact = Decimal(price.unit_amount) / (12 if price.interval == "year" else 1)
    return int(exact.quantize(Decimal(1), ROUND_HALF_UP))


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_scripted_month_on_the_test_clock_gives_the_movements_computed_independently(
        store_url: str, client: PaymentsClient, control: SandboxControl) -> None:
    """Thirty days on the sandbox's clock: each day the script's changes, every organization read into the
    directory, the day's snapshot. The expected movements come from the sandbox's own state and the script."""
    engine = open_store(store_url)
    start = _moment(control.now())
    elapsed = [0]

    def clock() -> datetime:
        return start + timedelta(days=elapsed[0])

    directory = Directory(engine, clock=clock)
    truth = {row["id"]: row for row in control.organizations()}
    month_end = start + timedelta(days=29)

    def paying(row: dict[str, Any]) -> bool:
        return row["status"] in ("active", "past_due")

    def quiet(row: dict[str, Any]) -> bool:  # nothing due within the month: free for the script
        return (paying(row) and not row["canceling"] and not row["scheduled_price_id"]
                and PRICES[row["price_id"]][1].interval == "month" and _moment(row["period_end"]) > start
                + timedelta(days=8) and _moment(row["period_end"]) < month_end)

    def day_of(moment: datetime) -> int:  # the first day whose reading sees what happens at `moment`
        return math.ceil((moment - start) / timedelta(days=1))

    candidates = [row for row in truth.values() if quiet(row) and row["status"] == "active" and row["has_card"]]
    starter = [row for row in candidates if PRICES[row["price_id"]][0].name == "Starter"]
    higher = [row for row in candidates if PRICES[row["price_id"]][0].name in ("Growth", "Scale")]
    upgraded, downgraded = starter[0], higher[0]
    cancelled = next(row for row in starter[1:] if _moment(row["period_end"]) < start + timedelta(days=25))
    trial = next(row for row in truth.values() if row["status"] == "trialing"
                 and _moment(row["trial_end"]) > start + timedelta(days=3))
    overdue = next(row for row in truth.values() if row["status"] == "past_due" and not row["canceling"]
                   and start + timedelta(days=6) < _moment(row["period_end"]) < month_end)
    lapsing = [row for row in truth.values() if row["status"] == "trialing" and row["id"] != trial["id"]
               and _moment(row["trial_end"]) < month_end]
    assert lapsing  # trials that end unpaid within the month: they move nothing (zero before, zero after)
    scripted = {upgraded["id"], cancelled["id"], downgraded["id"], trial["id"], overdue["id"]}
    growth, starter_monthly = price_of("Growth", "month"), price_of("Starter", "month")

    expected: set[tuple[int, str, str, int]] = set()
    for row in truth.values():  # what falls due by itself within the month, for the organizations not scripted
        if row["id"] in scripted or not paying(row) or _moment(row["period_end"]) > month_end:
            continue
        due = day_of(_moment(row["period_end"]))
        if row["canceling"]:
            expected.add((due, row["id"], "churn", -_monthly_cents(row["price_id"])))
        elif row["scheduled_price_id"]:
            change = _monthly_cents(row["scheduled_price_id"]) - _monthly_cents(row["price_id"])
            expected.add((due, row["id"], "expansion" if change > 0 else "contraction", change))
        # a renewal (paid, or past due without a card) leaves MRR as it was; a trial lapsing moves nothing
    upgrade_day, downgrade_day, cancel_day, convert_day = 2, 3, 4, 3
    expected.add((upgrade_day, upgraded["id"], "expansion", _monthly_cents(growth.price_id) - 17900))
    expected.add((day_of(_moment(downgraded["period_end"])), downgraded["id"], "contraction",
                  17900 - _monthly_cents(downgraded["price_id"])))
    churned_on = day_of(_moment(cancelled["period_end"]))
    expected.add((churned_on, cancelled["id"], "churn", -17900))
    back_on = churned_on + 2
    expected.add((back_on, cancelled["id"], "reactivation", 17900))
    expected.add((convert_day, trial["id"], "new", 17900))
    overdue_cancel_day = 5  # past due counts until it is canceled: churn when its period ends
    expected.add((day_of(_moment(overdue["period_end"])), overdue["id"], "churn", -_monthly_cents(overdue["price_id"])))

    def checkout(organization_id: str) -> None:
        link = client.create_checkout(organization_id, starter_monthly.price_id, PRICES[starter_monthly.price_id][0]
                                      .product_id)
        control.pay(link.url)
        client.process_checkout(link.url.rsplit("/", 1)[1])

    for number in range(30):
        elapsed[0] = number
        if number:
            control.advance_clock(days=1)
        if number == upgrade_day:
            client.update_subscription(upgraded["id"], growth.price_id, PRICES[growth.price_id][0].product_id)
        if number == downgrade_day:
            client.update_subscription(downgraded["id"], starter_monthly.price_id,
                                       PRICES[starter_monthly.price_id][0].product_id)
        if number == cancel_day:
            client.cancel_subscription(cancelled["id"])
        if number == overdue_cancel_day:
            client.cancel_subscription(overdue["id"])
        if number == convert_day:
            checkout(trial["id"])
        if number == back_on:
            checkout(cancelled["id"])
        for organization_id in truth:
            directory.note(client.get_customer(organization_id), LOOKUP if number == 0 else REFRESH)
        assert take_snapshot(engine, clock().date(), "test", clock) is not None

    first = start.date()
    with engine.connect() as conn:
        found = {((date.fromisoformat(str(row.day)) - first).days, row.organization_id, row.kind,
                  row.to_mrr_cents - row.from_mrr_cents)
                 for row in conn.execute(select(revenue_movements).where(revenue_movements.c.kind != "first_counted"))}
    assert found == expected
    assert {kind for _, _, kind, _ in expected} >= {"new", "expansion", "contraction", "churn", "reactivation"}

    figures = overview(engine, first, clock().date())
    for kind in ("new", "expansion", "reactivation", "contraction", "churn"):
        assert round(float(figures.months[kind].sum()), 2) == round(
            sum(abs(change) for _, _, moved, change in expected if moved == kind) / 100, 2), kind
    opening = sum(_monthly_cents(row["price_id"]) for row in truth.values() if paying(row))
    assert figures.days["mrr"].iloc[0] == opening / 100
    net = sum(change for *_, change in expected)
    assert round(float(figures.days["mrr"].iloc[-1]), 2) == round((opening + net) / 100, 2)
    engine.dispose()


def test_the_day_is_taken_once_its_refresh_has_finished_or_at_once_with_the_refresh_off(engine: Engine) -> None:
    from services.directory.refresh import directory_refreshes
    from services.jobs.store import REFRESH, JobStore
    from services.revenue import SnapshotSchedule

    moment = datetime(2026, 11, 3, 5, tzinfo=timezone.utc)
    _put(engine, "org_a", 17900, moment.date())
    jobs = JobStore(engine)
    schedule = SnapshotSchedule(engine, jobs, refresh_on=True, by="test", clock=lambda: moment)
    assert schedule.due_day(moment) is None and schedule.run_due() is None  # no refresh queued yet
    job_id = jobs.create("billing-desk (scheduled refresh)", "system", ["org_a"], kind=REFRESH, limited=False)
    with engine.begin() as conn:
        conn.execute(insert(directory_refreshes).values(day="2026-11-03", started_at=moment, started_by="test",
                                                        organizations=1, jobs=job_id))
    assert schedule.due_day(moment) is None  # its job is still queued
    assert jobs.claim("worker", timedelta(seconds=30)) is not None and jobs.finish(job_id, "worker", "done")
    moment += timedelta(days=1, hours=-4)  # finished after midnight: the refresh's own day is taken, late
    taken = schedule.run_due()
    assert taken is not None and taken.day == date(2026, 11, 3) and schedule.run_due() is None
    later = moment + timedelta(days=1)
    assert SnapshotSchedule(engine, jobs, refresh_on=False, by="test", clock=lambda: later).run_due() is not None


def test_the_accounts_needing_attention_most_money_first_each_once_with_every_reason(engine: Engine) -> None:
    from sqlalchemy import update

    from services.auth.roles import Actor, Role
    from services.desk import BillingDesk
    from services.audit import AuditLog
    from services.revenue import needs_attention

    today = datetime.now(timezone.utc)
    _put(engine, "org_due", 39900, today.date(), status="past_due", plan="Growth")
    _put(engine, "org_both", 69900, today.date(), status="past_due", plan="Scale", cancelling=True)
    _put(engine, "org_down", 99900, today.date(), plan="Expansion")
    _put(engine, "org_trial", 0, today.date(), status="trialing", plan="Free Trial")
    _put(engine, "org_late_trial", 0, today.date(), status="trialing", plan="Free Trial")
    _put(engine, "org_fine", 17900, today.date())
    _put(engine, "org_up", 17900, today.date())  # an upgrade scheduled: nothing at stake, not listed
    _put(engine, "org_gone", 17900, today.date(), status="past_due", gone=True)
    with engine.begin() as conn:
        table = directory_organizations
        conn.execute(update(table).where(table.c.organization_id == "org_down").values(
            scheduled_plan="Growth", scheduled_mrr_cents=39900, scheduled_at=today + timedelta(days=9)))
        conn.execute(update(table).where(table.c.organization_id == "org_up").values(
            scheduled_plan="Growth", scheduled_mrr_cents=39900, scheduled_at=today + timedelta(days=9)))
        conn.execute(update(table).where(table.c.organization_id == "org_trial").values(
            trial_end=today + timedelta(days=3)))
        conn.execute(update(table).where(table.c.organization_id == "org_late_trial").values(
            trial_end=today + timedelta(days=30)))
    frame = needs_attention(engine, today)
    assert list(frame["organization_id"]) == ["org_both", "org_down", "org_due", "org_trial"]
    assert list(frame["at_stake"]) == [699.0, 600.0, 399.0, 0.0]
    assert frame["reasons"][0] == "Past due, Cancelling at period end" and frame["reasons"][1] == "Downgrade scheduled"
    assert list(needs_attention(engine, today, ["Trial ending"])["organization_id"]) == ["org_trial"]

    desk = BillingDesk(None, AuditLog(engine))  # type: ignore[arg-type]  # the list reads only the store
    with engine.begin() as conn:
        conn.execute(update(directory_organizations).where(directory_organizations.c.organization_id == "org_due")
                     .values(name='=HYPERLINK("http://evil.example")'))
    exported = desk.attention_export(Actor("sam", Role.SUPPORT), "csv", ["Past due"]).decode("utf-8-sig")
    assert "'=HYPERLINK" in exported and "org_down" not in exported
    assert list(desk.audit.events()["action"]) == ["export needs attention"]


def test_a_read_keeps_what_a_scheduled_downgrade_leaves(engine: Engine, client: PaymentsClient,
                                                        control: SandboxControl) -> None:
    row = next(row for row in control.organizations() if row["scheduled_price_id"] and row["status"] == "active")
    assert Directory(engine).note(client.get_customer(row["id"]), LOOKUP)
    with engine.connect() as conn:
        kept = conn.execute(select(directory_organizations.c.mrr_cents, directory_organizations.c.scheduled_mrr_cents)
                            .where(directory_organizations.c.organization_id == row["id"])).one()
    assert tuple(kept) == (_monthly_cents(row["price_id"]), _monthly_cents(row["scheduled_price_id"]))


def test_two_processes_taking_the_same_day_write_it_once(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for number in range(50):
        _put(engine, f"org_{number:03d}", 17900, DAY1)
    assert take_snapshot(engine, DAY1, "first") is not None
    day = DAY1 + timedelta(days=2)  # and one day to fill in between
    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda who: take_snapshot(engine, day, who), ["a", "b", "c", "d"]))
    assert sum(result is not None for result in taken) == 1
    with engine.connect() as conn:
        days = [row.day for row in conn.execute(select(revenue_days.c.day).order_by(revenue_days.c.day))]
        rows = conn.execute(select(revenue_snapshots.c.day)).all()
    assert [str(value) for value in days] == [str(DAY1), str(DAY1 + timedelta(days=1)), str(day)]
    assert len(rows) == 150



def test_mrr_in_another_currency_is_counted_in_no_total(engine: Engine) -> None:
    _put(engine, "org_usd", 17900, DAY1)
    _put(engine, "org_eur", 15000, DAY1)
    with engine.begin() as conn:
        conn.execute(directory_organizations.update().where(
            directory_organizations.c.organization_id == "org_eur").values(currency="EUR"))
    assert take_snapshot(engine, DAY1, "test") is not None
    totals = _day_totals(engine)[DAY1]
    assert (totals["mrr_cents"], totals["customers"], totals["unknown"]) == (17900, 1, 1)
    assert _moves(engine) == {(str(DAY1), "org_usd", "first_counted", 17900)}
