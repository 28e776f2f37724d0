"""`python -m services.auth add NAME --role ROLE [--file users.yaml]`: add a console user, or replace one's role
and password (asked twice, never echoed)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ..config import ConfigError
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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
