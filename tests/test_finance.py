"""The finance summary of a bulk lookup: its figures against the sandbox's own state (computed here from the
sandbox's database and price table, not through the client or services/finance.py), its rules one by one, and the
Excel download (read back: nothing from the API is a formula, a link or an external reference)."""

from __future__ import annotations

import io
import re
import sqlite3
import zipfile
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import load_workbook

import services.bulk as bulk
from sandbox import RunningSandbox, SandboxSettings, start_sandbox
from sandbox.catalog import PRICES
from sandbox.control_client import SandboxControl
from services.bulk import BulkLookup
from services.exports import xlsx_bytes
from services.finance import (REASON_CANCELLING, REASON_DOWNGRADE, REASON_PAST_DUE, SHEETS, FinanceSummary,
                              summarize, summary_frames, summary_xlsx)
from services.payments.client import PaymentsClient
from services.payments.models import parse_customer
from services.tables import FINANCE_COLUMNS, customer_record, typed_customer_frame

TODAY = date(2026, 11, 26)
COLUMNS = bulk.RESULT_COLUMNS + [column for column in FINANCE_COLUMNS if column not in bulk.RESULT_COLUMNS]


def dollars(cents: Decimal | int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# --- against the sandbox -----------------------------------------------------------------------------
def sandbox_expectations(db_path: Path, today: date) -> dict[str, Any]:
    """MRR and the rest straight from the sandbox's tables and its price list: each organization's newest
    subscription (what customer-info answers with), priced from sandbox.catalog."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        organizations = [row["id"] for row in connection.execute("SELECT id FROM organizations")]
        newest = {}
        for row in connection.execute("SELECT * FROM subscriptions ORDER BY created_at, rowid"):
            newest[row["organization_id"]] = dict(row)  # the last one wins: the newest
    finally:
        connection.close()
    statuses: Counter[str] = Counter()
    total = Decimal(0)
    by_plan: dict[str, Decimal] = {}
    risk = {REASON_CANCELLING: Decimal(0), REASON_PAST_DUE: Decimal(0), REASON_DOWNGRADE: Decimal(0)}
    at_risk: dict[str, str] = {}
    lost_by_plan: dict[str, Decimal] = {}
    trials: set[str] = set()
    for organization_id in organizations:
        subscription = newest.get(organization_id)
        statuses[subscription["status"] if subscription else "none"] += 1
        if subscription is None:
            continue
        plan, price = PRICES[subscription["price_id"]]
        monthly = Decimal(price.unit_amount) / (12 if price.interval == "year" else 1)
        if subscription["status"] == "trialing":
            trial_end = datetime.fromisoformat(subscription["trial_end"].replace("Z", "+00:00")).date()
            if trial_end <= today + timedelta(days=14):
                trials.add(organization_id)
        if subscription["status"] not in ("active", "past_due"):
            continue
        total += monthly
        by_plan[plan.name] = by_plan.get(plan.name, Decimal(0)) + monthly
        lost, reason = Decimal(0), None
        if subscription["cancel_at_period_end"]:
            lost, reason = monthly, REASON_CANCELLING
        elif subscription["status"] == "past_due":
            lost, reason = monthly, REASON_PAST_DUE
        elif subscription["scheduled_price_id"]:
            _, scheduled = PRICES[subscription["scheduled_price_id"]]
            after = Decimal(scheduled.unit_amount) / (12 if scheduled.interval == "year" else 1)
            lost, reason = max(Decimal(0), monthly - after), REASON_DOWNGRADE
        if reason:
            risk[reason] += lost
            at_risk[organization_id] = reason
            lost_by_plan[plan.name] = lost_by_plan.get(plan.name, Decimal(0)) + lost
    return {"organizations": organizations, "statuses": statuses, "mrr": total, "by_plan": by_plan, "risk": risk,
            "at_risk": at_risk, "trials": trials, "lost_by_plan": lost_by_plan}


def check_against_sandbox(running: RunningSandbox, client: PaymentsClient, control: SandboxControl,
                          monkeypatch: pytest.MonkeyPatch) -> tuple[FinanceSummary, pd.DataFrame]:
    # The results table carries the finance columns (services/tables.py FINANCE_COLUMNS).
    monkeypatch.setattr(bulk, "RESULT_COLUMNS", COLUMNS)
    # A yearly subscription moving to the same plan monthly: a "downgrade" that raises MRR (nothing at risk).
    yearly = next(row["id"] for row in control.organizations("active", canceling=False)
                  if (customer := client.get_customer(row["id"])).subscription.interval == "year"
                  and customer.subscription.scheduled_change is None)
    current = client.get_customer(yearly).subscription
    monthly_price = current.price_id.replace("Yearly001", "Monthly01")
    change = client.update_subscription(yearly, monthly_price, current.product_id)
    assert change.change == "downgrade"

    today = datetime.fromisoformat(control.now().replace("Z", "+00:00")).date()
    expected = sandbox_expectations(Path(running.settings.db_path), today)
    ids = expected["organizations"] + ["org_nosuchone", "org_nosuchtwo"]
    results = BulkLookup(client, ids).run().frame()
    summary = summarize(results, today)

    assert summary.currency == "USD" and summary.organizations == len(ids)
    assert summary.mrr == dollars(expected["mrr"]) and summary.mrr > 0
    assert summary.arr == dollars(expected["mrr"] * 12)
    assert {item.plan: item.mrr for item in summary.by_plan} == {
        plan: dollars(cents) for plan, cents in expected["by_plan"].items()}
    assert {item.plan: item.mrr_at_risk for item in summary.by_plan if item.mrr_at_risk} == {
        plan: dollars(cents) for plan, cents in expected["lost_by_plan"].items() if dollars(cents)}
    assert summary.paying == sum(expected["statuses"][status] for status in ("active", "past_due"))
    assert summary.mrr_at_risk == dollars(sum(expected["risk"].values()))
    assert {reason: amount for reason, _, amount in summary.at_risk_by_reason} == {
        reason: dollars(cents) for reason, cents in expected["risk"].items()}
    assert {item.organization_id: item.reason for item in summary.at_risk} == expected["at_risk"]
    assert yearly in expected["at_risk"]
    raised = next(item for item in summary.at_risk if item.organization_id == yearly)
    assert raised.mrr_at_risk == 0 and raised.to_mrr > raised.mrr
    assert {item.organization_id for item in summary.trials_ending} == expected["trials"]
    assert summary.trials_ending_count == len(expected["trials"]) > 0
    assert dict(summary.status_counts) == {**expected["statuses"], "not found": 2}
    assert sorted(item.organization_id for item in summary.not_counted) == ["org_nosuchone", "org_nosuchtwo"]
    assert summary.counted == len(expected["organizations"])
    return summary, results


def test_summary_matches_the_sandboxs_own_state(sandbox: RunningSandbox, client: PaymentsClient,
                                                control: SandboxControl, monkeypatch: pytest.MonkeyPatch) -> None:
    summary, frame = check_against_sandbox(sandbox, client, control, monkeypatch)
    workbook = load_workbook(io.BytesIO(summary_xlsx(summary, frame)))
    assert workbook.sheetnames == [*SHEETS, "Results"]
    assert workbook["Results"].max_row == len(frame) + 1
    mrr_row = next(row for row in workbook["Summary"].iter_rows(min_row=2) if row[0].value == "MRR")
    assert Decimal(str(mrr_row[1].value)) == summary.mrr and "$" in mrr_row[1].number_format


def test_summary_matches_in_the_stripe_dialect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same state in Stripe's shapes (epoch times, items.data[].price, scheduled_change in snake_case)."""
    running = start_sandbox(SandboxSettings(db_path=tmp_path / "stripe.sqlite3", dialect="stripe"))
    try:
        with PaymentsClient(running.base_url, running.api_key, timeout=(2.0, 5.0), backoff_factor=0.05) as client:
            check_against_sandbox(running, client, SandboxControl(running.root_url, running.api_key), monkeypatch)
    finally:
        running.stop()


# --- the rules, one by one --------------------------------------------------------------------------
PRICE_IDS = {("Starter", "month"): 17900, ("Starter", "year"): 179000, ("Growth", "month"): 39900,
             ("Growth", "year"): 399000, ("Scale", "month"): 69900, ("Free Trial", "month"): 0}


def customer_json(organization_id: str, status: str, plan: str | None = "Starter", interval: str = "month",
                  *, cents: int | None = None, currency: str = "usd", cancel: bool = False,
                  trial_end: datetime | None = None, scheduled: tuple[str, str] | None = None,
                  name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"organizationId": organization_id, "organizationName": name or organization_id.title(),
                            "subscriptionStatus": status}
    if plan is None:
        return body
    end = datetime(2026, 12, 20, tzinfo=timezone.utc)
    body["subscription"] = {
        "id": f"sub_{organization_id}", "status": status, "productId": f"prod_{plan}", "priceId": f"price_{plan}",
        "planName": plan, "interval": interval, "currency": currency,
        "unitAmount": PRICE_IDS.get((plan, interval), 0) if cents is None else cents,
        "currentPeriodEnd": end.isoformat(), "cancelAtPeriodEnd": cancel,
        "trialEnd": trial_end.isoformat() if trial_end else None,
        "scheduledChange": {"productId": f"prod_{scheduled[0]}", "planName": scheduled[0], "interval": scheduled[1],
                            "unitAmount": PRICE_IDS[scheduled], "effectiveAt": end.isoformat()}
        if scheduled else None}
    return body


def results(*bodies: dict[str, Any], extra: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    records = [{**customer_record(parse_customer(body, body["organizationId"])), "error": None} for body in bodies]
    return typed_customer_frame(records + (extra or []), COLUMNS)


def test_finance_columns_in_the_record() -> None:
    frame = results(customer_json("org_y", "active", "Starter", "year",
                                  scheduled=("Starter", "month")))
    row = frame.iloc[0]
    assert (row.price_cents, row.interval_unit, row.interval_count, row.currency) == (179000, "year", 1, "USD")
    assert row.monthly_amount == 149.17  # 1,790 / 12, rounded for the screen
    assert (row.scheduled_plan, row.scheduled_price, row.scheduled_interval, row.scheduled_monthly_amount) == (
        "Starter", 179.0, "month", 179.0)
    assert row.scheduled_at == pd.Timestamp("2026-12-20", tz="UTC")
    assert str(frame.price_cents.dtype) == "Int64" and pd.api.types.is_datetime64_any_dtype(frame.trial_end)
    assert set(FINANCE_COLUMNS) <= set(frame.columns)


def test_yearly_prices_count_a_twelfth_without_drift() -> None:
    summary = summarize(results(*(customer_json(f"org_y{index}", "active", "Starter", "year") for index in range(3)),
                                customer_json("org_m", "active", "Starter", "month")), TODAY)
    # 3 × 1,790 / 12 = 447.50 exactly; per-row rounding would give 3 × 149.17 = 447.51.
    assert summary.mrr == Decimal("447.50") + Decimal("179.00")
    assert summary.arr == Decimal("5370.00") + Decimal("2148.00")
    assert [(item.plan, item.subscriptions, item.mrr) for item in summary.by_plan] == [
        ("Starter", 4, Decimal("626.50"))]
    two = summarize(results(*(customer_json(f"org_y{index}", "active", "Starter", "year")
                              for index in range(2))), TODAY)
    assert two.mrr == Decimal("298.33")  # 29,833.33… cents, not 2 × 149.17


def test_trials_canceled_incomplete_and_none_count_zero_past_due_counts_and_is_at_risk() -> None:
    summary = summarize(results(
        customer_json("org_trial", "trialing", "Growth", trial_end=datetime(2027, 2, 1, tzinfo=timezone.utc)),
        customer_json("org_gone", "canceled", "Growth"), customer_json("org_incomplete", "incomplete", "Scale"),
        customer_json("org_none", "none", None), customer_json("org_late", "past_due", "Growth"),
        customer_json("org_ok", "active", "Starter")), TODAY)
    assert summary.mrr == Decimal("578.00") and summary.paying == 2  # Growth past due 399 + Starter 179
    assert summary.mrr_at_risk == Decimal("399.00")
    assert [(item.organization_id, item.reason) for item in summary.at_risk] == [("org_late", REASON_PAST_DUE)]
    assert dict(summary.status_counts) == {"trialing": 1, "canceled": 1, "incomplete": 1, "none": 1, "past_due": 1,
                                           "active": 1}
    assert summary.counted == 6 and not summary.not_counted
    assert summary.trials_ending == ()  # its trial ends in February


def test_downgrades_by_their_mrr_difference_and_each_subscription_at_risk_once() -> None:
    summary = summarize(results(
        customer_json("org_down", "active", "Scale", scheduled=("Growth", "month")),  # 699 → 399: 300 at risk
        customer_json("org_yearly", "active", "Growth", "year", scheduled=("Growth", "month")),  # 332.50 → 399
        customer_json("org_cancel", "active", "Growth", cancel=True),  # 399 at risk
        customer_json("org_both", "past_due", "Starter", cancel=True),  # once: cancelling, also past due
    ), TODAY)
    at_risk = {item.organization_id: item for item in summary.at_risk}
    assert at_risk["org_down"].mrr_at_risk == Decimal("300.00") and at_risk["org_down"].to_plan == "Growth"
    assert at_risk["org_down"].to_mrr == Decimal("399.00")
    assert at_risk["org_yearly"].mrr_at_risk == 0 and at_risk["org_yearly"].mrr == Decimal("332.50")
    assert (at_risk["org_both"].reason, at_risk["org_both"].also) == (REASON_CANCELLING, REASON_PAST_DUE)
    assert summary.mrr_at_risk == Decimal("300.00") + Decimal("399.00") + Decimal("179.00")
    assert summary.at_risk_by_reason == ((REASON_CANCELLING, 2, Decimal("578.00")), (REASON_PAST_DUE, 0, Decimal(0)),
                                         (REASON_DOWNGRADE, 2, Decimal("300.00")))
    assert [item.organization_id for item in summary.at_risk][:2] == ["org_cancel", "org_down"]  # most at risk first
    assert summary.at_risk_share == (Decimal("878.00") / summary.mrr).quantize(Decimal("0.0001"))
    assert {item.plan: item.mrr_at_risk for item in summary.by_plan} == {
        "Scale": Decimal("300.00"), "Growth": Decimal("399.00"), "Starter": Decimal("179.00")}


def test_trials_ending_in_the_next_fourteen_days() -> None:
    def trial(organization_id: str, days: int) -> dict[str, Any]:
        moment = datetime(TODAY.year, TODAY.month, TODAY.day, 18, tzinfo=timezone.utc) + timedelta(days=days)
        return customer_json(organization_id, "trialing", "Free Trial", trial_end=moment)
    converted = customer_json("org_converted", "active", "Growth",
                              trial_end=datetime(2026, 11, 30, tzinfo=timezone.utc))
    summary = summarize(results(trial("org_today", 0), trial("org_last", 14), trial("org_later", 15),
                                trial("org_overdue", -1), converted), TODAY)
    assert [(item.organization_id, item.days_left) for item in summary.trials_ending] == [
        ("org_overdue", -1), ("org_today", 0), ("org_last", 14)]
    assert summary.trials_ending_count == 3 and summary.trials_ending[0].monthly_after == 0
    assert summary.mrr == Decimal("399.00")


def test_rows_not_counted_are_listed_so_totals_are_honest() -> None:
    lookups = [{"organization_id": "org_missing", "status": "not found", "error": "No such organization"},
               {"organization_id": "org_broken", "status": "error", "error": "The Payments API failed (HTTP 500)."}]
    summary = summarize(results(customer_json("org_ok", "active", "Growth"),
                                customer_json("org_euro", "active", "Growth", currency="eur", cents=35000),
                                {"organizationId": "org_bare", "subscriptionStatus": "active"},
                                extra=lookups), TODAY)
    assert summary.mrr == Decimal("399.00") and summary.currency == "USD" and summary.paying == 1
    reasons = {item.organization_id: item.reason for item in summary.not_counted}
    assert set(reasons) == {"org_missing", "org_broken", "org_euro", "org_bare"}
    assert "EUR" in reasons["org_euro"] and "no price" in reasons["org_bare"]
    assert reasons["org_missing"] == "No such organization"
    assert summary.counted == 1 and summary.organizations == 5
    with pytest.raises(ValueError, match="monthly_amount"):
        summarize(pd.DataFrame({"organization_id": ["org_a"], "status": ["active"]}), TODAY)


def test_summary_frames_are_the_sheets_with_exact_money() -> None:
    summary = summarize(results(customer_json("org_a", "active", "Growth", scheduled=("Starter", "month")),
                                customer_json("org_t", "trialing", "Free Trial",
                                              trial_end=datetime(2026, 12, 1, tzinfo=timezone.utc))), TODAY)
    frames = summary_frames(summary)
    assert list(frames) == list(SHEETS)
    assert frames["By plan"].mrr.tolist() == [Decimal("399.00")]
    assert frames["At risk"].iloc[0].mrr_at_risk == Decimal("220.00")
    assert frames["Trials ending"].iloc[0].trial_end_utc == datetime(2026, 12, 1)
    figures = frames["Summary"].set_index("figure")
    assert figures.loc["MRR", "amount"] == Decimal("399.00") and figures.loc["MRR", "organizations"] == 1
    assert figures.loc["Trials ending within 14 days", "organizations"] == 1


# --- the Excel download ---------------------------------------------------------------------------------
HOSTILE = ['=HYPERLINK("https://evil.example","Click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)",
           "\t=1+1", "\r=1", "=1+1", "bell\x07 and nul\x00"]


def test_xlsx_neutralises_text_keeps_money_as_numbers_and_dates_as_dates() -> None:
    bodies = [customer_json(f"org_h{index}", status, "Growth", name=name,
                            cancel=status == "active", trial_end=datetime(2026, 12, 3, tzinfo=timezone.utc))
              for index, (name, status) in enumerate(zip(HOSTILE, ["active", "trialing"] * 4))]
    frame = results(*bodies)
    frame.loc[0, "plan"] = "=cmd"
    summary = summarize(frame, TODAY)
    sheets = {"Results": frame, **summary_frames(summary), "=Bad/Name*[x]": pd.DataFrame({"=col": ["-1"]})}
    data = xlsx_bytes(sheets)

    workbook = load_workbook(io.BytesIO(data))
    assert workbook.sheetnames[-1] == "Bad Name  x"  # a valid title, no formula character
    assert not workbook._external_links
    texts = []
    for sheet in workbook.worksheets:
        assert not sheet._hyperlinks
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    texts.append(cell.value)
                    assert not cell.value.startswith(("=", "+", "-", "@", "\t", "\r")), cell.value
    for name in HOSTILE[:-1]:
        assert "'" + name.replace("\r", "\n") in [text.replace("\r", "\n") for text in texts] or "'" + name in texts
    assert "bell\ufffd and nul\ufffd" in texts  # what XML can't hold, marked, the rest kept
    assert "'=cmd" in texts and "'=col" in texts and "'-1" in texts

    results_sheet = workbook["Results"]
    header = [cell.value for cell in results_sheet[1]]
    price = results_sheet.cell(row=2, column=header.index("price") + 1)
    assert price.value == 399 and price.data_type == "n" and "$" in price.number_format
    period_end = results_sheet.cell(row=2, column=header.index("period_end") + 1)
    assert period_end.is_date and period_end.value == datetime(2026, 12, 20)
    at_risk = workbook["At risk"]
    at_risk_header = [cell.value for cell in at_risk[1]]
    amount = at_risk.cell(row=2, column=at_risk_header.index("mrr_at_risk") + 1)
    assert amount.value == 399 and "$" in amount.number_format
    assert at_risk.cell(row=2, column=at_risk_header.index("name") + 1).value.startswith("'")

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert not any("externalLink" in name for name in names)
        for name in names:
            if name.startswith("xl/worksheets/"):
                xml = archive.read(name).decode()
                assert not re.search(r"<(\w+:)?(f|hyperlinks?)[ >/]", xml), name  # no formula or link element


def test_show_summary_renders_for_a_finance_lead() -> None:
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        from datetime import date, datetime, timezone

        from services.finance import summarize
        from tests.test_finance import customer_json, results
        from ui.finance import show_summary

        frame = results(customer_json("org_a", "active", "Growth", name="[x](https://evil.example) **b**"),
                        customer_json("org_b", "past_due", "Starter", "year"),
                        customer_json("org_c", "trialing", "Free Trial",
                                      trial_end=datetime(2026, 12, 1, tzinfo=timezone.utc)))
        show_summary(summarize(frame, date(2026, 11, 26)))

    from ui.finance import mrr_by_plan_data, mrr_by_plan_spec

    summary = summarize(results(customer_json("org_a", "active", "Growth", cancel=True),
                                customer_json("org_b", "active", "Scale")), TODAY)
    by_plan = summary_frames(summary)["By plan"]
    data, spec = mrr_by_plan_data(by_plan), mrr_by_plan_spec(by_plan.plan.tolist())
    assert spec["encoding"]["y"]["sort"] == ["Scale", "Growth"]
    fields = {encoding["field"] for encoding in spec["encoding"].values() if isinstance(encoding, dict)}
    assert fields | {tooltip["field"] for tooltip in spec["encoding"]["tooltip"]} <= set(data.columns)
    assert "expr" not in str(spec) and "calculate" not in str(spec)  # nothing for Vega to evaluate (CSP)
    assert data.groupby("plan").amount.sum().to_dict() == {"Growth": 399.0, "Scale": 699.0}
    assert data[(data.plan == "Growth") & (data.part == "At risk")].amount.tolist() == [399.0]

    at = AppTest.from_function(page, default_timeout=20).run()
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["MRR"] == "$548.17" and metrics["ARR"] == "$6,578.00"
    assert metrics["MRR at risk"] == "$149.17" and metrics["Trials ending in 14 days"] == "1"
    assert len(at.dataframe) >= 4
    assert not any("evil.example" in markdown.value for markdown in at.markdown)


def test_empty_and_nothing_found_results_summarize_to_zero() -> None:
    empty = summarize(results(), TODAY)
    assert (empty.mrr, empty.arr, empty.mrr_at_risk, empty.organizations, empty.at_risk_share) == (0, 0, 0, 0, None)
    assert all(frame.empty for name, frame in summary_frames(empty).items() if name != "Summary")
    missing = summarize(results(extra=[{"organization_id": f"org_gone{index}", "status": "not found",
                                        "error": "No such organization"} for index in range(3)]), TODAY)
    assert missing.mrr == 0 and missing.counted == 0 and len(missing.not_counted) == 3
    assert dict(missing.status_counts) == {"not found": 3}
    load_workbook(io.BytesIO(summary_xlsx(missing, results())))  # a valid file, even with nothing in it
