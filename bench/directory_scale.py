"""The customer directory at scale: a million organizations in PostgreSQL and in SQLite, searched by an e-mail
fragment, a misspelt name and an id prefix. `python -m bench --only directory-scale` (a `make bench` section),
or alone: `python -m bench.directory_scale [--organizations N] [--store postgresql|sqlite]`.

The rows are made here as the console's reads would have left them (services/directory/table.py's folding), with
made-up but plausible companies: names of one or two invented words and a suffix ("Velomar Kesti Labs"), some
accented; an e-mail at the company's domain; ids shaped like the sandbox's (`org_` + 6 characters, `cus_` + 14);
statuses, plans and reads spread over the last year. PostgreSQL takes them by COPY (the trigram index built
after, as a restore would); SQLite by INSERTs through its triggers, as the console's own writes fill the FTS5
table.

Measured on each store:
(a) server side, the desk's search as a press of Enter makes it (`BillingDesk.search_customers`), for each kind
    of query, 30 different queries each (after three uncounted ones);
(b) the directory's upsert on a lookup (`Directory.note`, an existing organization and a new one), beside the
    lookup's own API read on the sandbox, so the share it adds shows;
(c) in headless Chromium, on a console started on that store (signed in as support): a query typed in the
    Customer page's box and Enter pressed, timed in the page from the key reaching it to the first frame
    showing the list of matches with the run ended, as bench/audit_scale.py times the Audit page.
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
import statistics
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from services.directory.table import fold, name_words, word_variants
from .support import report

ROOT = Path(__file__).resolve().parents[1]
SERVER_TARGET_MS, SCREEN_TARGET_MS, UPSERT_TARGET_MS = 50.0, 150.0, 2.0
SYLLABLES = ("ka", "ve", "lo", "mar", "tri", "den", "sol", "qui", "ron", "bel", "ta", "nex", "zor", "pi", "lum",
             "gra", "vin", "hal", "cor", "eth", "mon", "sta", "ri", "fen", "dal", "ost", "bri", "kel", "nu", "var",
             "pol", "sen", "tek", "jo", "wy", "ar", "len", "dor", "ix", "ma")
SUFFIXES = ("Labs", "Inc", "GmbH", "Ltd", "Analytics", "Studio", "Systems", "Co", "Group", "Partners", "Software",
            "Health", "Logistics", "AG", "SAS", "BV")
MAILBOXES = ("billing", "finance", "accounts", "ap", "ops", "admin", "hello", "team")
ID_CHARACTERS = "abcdefghjkmnpqrstuvwxyz23456789"  # the sandbox's (sandbox/seed.py)
STATUSES = (("active", 0.62), ("trialing", 0.12), ("past_due", 0.04), ("canceled", 0.18), ("unpaid", 0.04))
PLANS = (("Starter", 17900, 179000), ("Growth", 39900, 399000), ("Scale", 69900, 699000),
         ("Expansion", 99900, 999000))
COLUMNS = ("organization_id", "customer_id", "name", "email", "plan", "price_cents", "currency", "interval_unit",
           "interval_count", "status", "cancel_at_period_end", "scheduled_plan", "scheduled_at", "period_end",
           "trial_end", "mrr_cents", "first_read_at", "last_read_at", "last_read_by", "last_used_at", "gone_at",
           "search_text", "name_key")


def _word(chance: random.Random) -> str:
    return "".join(chance.choice(SYLLABLES) for _ in range(chance.choice((2, 3, 3, 4))))


def make_rows(count: int, seed: int = 23, end: datetime | None = None) -> Iterator[dict[str, Any]]:
    """`count` directory rows (distinct ids), as the console's reads would have left them."""
    chance = random.Random(seed)
    end = end or datetime.now(timezone.utc)
    seen: set[str] = set()
    weights = [share for _, share in STATUSES]
    for _ in range(count):
        while (organization_id := "org_" + "".join(chance.choice(ID_CHARACTERS) for _ in range(6))) in seen:
            pass
        seen.add(organization_id)
        words = [_word(chance) for _ in range(chance.choice((1, 2, 2)))]
        name = " ".join(word.capitalize() for word in words) + " " + chance.choice(SUFFIXES)
        if chance.random() < 0.05:
            name = name.replace("e", "é", 1)
        email = f"{chance.choice(MAILBOXES)}@{''.join(words)}{chance.choice(('', '-hq', '-io'))}.example.com"
        customer_id = "cus_" + "".join(chance.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                                       for _ in range(14))
        status = chance.choices([status for status, _ in STATUSES], weights)[0]
        plan, monthly, yearly = chance.choice(PLANS)
        yearly_price = chance.random() < 0.3
        price = yearly if yearly_price else monthly
        paying = status in ("active", "past_due")
        read_at = end - timedelta(seconds=chance.randrange(365 * 86400))
        first = read_at - timedelta(seconds=chance.randrange(365 * 86400))
        yield {"organization_id": organization_id, "customer_id": customer_id, "name": name, "email": email,
               "plan": plan, "price_cents": price, "currency": "USD",
               "interval_unit": "year" if yearly_price else "month", "interval_count": 1, "status": status,
               "cancel_at_period_end": chance.random() < 0.05, "scheduled_plan": None, "scheduled_at": None,
               "period_end": read_at + timedelta(days=chance.randrange(1, 30)), "trial_end": None,
               "mrr_cents": (round(price / 12) if yearly_price else price) if paying else 0,
               "first_read_at": first, "last_read_at": read_at,
               "last_read_by": chance.choice(("lookup", "bulk job", "refresh", "import")), "last_used_at": read_at,
               "gone_at": None,
               "search_text": " ".join((fold(organization_id), fold(customer_id), fold(name), fold(email))),
               "name_key": fold(name)}


