"""Bulk lookup: customer info for a list of organizations, as fast as the API's rate limit allows.

The API has no list endpoint, so a list of ids becomes one customer-info call each, run by a few workers
that share the client's rate pacer (which reads `X-RateLimit-*` and spaces calls so steady use meets no 429).
A 429 that comes anyway makes every worker wait its `Retry-After`, then the id is tried again. A not-found
is a result, not a failure of the run. Stop keeps everything fetched so far.

The console runs bulk lookups as durable jobs (services/jobs/), whose workers fetch each id with `fetch_row` and
store `row_record`; `BulkLookup` is the same fetch held in memory, for scripts and the benchmarks.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from .inputs import InputRefused
from .payments import validation
from .tables import customer_record, typed_customer_frame
from .payments.client import PaymentsClient
from .payments.errors import InvalidInputError, NotFoundError, PaymentsError, RateLimitError
from .payments.models import CustomerInfo, PlanCatalog

MAX_IDS = 5000
# What the paste box takes: room for the id limit twice over with long ids and separators, not a 4 MB paste
# that would hold the console's CPU for seconds on each run (the page parses once per change, too).
MAX_PASTE_CHARACTERS = 250_000
MAX_INVALID_LISTED = 200  # the invalid ids listed one by one; the rest are counted
DEFAULT_CONCURRENCY = 8
MAX_RATE_LIMIT_RETRIES = 5
RESULT_COLUMNS = ["organization_id", "name", "status", "plan", "price", "interval", "period_end",
                  "cancel_at_period_end", "card_last4", "email", "address", "error"]
_SEPARATORS = re.compile(r"[\s,;|\"']+")
_ID_COLUMNS = ("organization_id", "organizationid", "organization", "org_id", "orgid", "org", "id")


@dataclass(frozen=True)
class ParsedIds:
    valid: list[str]
    duplicates: list[str]
    invalid: list[tuple[str, str]]  # (what was given, why it was refused): the first MAX_INVALID_LISTED
    over_limit: int = 0  # valid ids beyond MAX_IDS, not sent
    invalid_count: int = 0  # every invalid token, listed or not

    @property
    def invalid_unlisted(self) -> int:
        return self.invalid_count - len(self.invalid)


def parse_ids(tokens: Iterable[str], limit: int = MAX_IDS) -> ParsedIds:
    valid: list[str] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    invalid: list[tuple[str, str]] = []
    invalid_count = 0
    for token in tokens:
        if not token.strip():
            continue
        try:
            organization_id = validation.organization_id(token)
        except InvalidInputError as problem:
            invalid_count += 1
            if len(invalid) < MAX_INVALID_LISTED:
                invalid.append((token[:80], problem.message))
            continue
        if organization_id in seen:
            duplicates.append(organization_id)
            continue
        seen.add(organization_id)
        valid.append(organization_id)
    return ParsedIds(valid[:limit], duplicates, invalid, max(0, len(valid) - limit), invalid_count)


def ids_from_text(text: str) -> list[str]:
    """Ids pasted with any separators: lines, spaces, tabs, commas, semicolons, pipes, quotes."""
    return [token for token in _SEPARATORS.split(text or "") if token]


def import_file_ids(data: bytes, limit: int = 100_000) -> ParsedIds:
    """The organization ids of a company's list (a CSV) for the customer directory, checked: what is valid,
    duplicated, refused and past `limit` (services/jobs/store.py MAX_IDS_PER_IMPORT). InputRefused for a file
    that isn't CSV text."""
    return parse_ids(ids_from_csv(data, limit=2 * limit), limit=limit)


