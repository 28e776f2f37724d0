"""The command `python -m services.store upgrade | current | grant ROLE`: migrate the store, show its revision,
or grant the console's database role what it needs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .engine import StoreError, store_engine
from .grants import grant_console
from .migrations import current_revision, head_revision, upgrade


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.store", description="The console's store: "
                                     "migrate it, show its revision, or grant the console's role (drafting the next "
                                     "migration: python -m services.schema revision).")
    parser.add_argument("--url", default=os.environ.get("AUDIT_DATABASE_URL"),
                        help="the store's SQLAlchemy URL (default: AUDIT_DATABASE_URL)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("upgrade", help="migrate the store to the newest revision (under the migration lock)")
    actions.add_parser("current", help="print the store's revision and the newest one")
    grant = actions.add_parser("grant", help="grant the console's database role what it needs (PostgreSQL, as "
                                             "the owner, after every upgrade)")
    grant.add_argument("role", help="the console's role, e.g. billing_desk_console")
    options = parser.parse_args(argv)
    if not options.url:
        parser.error("give --url or set AUDIT_DATABASE_URL")
    engine = store_engine(options.url)
    try:
        if options.action == "upgrade":
            applied = upgrade(engine)
            print(f"Applied {', '.join(applied)}." if applied else "Nothing to apply.",
                  f"The store is at {current_revision(engine)}.")
        elif options.action == "grant":
            for statement in grant_console(engine, options.role):
                print(f"{statement};")
        else:
            print(f"The store is at {current_revision(engine) or 'no revision'}; the newest is {head_revision()}.")
    except StoreError as problem:
        print(problem, file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0