def queries(rows: list[dict[str, Any]], each: int, seed: int = 5) -> dict[str, list[str]]:
    """`each` queries of every kind, drawn from rows that exist: the domain's word of an e-mail (with its `@`
    dropped, as a person pastes part of it); a name misspelt: one letter changed in its longest word (5 letters or
    more, the first and last letters kept), every third query with the name's next word typed too (misspelt the
    same way when it is long enough); and an organization id's first 3 characters after `org_` (dozens of
    matches: the list, not one customer opened)."""
    chance = random.Random(seed)
    sample = chance.sample(rows, each)

    def misspelt(word: str) -> str:
        if len(word) < 5:
            return word
        at = chance.randrange(1, len(word) - 1)
        return word[:at] + ("o" if word[at] != "o" else "a") + word[at + 1:]

    named = chance.sample([row for row in rows[:each * 50] if max(map(len, row["name_key"].split())) >= 5], each)
    typos = []
    for number, row in enumerate(named):
        words = row["name_key"].split()
        longest = max(range(len(words)), key=lambda index: len(words[index]))
        typed = [misspelt(words[longest])]
        if number % 3 == 2 and longest + 1 < len(words):
            typed.append(misspelt(words[longest + 1]))
        typos.append(" ".join(typed))
    return {"e-mail fragment": [row["email"].split("@")[1].split(".")[0][:9] for row in sample],
            "name with a typo": typos,
            "id prefix": [row["organization_id"][:7] for row in sample]}


# Searches matching thousands (a suffix every sixteenth name has, the start every id has, a domain's end), shown
# beside the three kinds above: not a target of the issue, but what a person typing a few letters meets.
# `oldbatch`: the domain of an old import's 6,000 organizations, all among the oldest reads (`mark_an_old_batch`),
# the case where a walk newest first would otherwise read the whole directory.
BROAD_QUERIES = ("labs", "gmbh", "analytics", "org_a", "or", "cus_", "example.com", "billing@", "oldbatch")
OLD_BATCH = 6000


def mark_an_old_batch(url: str) -> None:
    """The oldest `OLD_BATCH` reads get an e-mail domain of their own (`oldbatch.example.net`)."""
    from sqlalchemy import text

    from services.store import store_engine

    engine = store_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE directory_organizations SET search_text = search_text || ' oldbatch.example.net' "
                          "WHERE id IN (SELECT id FROM directory_organizations ORDER BY last_read_at, id LIMIT :n)"),
                     {"n": OLD_BATCH})
    engine.dispose()


