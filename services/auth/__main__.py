"""`python -m services.auth add NAME --role ROLE [--file users.yaml]`: add a console user, or replace one's role
and password (asked twice, never echoed).

`python -m services.auth end-sessions NAME [--url URL]`: end every session of that person now, in every tab
and replica, with password sign-in or single sign-on (NAME as the audit log shows it: the username, or the
verified e-mail address the identity provider gave). Their next click shows the sign-in page; with single
sign-on, signing in again reads their groups afresh from the provider."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from ..errors import ConfigError
from ..store import store_engine
from .sessions import SignInSessions
from .roles import Role
from .users import add_user


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.auth", description="Manage Billing Desk users.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a user, or replace one's role and password")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[role.value for role in Role])
    add.add_argument("--file", type=Path, default=Path("users.yaml"))
    add.add_argument("--name")
    add.add_argument("--email")
    end = commands.add_parser("end-sessions", help="end every session of a person now, in every tab and replica")
    end.add_argument("username")
    end.add_argument("--url", default=os.environ.get("AUDIT_DATABASE_URL"),
                     help="the store's SQLAlchemy URL (default: AUDIT_DATABASE_URL)")
    args = parser.parse_args(argv)
    if args.command == "end-sessions":
        return _end_sessions(args.username, args.url, parser)
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        print("The passwords differ; nothing was changed.", file=sys.stderr)
        return 1
    try:
        add_user(args.file, args.username, args.role, password, args.name, args.email)
    except ConfigError as problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"Saved {args.username} ({args.role}) to {args.file}.")
    return 0


def _end_sessions(username: str, url: str | None, parser: argparse.ArgumentParser) -> int:
    if not url:
        parser.error("give --url or set AUDIT_DATABASE_URL")
    engine = store_engine(url)
    sessions = SignInSessions(engine, cookie_key="")
    # A verified e-mail is kept lower-case; a name made from the provider's subject keeps its case: end both forms.
    names = dict.fromkeys([username.strip(), username.strip().lower()])
    try:
        ended = sum(sessions.end_everywhere(name) for name in names)
    finally:
        engine.dispose()
    print(f"Ended {ended} open session{'s' if ended != 1 else ''} of {username.strip()}; any other sign-in of that "
          "name before now no longer counts either, so their next click shows the sign-in page.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
