"""The command `python -m services.audit verify | cut-over`: walk the whole chain and name every row altered,
removed or inserted (held against a witness file if given); or, once, seal a store hashed before it had a key."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from ..store import store_engine
from .chain import audit_rows, cut_over
from .keys import AuditKeyError, AuditKeys, check_secret
from .verify import verify
from .watch import held_against_witness


def keys_from_environment(environ: dict[str, str] | os._Environ[str] = os.environ) -> AuditKeys | None:
    """BILLING_DESK_AUDIT_KEY (and BILLING_DESK_AUDIT_OLD_KEYS, comma-separated), as the console reads them."""
    current = environ.get("BILLING_DESK_AUDIT_KEY")
    if not current:
        return None
    older = [check_secret(secret, "BILLING_DESK_AUDIT_OLD_KEYS") for secret in
             (environ.get("BILLING_DESK_AUDIT_OLD_KEYS") or "").split(",") if secret.strip()]
    return AuditKeys.of(check_secret(current, "BILLING_DESK_AUDIT_KEY"), older)


def _cut_over(url: str, keys: AuditKeys | None, parser: argparse.ArgumentParser) -> int:
    if keys is None:
        parser.error("set BILLING_DESK_AUDIT_KEY: the cut-over row is signed with it")
    engine = store_engine(url)
    try:
        before = verify(engine, None, None)
        if any(finding.problem != "unchecked" for finding in before.findings):
            print("The unkeyed chain does not verify, so it is not sealed: follow docs/deployment.md, 'When the chain "
                  "does not verify'.", file=sys.stderr)
            return 1
        api_key = os.environ.get("PAYMENTS_API_KEY", "")  # which money the rows are about, as the console says it
        environment = "live" if api_key.startswith("bsk_live_") else "test" if api_key.startswith("bsk_test_") else None
        row = cut_over(engine, keys, "cut-over", environment)
    finally:
        engine.dispose()
    if row is None:
        print("Nothing to do: the log is empty or already ends with a keyed row.")
        return 0
    print(f"Cut over at row {row}: rows 1–{row - 1} (unkeyed, last hash {before.last_hash}) are sealed by it. Keep this "
          "line with the upgrade's record; run it once only: if the console asks again, the log was rewritten.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.audit", description="The audit log's hash chain.")
    parser.add_argument("--url", default=os.environ.get("AUDIT_DATABASE_URL"),
                        help="the store's SQLAlchemy URL (default: AUDIT_DATABASE_URL)")
    actions = parser.add_subparsers(dest="action", required=True)
    verify_command = actions.add_parser("verify", help="walk the whole chain and name every row altered, removed or "
                                        "inserted, one line each; exit 0 if it verifies, 1 if not, 2 if the store "
                                        "can't be read. The audit key comes from BILLING_DESK_AUDIT_KEY.")
    verify_command.add_argument("--url", default=argparse.SUPPRESS, help="as above, after the command")
    verify_command.add_argument("--witness", type=Path, help="a witness file the console wrote "
                                "(BILLING_DESK_AUDIT_WITNESS): every head it recorded must still be in the log")
    cut_over = actions.add_parser("cut-over", help="once, after upgrading a store hashed before it had a key: seal "
                                  "its unkeyed rows with one keyed row (needs BILLING_DESK_AUDIT_KEY)")
    cut_over.add_argument("--url", default=argparse.SUPPRESS, help="as above, after the command")
    options = parser.parse_args(argv)
    if not options.url:
        parser.error("give --url or set AUDIT_DATABASE_URL")
    try:
        keys = keys_from_environment()
    except AuditKeyError as problem:
        parser.error(str(problem))
    if options.action == "cut-over":
        return _cut_over(options.url, keys, parser)
    engine = store_engine(options.url)
    try:
        if not inspect(engine).has_table(audit_rows.name):
            print("The store has no audit chain yet: run `python -m services.store upgrade`.", file=sys.stderr)
            return 2
        report = verify(engine, None, keys)  # read only: the command may run as a role that can't write
        witnessed = held_against_witness(engine, options.witness.read_text().splitlines()) if options.witness else []
    except SQLAlchemyError as problem:
        original = getattr(problem, "orig", None) or problem
        where = engine.url.render_as_string(hide_password=True)
        print(f"The store at {where} can't be read ({type(original).__name__}).", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    for finding in (*report.findings, *witnessed):
        print(finding.line)
    if report.ok and not witnessed:  # the last hash: kept somewhere else (a witness), it shows a later rewrite
        print(f"{report.summary} Last hash {report.last_hash}.")
    elif report.ok:
        print("Audit chain does not match its witness.")
    return 0 if report.ok and not witnessed else 1