def name_word_pairs(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """`directory_name_words` for these rows, as the console's reads fill it (services/directory/words.py)."""
    held = set().union(*(name_words(row["name_key"]) for row in rows))
    return sorted((variant, word) for word in held for variant in word_variants(word))


# --- loading ----------------------------------------------------------------------------------------------------
TRIGRAM_INDEXES = {"ix_directory_organizations_search_trgm": "search_text"}


def load_postgres(url: str, rows: list[dict[str, Any]]) -> float:
    """COPYs the rows and their names' words in with the trigram index dropped, then builds it again (as a
    restore would)."""
    import psycopg

    began = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for index in TRIGRAM_INDEXES:
            conn.execute(f"DROP INDEX {index}")
        names = ", ".join(COLUMNS)
        with conn.cursor() as cursor, cursor.copy(f"COPY directory_organizations ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[name] for name in COLUMNS])
        with conn.cursor() as cursor, cursor.copy("COPY directory_name_words (variant, word) FROM STDIN") as copy:
            for pair in name_word_pairs(rows):
                copy.write_row(pair)
        conn.execute("SET maintenance_work_mem = '256MB'")
        for index, column in TRIGRAM_INDEXES.items():
            conn.execute(f"CREATE INDEX {index} ON directory_organizations USING gin ({column} gin_trgm_ops)")
        conn.commit()
        conn.execute("ANALYZE directory_organizations")
        conn.execute("ANALYZE directory_name_words")
        conn.commit()
    return time.perf_counter() - began


def load_sqlite(path: Path, rows: list[dict[str, Any]], chunk: int = 20_000) -> float:
    """INSERTs the rows in transactions of `chunk`, through the triggers that fill the FTS5 table."""
    began = time.perf_counter()
    conn = sqlite3.connect(path)
    try:
        placeholders = ", ".join("?" for _ in COLUMNS)
        statement = f"INSERT INTO directory_organizations ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        for start in range(0, len(rows), chunk):
            with conn:
                conn.executemany(statement, [[_sqlite_value(row[name]) for name in COLUMNS]
                                             for row in rows[start:start + chunk]])
        pairs = name_word_pairs(rows)
        for start in range(0, len(pairs), chunk * 10):
            with conn:
                conn.executemany("INSERT INTO directory_name_words (variant, word) VALUES (?, ?)",
                                 pairs[start:start + chunk * 10])
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return time.perf_counter() - began


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # as SQLAlchemy's DateTime stores it on SQLite
        return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    return value


# --- measuring --------------------------------------------------------------------------------------------------
def _summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {"count": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[math.ceil(len(ordered) * 0.95) - 1], 1), "max_ms": round(ordered[-1], 1)}


def server_searches(url: str, cases: dict[str, list[str]]) -> dict[str, Any]:
    """The desk's search for each query, in-process: milliseconds and how many matches were listed."""
    from services.audit import AuditLog
    from services.auth.roles import Actor, Role
    from services.desk import BillingDesk

    audit = AuditLog(url)
    desk = BillingDesk(None, audit)  # type: ignore[arg-type]  # a search reads only the store
    actor = Actor("sam", Role.SUPPORT)
    figures: dict[str, Any] = {}
    for kind, typed in cases.items():
        for query in typed[:3]:  # uncounted: the caches warm, as a running console's are
            desk.search_customers(actor, query)
        samples, found = [], []
        for query in typed:
            began = time.perf_counter()
            matches = desk.search_customers(actor, query)
            samples.append((time.perf_counter() - began) * 1000)
            found.append(len(matches))
        figures[kind] = {**_summary(samples), "matches_median": statistics.median(found), "empty": found.count(0),
                         "example": typed[0]}
    audit.engine.dispose()
    return figures


def upsert_cost(url: str, rounds: int = 60) -> dict[str, Any]:
    """`Directory.note` on a store of a million: an organization already there (a second lookup) and a new one,
    beside the lookup's own read from the sandbox (`get_customer` over loopback). As the console notes them: the
    words of a new name kept after the upsert, by a thread (their time is not the lookup's)."""
    from services.directory import LOOKUP, Directory
    from services.payments.client import PaymentsClient
    from services.store import store_engine

    from .support import sandbox_process

    engine = store_engine(url)
    directory = Directory(engine, words_in_background=True)  # as the console keeps it
    with sandbox_process(organizations=rounds) as sandbox, PaymentsClient(sandbox.base_url, sandbox.key) as client:
        ids = [row["id"] for row in sandbox.control.organizations()][:rounds]
        reads, customers = [], []
        for organization_id in ids:
            began = time.perf_counter()
            customers.append(client.get_customer(organization_id))
            reads.append((time.perf_counter() - began) * 1000)
    new, again = [], []
    for customer in customers:
        began = time.perf_counter()
        assert directory.note(customer, LOOKUP)
        new.append((time.perf_counter() - began) * 1000)
        assert directory.word_upkeep is not None
        directory.word_upkeep.settle()  # the thread's work done before the next lookup is timed
    for customer in customers:
        began = time.perf_counter()
        assert directory.note(customer, LOOKUP)
        again.append((time.perf_counter() - began) * 1000)
    engine.dispose()
    return {"read": _summary(reads), "insert": _summary(new), "update": _summary(again)}




def browser_searches(url: str, cases: dict[str, list[str]], expected: dict[str, int]) -> dict[str, Any] | None:
    """Enter to screen in headless Chromium for each query that lists matches (one that finds a single customer
    opens it, which is a lookup's time, bench/run.py). None when Chromium or Playwright is missing."""
    try:
        from playwright.sync_api import expect, sync_playwright

        from tests.support.browser import LOOKUP_BOX, launch_chromium, login, start_console, wait_for_app, warm_up

        from .latency import ARM_ENTER
    except Exception:
        return None
    import secrets
    import tempfile

    env = {"AUDIT_DATABASE_URL": url, "BILLING_DESK_COOKIE_KEY": secrets.token_urlsafe(48),
           "BILLING_DESK_AUDIT_KEY": secrets.token_urlsafe(48)}
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as data_dir:
        console = start_console(Path(data_dir), env)
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                warm_up(console, browser)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                login(page, console, "support")
                box = page.get_by_role("textbox", name=LOOKUP_BOX)
                for kind, typed in cases.items():
                    samples = []
                    previous = None
                    for number, query in enumerate([typed[-1], *typed]):  # the first, a warm-up, not counted
                        if expected[query] < 2 or query == previous:  # one match opens it; the same list is on
                            continue                                   # screen already
                        previous = query
                        box.fill(query)
                        expect(box).to_have_value(query)
                        page.bring_to_front()  # headless Chromium draws frames for the front window
                        page.evaluate(ARM_ENTER, ["[data-testid='stCaptionContainer']",
                                                  f"{min(expected[query], 20)} customers match “{query}”"])
                        box.press("Enter")
                        elapsed = page.evaluate("window.__shown")
                        if elapsed is None:
                            raise RuntimeError(f"the matches for {query!r} were not on screen within 30 s")
                        wait_for_app(page, settle_ms=100)
                        if number:  # the first is a warm-up
                            samples.append(float(elapsed))
                    figures[kind] = _summary(samples) if samples else {"count": 0}
                browser.close()
        finally:
            console.stop()
    return figures


def measure_store(name: str, url: str, rows: list[dict[str, Any]], cases: dict[str, list[str]],
                  browser: bool) -> dict[str, Any]:
    from services.store import open_store

    open_store(url).dispose()  # the schema, by the migrations
    load = load_postgres(url, rows) if name == "postgresql" else load_sqlite(Path(url.split("///", 1)[1]), rows)
    print(f"… {name}: {len(rows):,} organizations loaded in {load:.0f} s", flush=True)
    result: dict[str, Any] = {"organizations": len(rows), "load_s": round(load, 1)}
    mark_an_old_batch(url)
    result["server"] = server_searches(url, cases)
    result["broad"] = server_searches(url, {query: [query] * 10 for query in BROAD_QUERIES})
    print(f"… {name}: searches {result['server']}", flush=True)
    result["upsert"] = upsert_cost(url)
    print(f"… {name}: upsert {result['upsert']}", flush=True)
    expected = _match_counts(url, cases)  # after the upsert's organizations joined (their ids look alike)
    result["browser"] = browser_searches(url, cases, expected) if browser else None
    print(f"… {name}: browser {result['browser']}", flush=True)
    return result


def _match_counts(url: str, cases: dict[str, list[str]]) -> dict[str, int]:
    from services.directory import Directory
    from services.store import store_engine

    engine = store_engine(url)
    directory = Directory(engine)
    counts = {query: len(directory.search(query)) for typed in cases.values() for query in typed}
    engine.dispose()
    return counts


def run(organizations: int = 1_000_000, browser: bool = True, stores: tuple[str, ...] = ("postgresql", "sqlite"),
        each: int = 30) -> dict[str, Any]:
    import tempfile

    from tests.support.postgres import PostgresServer

    began = time.perf_counter()
    rows = list(make_rows(organizations))
    print(f"… {organizations:,} directory rows made in {time.perf_counter() - began:.0f} s", flush=True)
    cases = queries(rows, each)
    results: dict[str, Any] = {"organizations": organizations, "queries_per_kind": each}
    if "postgresql" in stores:
        server = PostgresServer.start()
        try:
            results["postgresql"] = measure_store("postgresql", server.create_database(), rows, cases, browser)
        finally:
            server.stop()
    if "sqlite" in stores:
        with tempfile.TemporaryDirectory() as folder:
            results["sqlite"] = measure_store("sqlite", f"sqlite:///{folder}/directory.sqlite3", rows, cases, browser)
    return results


def table(results: dict[str, Any]) -> str:
    """The section of docs/performance.md."""
    if not results:
        return "_Not measured in this run (`python -m bench --only directory-scale`)._"
    lines = [f"{results['organizations']:,} organizations; {results['queries_per_kind']} different queries of each "
             "kind (three uncounted queries of each kind first).", "",
             "| Store | Query | Example | Matches (median) | Server p50 / p95 | Enter to screen p50 / p95 "
             "(Chromium) | Target (p95) |", "|---|---|---|---:|---:|---:|---|"]
    for store in ("postgresql", "sqlite"):
        figures = results.get(store)
        if not figures:
            continue
        for kind, server in figures["server"].items():
            screen = (figures.get("browser") or {}).get(kind) or {}
            shown = f"{screen['p50_ms']} / {screen['p95_ms']} ms" if screen.get("count") else "—"
            nothing = f" ({server['empty']} found none)" if server["empty"] else ""
            lines.append(f"| {store} | {kind} | `{server['example']}` | {server['matches_median']:g}{nothing} | "
                         f"{server['p50_ms']} / {server['p95_ms']} ms | {shown} | ≤ {SERVER_TARGET_MS:.0f} ms "
                         f"server, ≤ {SCREEN_TARGET_MS:.0f} ms screen |")
    lines += ["", "Broad searches (thousands match; not a target, shown for what a person typing a few letters meets), "
              "server side, 10 rounds each: " + "; ".join(
                  f"{store}: " + ", ".join(f"`{query}` {figures['p95_ms']} ms" for query, figures in
                                           results[store].get("broad", {}).items())
                  for store in ("postgresql", "sqlite") if results.get(store)) + " (p95)."]
    lines += ["", "| Store | Loaded in | A lookup's API read p50 / p95 | Upsert, organization known p50 / p95 | "
              "Upsert, new organization p50 / p95 | Target (p95) |", "|---|---:|---:|---:|---:|---|"]
    for store in ("postgresql", "sqlite"):
        figures = results.get(store)
        if not figures:
            continue
        upsert = figures["upsert"]
        lines.append(f"| {store} | {figures['load_s']} s | {upsert['read']['p50_ms']} / {upsert['read']['p95_ms']} ms "
                     f"| {upsert['update']['p50_ms']} / {upsert['update']['p95_ms']} ms | "
                     f"{upsert['insert']['p50_ms']} / {upsert['insert']['p95_ms']} ms | ≤ {UPSERT_TARGET_MS:g} ms |")
    return "\n".join(lines)


def failures(results: dict[str, Any]) -> list[str]:
    missed = []
    for store in ("postgresql", "sqlite"):
        figures = results.get(store) if results else None
        if not figures:
            continue
        for kind, server in figures["server"].items():
            if server["p95_ms"] > SERVER_TARGET_MS:
                missed.append(f"directory search ({store}, {kind}) server p95")
            screen = (figures.get("browser") or {}).get(kind) or {}
            if screen.get("count") and screen["p95_ms"] > SCREEN_TARGET_MS:
                missed.append(f"directory search ({store}, {kind}) Enter-to-screen p95")
        if max(figures["upsert"]["update"]["p95_ms"], figures["upsert"]["insert"]["p95_ms"]) > UPSERT_TARGET_MS:
            missed.append(f"directory upsert ({store}) p95")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.directory_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--organizations", type=int, default=1_000_000)
    parser.add_argument("--store", action="append", choices=("postgresql", "sqlite"))
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = run(args.organizations, browser=not args.skip_browser,
                  stores=tuple(args.store or ("postgresql", "sqlite")))
    return report(results, table, failures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
