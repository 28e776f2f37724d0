"""The audit log at scale, on both stores: keyset paging returns every matching line once, the totals match, the
organization prefix is literal and indexed, the export holds every line (formula-safe), and the Audit page
shows the total and pages through it."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from datetime import date, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from bench.audit_scale import make_rows
from services.audit import AuditCursor, AuditFilter, AuditLog
from services.audit.chain import append_lock, audit_events, audit_rows
from services.auth.roles import Actor, PermissionDenied, Role
from services.desk import BillingDesk
from tests.hostile_inputs import HOSTILE_INPUTS
from tests.test_apptest import app, fresh_reads, sandbox_control  # noqa: F401  (the console in AppTest)

FINANCE = Actor("fay", Role.FINANCE)


def load(engine: Engine, events: int, **options: Any) -> None:
    """`events` generated write attempts (bench/audit_scale.py), chained onto the store's last row."""
    with append_lock(engine) as conn:
        last = conn.execute(select(audit_rows.c.id, audit_rows.c.row_hash).order_by(audit_rows.c.id.desc())
                            .limit(1)).first()
        rows = make_rows(events, first_id=(last.id + 1) if last else 1, **({"previous": last.row_hash} if last else {}),
                         **options)
        while batch := list(islice(rows, 2000)):
            conn.execute(audit_rows.insert(), batch)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE audit_rows"))
            conn.commit()


def every_page(audit: AuditLog, filters: AuditFilter, size: int) -> Iterator[list[int]]:
    after: AuditCursor | None = None
    while True:
        page = audit.page(filters, after, size)
        yield list(page.frame.id)
        if page.next is None:
            return
        after = page.next


def matching_ids(audit: AuditLog, condition: Any = None) -> list[int]:
    query = select(audit_events.c.id).order_by(audit_events.c.at.desc(), audit_events.c.id.desc())
    with audit.engine.connect() as conn:
        return list(conn.execute(query if condition is None else query.where(condition)).scalars())


@pytest.fixture
def audit(store_url: str) -> AuditLog:
    log = AuditLog(store_url)
    load(log.engine, 1_234, span=timedelta(days=90), organizations=300)
    return log


def test_paging_returns_every_matching_line_once_and_the_totals_match(audit: AuditLog) -> None:
    today = date.today()
    cases = [
        (AuditFilter(), None),
        (AuditFilter(users=("fay", "ada")), audit_events.c.user.in_(("fay", "ada"))),
        (AuditFilter(organization="org_001*"), audit_events.c.organization_id.startswith("org_001")),
        (AuditFilter(organization="org_00042"), audit_events.c.organization_id == "org_00042"),
        (AuditFilter(outcomes=("failed", "denied"), actions=("change plan",), since=today - timedelta(days=30),
                     until=today), None),
    ]
    for filters, condition in cases:
        pages = list(every_page(audit, filters, 97))
        seen = [row_id for page in pages for row_id in page]
        assert len(seen) == len(set(seen))  # none twice
        assert all(len(page) == 97 for page in pages[:-1])
        if condition is not None:
            assert seen == matching_ids(audit, condition)  # all of them, newest first
        summary = audit.summary(filters)
        assert summary.total == len(seen)
        if summary.outcomes is not None:
            assert sum(summary.outcomes.values()) == summary.total
        assert set(audit.events(filters, limit=10_000).id) == set(seen)
    assert len(matching_ids(audit)) == 1_234


