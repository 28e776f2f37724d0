"""How a sandbox is started: key, database, limits, faults and answer dialect."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

API_KEY_PATTERN = re.compile(r"^bsk_(live|test)_[0-9a-f]{32}$")
DEFAULT_DB = Path(".data/sandbox.sqlite3")
# How answers are shaped (sandbox/dialects.py): "camel" is docs/payments-api.md's and /openapi.json's shape;
# "stripe" serves the same state as a Stripe-backed API might, to prove the console reads either.
DIALECTS = ("camel", "stripe")


def new_test_key() -> str:
    return "bsk_test_" + secrets.token_hex(16)


@dataclass
class SandboxSettings:
    api_key: str = field(default_factory=new_test_key)
    db_path: Path | str = DEFAULT_DB
    rate_limit: int = 1000  # requests per minute per key
    rate_burst: int | None = None  # bucket size; defaults to one minute's worth
    latency_ms: int = 0
    error_rate: float = 0.0
    organizations: int = 74  # seeded on first start
    dialect: str = "camel"

    def __post_init__(self) -> None:
        if not API_KEY_PATTERN.match(self.api_key):
            raise ValueError("The sandbox key must look like bsk_test_ followed by 32 hex characters.")
        if self.dialect not in DIALECTS:
            raise ValueError(f"The sandbox dialect must be one of: {', '.join(DIALECTS)}.")