def ids_from_csv(data: bytes, limit: int = 2 * MAX_IDS) -> list[str]:
    """The id column of a CSV: a header named like organization_id/org/id, else the first column. Reading stops
    after `limit` rows (enough to report duplicates and what lies past the id limit); a file that isn't
    readable text or CSV raises InputRefused with one sentence."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputRefused("file", "The file isn't UTF-8 text. Save it as CSV (UTF-8) and upload it again.") from None
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(itertools.islice(reader, limit + 1))
    except csv.Error:
        raise InputRefused("file", "The file isn't a CSV Billing Desk can read (a cell is too long or a quote "
                                   "is never closed). Export it again as CSV and upload it.") from None
    if not rows:
        return []
    header = [cell.strip().lower().replace(" ", "_") for cell in rows[0]]
    column = next((header.index(name) for name in _ID_COLUMNS if name in header), None)
    body = rows[1:] if column is not None else rows
    column = column or 0
    return [row[column].strip() for row in body if len(row) > column]


@dataclass
class BulkRow:
    organization_id: str
    customer: CustomerInfo | None = None
    error: str | None = None
    status: str = "error"
    problem: PaymentsError | None = None  # the API's error, when the lookup ended in one


@dataclass
class BulkProgress:
    total: int
    done: int
    failed: int
    not_found: int
    rate_limited: int  # 429s that reached us despite pacing (each was waited out and retried)
    elapsed: float
    finished: bool
    stopped: bool

    @property
    def eta_seconds(self) -> float | None:
        if self.done == 0 or self.finished:
            return None
        return self.elapsed / self.done * (self.total - self.done)


@dataclass
class BulkLookup:
    """One bulk run. `start()` returns at once; `progress()` and `frame()` can be read while it runs."""

    client: PaymentsClient
    organization_ids: list[str]
    concurrency: int = DEFAULT_CONCURRENCY
    clock: Callable[[], float] = time.monotonic
    rows: dict[str, BulkRow] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _started_at: float | None = None
    _finished_at: float | None = None
    _rate_limited: int = 0
    _catalog: PlanCatalog | None = None

    def start(self) -> "BulkLookup":
        self._started_at = self.clock()
        self._thread = threading.Thread(target=self.run, name="bulk-lookup", daemon=True)
        self._thread.start()
        return self

    def run(self) -> "BulkLookup":
        """Fetches every id (in this thread); used directly by scripts and benchmarks."""
        self._started_at = self._started_at or self.clock()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="bulk") as pool:
            list(pool.map(self._fetch, self.organization_ids))
        self._finished_at = self.clock()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _fetch(self, organization_id: str) -> None:
        if self._stop.is_set():
            return
        row = fetch_row(self.client, organization_id, self._stop.is_set, self._count_rate_limited)
        if row is not None:
            with self._lock:
                self.rows[organization_id] = row

    def _count_rate_limited(self) -> None:
        with self._lock:
            self._rate_limited += 1

    def progress(self) -> BulkProgress:
        with self._lock:
            rows = list(self.rows.values())
            rate_limited = self._rate_limited
        end = self._finished_at or self.clock()
        finished = self._finished_at is not None
        return BulkProgress(total=len(self.organization_ids), done=len(rows),
                            failed=sum(row.status == "error" for row in rows),
                            not_found=sum(row.status == "not found" for row in rows), rate_limited=rate_limited,
                            elapsed=end - (self._started_at or end), finished=finished,
                            stopped=self._stop.is_set())

    def frame(self) -> pd.DataFrame:
        """One row per id fetched so far, in the order given."""
        with self._lock:
            rows = [self.rows[organization_id] for organization_id in self.organization_ids
                    if organization_id in self.rows]
        return typed_customer_frame([row_record(row, self._plans) for row in rows], RESULT_COLUMNS)

    def _plans(self, customer: CustomerInfo) -> PlanCatalog | None:
        """The catalog, fetched once and only if some subscription lacks a plan name."""
        subscription = customer.subscription
        if subscription is None or subscription.plan_name or not subscription.product_id:
            return None
        if self._catalog is None:
            try:
                self._catalog = self.client.list_plans(customer.organization_id)
            except PaymentsError:
                return None
        return self._catalog


def fetch_row(client: PaymentsClient, organization_id: str, stopped: Callable[[], bool] = lambda: False,
              on_rate_limited: Callable[[], None] = lambda: None) -> BulkRow | None:
    """One id's customer, as a row: a not-found or an API error is a result; a 429 that comes despite pacing is
    waited out (the client's pacer holds every worker past Retry-After) and the id tried again. None when
    `stopped()` became true while waiting."""
    row = BulkRow(organization_id)
    for _ in range(MAX_RATE_LIMIT_RETRIES + 1):
        try:
            row.customer = client.get_customer(organization_id)
            row.status, row.error = row.customer.status, None
            break
        except NotFoundError:
            row.status, row.error = "not found", "No such organization"
            break
        except RateLimitError as limited:
            on_rate_limited()
            row.error = limited.user_message
            if stopped():
                return None
        except PaymentsError as problem:
            row.status, row.error, row.problem = "error", problem.user_message, problem
            break
    return row


def row_record(row: BulkRow, plans: Callable[[CustomerInfo], PlanCatalog | None] = lambda _: None) -> dict[str, object]:
    """The row a results table shows: the customer's record (services/tables.py) with the lookup's status and
    error; an id without a customer keeps only its id."""
    base = (customer_record(row.customer, plans(row.customer)) if row.customer else
            {"organization_id": row.organization_id, "price": None, "period_end": None})
    return {**base, "status": row.status, "error": row.error}


def status_counts(frame: pd.DataFrame) -> pd.DataFrame:
    counts = frame.groupby("status", dropna=False).size().rename("organizations").reset_index()
    return counts.sort_values("organizations", ascending=False, kind="stable").reset_index(drop=True)