@pytest.mark.parametrize("candidates_up_to", [100_000, 5])
def test_the_pages_reads_answer_what_summary_and_page_answer(audit: AuditLog, candidates_up_to: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """summary_and_page (the Audit page's reads, the organization's candidates read once on PostgreSQL, or
    found by each read when there are too many) agrees with summary + page, first page and the next."""
    monkeypatch.setattr("services.audit.reads.READ_CANDIDATES_UP_TO", candidates_up_to)
    today = date.today()
    month = {"since": today - timedelta(days=30), "until": today}
    for filters in (AuditFilter(), AuditFilter(organization="org_01*", **month), AuditFilter(organization="org_00042"),
                    AuditFilter(organization="org_0*", outcomes=("succeeded", "denied")),
                    AuditFilter(outcomes=("failed",)), AuditFilter(organization="org_nobody"),
                    AuditFilter(organization="org_\x00")):
        after = None
        for _ in range(2):
            summary, page = audit.summary_and_page(filters, after, 40)
            expected = audit.summary(filters)
            assert summary == expected, filters
            assert list(page.frame.id) == list(audit.page(filters, after, 40, upto=expected.newest).frame.id)
            if page.next is None:
                break
            after = page.next


def test_lines_at_the_same_moment_are_paged_by_id(store_url: str) -> None:
    audit = AuditLog(store_url)
    load(audit.engine, 250, span=timedelta(0))  # every line at the same instant (and its outcome 300 ms later)
    seen = [row_id for page in every_page(audit, AuditFilter(), 10) for row_id in page]
    assert sorted(seen) == sorted(matching_ids(audit)) and len(seen) == 250 == audit.summary().total


def test_the_organization_prefix_is_literal(store_url: str) -> None:
    audit = AuditLog(store_url)
    for organization in ("org_a%b", "org_aXb", "org_a_1", "org_ab1", "org_a\\z", "org_az", "ORG_A%B", "org_b'q"):
        audit.record(user="fay", role="finance", action="change plan", organization_id=organization,
                     outcome="denied")

    def found(organization: str, match: str = "exact") -> set[str]:
        return set(audit.page(AuditFilter(organization=organization, organization_match=match)).frame.organization_id)

    assert found("org_a%*") == {"org_a%b"}
    assert found("org_a%", "prefix") == {"org_a%b"}
    assert found("org_a_*") == {"org_a_1"}
    assert found("org_a\\*") == {"org_a\\z"}
    assert found("org_a") == set()  # exact: no such organization
    assert found("org_a%b") == {"org_a%b"}
    assert found("org_a*") == {"org_a%b", "org_aXb", "org_a_1", "org_ab1", "org_a\\z", "org_az"}  # case counts
    assert audit.summary(AuditFilter(organization="org_a_*")).total == 1
    assert found("org_b'*") == {"org_b'q"}


def test_hostile_organization_filters_match_literally_and_fail_nothing(store_url: str) -> None:
    audit = AuditLog(store_url)
    audit.record(user="fay", role="finance", action="change plan", organization_id="org_abc123", outcome="denied")
    for value in HOSTILE_INPUTS:
        for match in ("exact", "prefix"):
            filters = AuditFilter(organization=value, organization_match=match)
            assert audit.summary(filters).total == len(audit.page(filters).frame)
            with audit.export_file(filters) as exported:
                assert exported.readline().startswith(b'"id"')


def test_a_write_refiled_under_another_organization_is_found_under_that_one(store_url: str) -> None:
    audit = AuditLog(store_url)
    intent = audit.begin(user="fay", role="finance", action="process checkout", organization_id="org_typed1",
                         parameters={}, reason="paid", idempotency_key="k1")
    audit.complete(intent, "succeeded", organization_id="org_real01")
    assert list(audit.page(AuditFilter(organization="org_real01")).frame.id) == [intent]
    assert list(audit.page(AuditFilter(organization="org_real*")).frame.id) == [intent]
    assert audit.page(AuditFilter(organization="org_typed1")).frame.empty
    assert audit.summary(AuditFilter(organization="org_typed*")).total == 0


def test_the_export_holds_every_matching_line_formula_safe(client: Any, store_url: str) -> None:
    audit = AuditLog(store_url)
    load(audit.engine, 12_000, hostile_every=1_000)
    desk = BillingDesk(client, audit)
    rows = list(csv.DictReader(io.StringIO(desk.audit_csv(FINANCE, AuditFilter()).decode(), newline="")))
    assert len(rows) == 12_000 == len({row["id"] for row in rows})
    hostile = [row for row in rows if row["user"].startswith("'=")]
    assert len(hostile) == 12 and all(row["reason"] == "'+1+1" for row in hostile)
    assert not any(value.startswith(("=", "+", "-", "@")) for row in rows for value in row.values())
    assert [int(row["id"]) for row in rows[:3]] == matching_ids(audit)[:3]  # newest first

    summary = audit.summary(AuditFilter(users=("fay",)))
    assert summary.newest is not None
    load(audit.engine, 10)  # lines added after the count are not in the file the page announced
    with desk.audit_export(FINANCE, AuditFilter(users=("fay",)), summary.newest) as exported:
        assert sum(1 for _ in exported) - 1 == summary.total
    with pytest.raises(PermissionDenied):
        desk.audit_export(Actor("sue", Role.SUPPORT), AuditFilter())


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_postgresql_reads_the_filters_through_indexes(store_url: str) -> None:
    audit = AuditLog(store_url)
    load(audit.engine, 30_000, span=timedelta(days=365), organizations=5_000)
    today = date.today()
    cases = {
        "first page": AuditFilter(),
        "first page as opened (30 days)": AuditFilter(since=today - timedelta(days=30), until=today),
        "organization prefix and dates": AuditFilter(organization="org_012*", since=today - timedelta(days=30),
                                                     until=today),
        "prefix, dates and outcome": AuditFilter(organization="org_01", organization_match="prefix",
                                                 outcomes=("succeeded",), since=today - timedelta(days=30),
                                                 until=today),
        "one user, dates": AuditFilter(users=("fay",), since=today - timedelta(days=7), until=today),
    }
    from services.audit.filters import conditions_for
    from services.audit.lines import NEWEST_FIRST

    with audit.engine.connect() as conn:
        for name, filters in cases.items():
            conditions = conditions_for(filters, "postgresql")
            queries = [select(audit_events).where(*conditions).order_by(*NEWEST_FIRST).limit(101)]
            if filters != AuditFilter():  # counting every line reads every intent: a scan is right for that
                queries.append(select(func.count()).select_from(audit_events).where(*conditions))
            for query in queries:
                compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
                plan = "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
                assert not re.search(r"Seq Scan on audit_rows", plan), f"{name}:\n{plan}"


def test_the_audit_page_shows_the_total_and_pages_through_it(sandbox_control: Any) -> None:  # noqa: F811
    at = app("admin")
    engine = AuditLog(f"sqlite:///{Path(os.environ['BILLING_DESK_DATA_DIR']) / 'audit.sqlite3'}").engine
    load(engine, 250, span=timedelta(days=2))
    at.switch_page("pages/audit.py").run()
    shown = "\n".join(str(element.value) for element in at.markdown)
    counted = re.search(r"\*\*([\d,]+)\*\* events match", shown)
    assert counted, shown
    total = int(counted.group(1).replace(",", ""))
    assert total >= 250
    captions = "\n".join(caption.value for caption in at.caption)
    assert f"Page 1 of {-(-total // 100):,}" in captions and f"Download all {total:,} matching events" in captions
    first = list(at.dataframe[0].value.id)
    assert len(first) == 100
    buttons = {button.label: button for button in at.button}
    assert buttons["Previous"].disabled and not buttons["Next"].disabled
    buttons["Next"].click()
    at.run()
    assert "Page 2 of" in "\n".join(caption.value for caption in at.caption)
    second = list(at.dataframe[0].value.id)
    assert len(second) == 100 and not set(first) & set(second) and max(second) < min(first)
    next(button for button in at.button if button.label == "Previous").click()
    at.run()
    assert list(at.dataframe[0].value.id) == first
    assert any(button.label == "Download CSV" for button in at.get("download_button"))


def test_a_zipped_export_holds_the_same_csv(client: Any, store_url: str) -> None:
    import zipfile

    audit = AuditLog(store_url)
    desk = BillingDesk(client, audit)
    for number in range(3):
        audit.record(user="fay", role="finance", action="change plan", organization_id=f"org_zip{number}",
                     outcome="denied")
    with desk.audit_export(FINANCE, AuditFilter()) as plain_file:
        plain = plain_file.read()
    with desk.audit_export(FINANCE, AuditFilter(), zip_as="audit.csv") as archive_file:
        assert zipfile.ZipFile(archive_file).read("audit.csv") == plain
