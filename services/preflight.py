"""`python -m services.preflight`: would a console process start with this configuration? Run it before each
replica starts (systemd's ExecStartPre, `make cluster`): a replica that would refuse (a missing shared cookie
key, an http API, an unreachable store…) says which setting, once, and never serves a page.

Reads the environment and the secrets file Streamlit would read (`.streamlit/secrets.toml`, or --secrets),
loads the configuration as the console does, and connects to the store. Exit status 0 when it would start,
1 with one sentence on stderr when it would not. Never prints a secret.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .config import ConfigError, ConsoleConfig, hide_password, load_config, shared_store
from .store import store_engine


def read_secrets(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as problem:
        raise ConfigError(f"The secrets file {path} can't be read: {problem}") from None


def check(secrets_file: Path) -> ConsoleConfig:
    config = load_config(secrets=read_secrets(secrets_file))
    try:
        with store_engine(config.audit_database_url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        raise ConfigError(f"The store at {hide_password(config.audit_database_url)} isn't answering "
                          "(AUDIT_DATABASE_URL).") from None
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=Path, default=Path(".streamlit/secrets.toml"))
    args = parser.parse_args(argv)
    try:
        config = check(args.secrets)
    except ConfigError as problem:
        print(f"Billing Desk would not start: {problem}", file=sys.stderr)
        return 1
    sign_in = "single sign-on" if config.sso is not None else "password"
    print(f"Billing Desk would start: {config.environment} API, {sign_in} sign-in, store "
          f"{hide_password(config.audit_database_url)}{' (shared by replicas)' if shared_store(config) else ''}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
