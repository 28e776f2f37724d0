"""Console users: a YAML file of bcrypt hashes and roles, read by the console and never rewritten by it.

File format (add users with `python -m services.auth add NAME --role ROLE`):

    users:
      jane:
        name: Jane Doe
        email: jane@example.com
        role: finance
        password_hash: $2b$12$...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from ..errors import ConfigError
from .roles import Role, parse_role

DEMO_PASSWORDS: dict[str, str] = {"support": "support-demo", "finance": "finance-demo", "admin": "admin-demo"}
MIN_PASSWORD_LENGTH = 10


@dataclass(frozen=True)
class User:
    username: str
    name: str
    role: Role
    email: str
    password_hash: str


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def demo_users() -> dict[str, User]:
    """The sandbox's three users, one per role (cheaper hashes: these passwords are public anyway)."""
    return {name: User(name, f"Demo {name}", Role(name), f"{name}@billing-desk.test", hash_password(password, 4))
            for name, password in DEMO_PASSWORDS.items()}


def read_users(path: Path) -> dict[str, User]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"The users file {path} does not exist.") from None
    except yaml.YAMLError:
        raise ConfigError(f"The users file {path} is not valid YAML.") from None
    entries = document.get("users") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"The users file {path} has no 'users' mapping.")
    users: dict[str, User] = {}
    for username, entry in entries.items():
        username = str(username).strip().lower()
        if not isinstance(entry, dict):
            raise ConfigError(f"User '{username}' in {path} is not a mapping.")
        role = parse_role(entry.get("role"))
        password_hash = str(entry.get("password_hash", ""))
        if role is None:
            raise ConfigError(f"User '{username}' has no valid role (support, finance or admin).")
        if not password_hash.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"User '{username}' has no bcrypt password_hash.")
        users[username] = User(username, str(entry.get("name") or username), role, str(entry.get("email") or ""),
                               password_hash)
    return users


def refuse_demo_credentials(users: dict[str, User]) -> None:
    """Outside the sandbox, a demo user (a public password) must never be able to log in."""
    for username, password in DEMO_PASSWORDS.items():
        user = users.get(username)
        if user and bcrypt.checkpw(password.encode(), user.password_hash.encode()):
            raise ConfigError(f"User '{username}' still has its public demo password; change it or remove the user.")


def add_user(path: Path, username: str, role: str, password: str, name: str | None = None,
             email: str | None = None) -> None:
    parsed_role = parse_role(role)
    if parsed_role is None:
        raise ConfigError("The role must be support, finance or admin.")
    username = username.strip().lower()
    if not username.isidentifier():
        raise ConfigError("A username is letters, digits and underscores, starting with a letter.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"A password has at least {MIN_PASSWORD_LENGTH} characters.")
    if password in DEMO_PASSWORDS.values():
        raise ConfigError("That is a public demo password; choose another.")
    document: dict[str, Any] = {"users": {}}
    if path.exists():
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {"users": {}}
        document.setdefault("users", {})
    document["users"][username] = {"name": name or username, "email": email or "", "role": parsed_role.value,
                                   "password_hash": hash_password(password)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=True), encoding="utf-8")
    path.chmod(0o600)
