"""The bulk fetcher against the sandbox: pacing, 429 recovery, stop, and mixed ids."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandbox import SandboxSettings, start_sandbox
from sandbox.control_client import SandboxControl
from services.inputs import InputRefused
from services.bulk import MAX_IDS, BulkLookup, BulkRow, ids_from_csv, ids_from_text, parse_ids, status_counts
from services.payments.client import PaymentsClient


def test_pasted_ids_with_any_separators_duplicates_and_mistakes() -> None:
    text = "org_abc123, org_b\norg_c;org_abc123\t'org_d' | cus_123  org-e\n\n<script> " + "x" * 120
    parsed = parse_ids(ids_from_text(text))
    assert parsed.valid == ["org_abc123", "org_b", "org_c", "org_d", "org-e"]
    assert parsed.duplicates == ["org_abc123"]
    assert [given for given, _ in parsed.invalid] == ["cus_123", "<script>", "x" * 80]
    assert "customer id" in parsed.invalid[0][1]


def test_at_most_five_thousand_ids_are_sent() -> None:
    parsed = parse_ids([f"org_{index}" for index in range(MAX_IDS + 7)])
    assert len(parsed.valid) == MAX_IDS and parsed.over_limit == 7


def test_csv_with_an_id_column_or_without_a_header() -> None:
    with_header = "\ufeffName,Organization ID,Owner\nAcme,org_abc123,ann\nBeta,org_b,bob\n".encode()
    assert ids_from_csv(with_header) == ["org_abc123", "org_b"]
    assert ids_from_csv(b"org_a\norg_b\n") == ["org_a", "org_b"]
    assert ids_from_csv(b"") == []


def test_mixed_known_unknown_and_invalid_ids(client: PaymentsClient, control: SandboxControl) -> None:
    known = [row["id"] for row in control.organizations()[:6]]
    parsed = parse_ids(known + ["org_doesnotexist", "not valid!", known[0]])
    before = control.stats()["requests"]
    frame = BulkLookup(client, parsed.valid).run().frame()
    assert control.stats()["requests"] - before == 7  # the invalid and the duplicate were not sent
    assert list(frame.organization_id) == parsed.valid  # in the order given
    missing = frame[frame.organization_id == "org_doesnotexist"].iloc[0]
    assert missing.status == "not found" and missing.error == "No such organization"
    assert set(frame.status[:6]) <= {"none", "trialing", "active", "past_due", "canceled", "incomplete"}
    abc = frame[frame.organization_id == "org_abc123"]
    if not abc.empty:
        assert abc.iloc[0].plan == "Growth" and abc.iloc[0].price == 399.0
    counts = status_counts(frame)
    assert counts.organizations.sum() == 7


def test_pacing_under_a_low_limit_meets_no_429(tmp_path: Path) -> None:
    running = start_sandbox(SandboxSettings(db_path=tmp_path / "s.db", rate_limit=1200, rate_burst=5))
    try:
        control = SandboxControl(running.root_url, running.api_key)
        ids = [row["id"] for row in control.organizations()][:60]
        with PaymentsClient(running.base_url, running.api_key) as client:
            job = BulkLookup(client, ids, concurrency=8).run()
        assert control.stats()["rateLimited"] == 0
        progress = job.progress()
        assert progress.done == 60 and progress.failed == 0 and progress.rate_limited == 0
        assert progress.elapsed >= (60 - 5) / 20 * 0.9  # it did wait for the bucket: 20 a second after the burst
    finally:
        running.stop()


def test_a_429_storm_is_waited_out_and_every_id_fetched(client: PaymentsClient, control: SandboxControl) -> None:
    ids = [row["id"] for row in control.organizations()][:10]
    control.add_fault("customer-info", status=429, count=6)  # beyond the client's own two retries
    job = BulkLookup(client, ids, concurrency=2).run()
    progress = job.progress()
    assert progress.done == 10 and progress.failed == 0 and progress.rate_limited >= 1
    assert job.frame().error.isna().all()


def test_stop_keeps_what_was_fetched(tmp_path: Path) -> None:
    running = start_sandbox(SandboxSettings(db_path=tmp_path / "s.db", latency_ms=50))
    try:
        ids = [row["id"] for row in SandboxControl(running.root_url, running.api_key).organizations()]
        with PaymentsClient(running.base_url, running.api_key) as client:
            job = BulkLookup(client, ids, concurrency=2).start()
            time.sleep(0.4)
            job.stop()
            job.wait(10)
            progress = job.progress()
            assert progress.stopped and progress.finished and 0 < progress.done < len(ids)
            frame = job.frame()
            assert len(frame) == progress.done and frame.error.isna().all()
    finally:
        running.stop()


@pytest.mark.parametrize("done", [0, 5])
def test_progress_estimates_time_left(done: int, client: PaymentsClient) -> None:
    now = [100.0]
    job = BulkLookup(client, [f"org_{index}" for index in range(10)], clock=lambda: now[0])
    job._started_at = 100.0
    for index in range(done):
        job.rows[f"org_{index}"] = BulkRow(f"org_{index}", status="active")
    now[0] = 102.0
    progress = job.progress()
    assert progress.eta_seconds == (None if done == 0 else pytest.approx(2.0))


def test_an_unreadable_upload_gets_one_sentence() -> None:
    with pytest.raises(InputRefused, match="isn't UTF-8 text"):
        ids_from_csv("org_ä\n".encode("latin-1"))
    with pytest.raises(InputRefused, match="a cell is too long"):
        ids_from_csv(b'"' + b"x" * 200_000 + b'"\n')  # past the csv module's field limit


def test_reading_an_upload_stops_past_the_id_limit() -> None:
    huge = b"organization_id\n" + b"".join(f"org_{index}\n".encode() for index in range(50_000))
    ids = ids_from_csv(huge)
    assert len(ids) == 2 * MAX_IDS and ids[0] == "org_0"
    assert parse_ids(ids).over_limit == MAX_IDS


def test_a_huge_paste_lists_the_first_invalid_ids_and_counts_the_rest() -> None:
    from services.bulk import MAX_INVALID_LISTED

    junk = " ".join(f"<junk{index}>" for index in range(5_000)) + " org_abc123"
    parsed = parse_ids(ids_from_text(junk))
    assert parsed.valid == ["org_abc123"] and parsed.invalid_count == 5_000
    assert len(parsed.invalid) == MAX_INVALID_LISTED and parsed.invalid_unlisted == 5_000 - MAX_INVALID_LISTED
