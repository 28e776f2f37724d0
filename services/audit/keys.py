"""The audit log's key: what makes its hash chain something the database alone can't recompute.

A row's hash is HMAC-SHA256 over its content with a key the console holds (`BILLING_DESK_AUDIT_KEY`, the same on
every replica) and the database never does, so someone with write access to the database (a superuser with the
triggers disabled) who rewrites a row can't make its hash, or any hash after it, right again. Each keyed row
names its key by `key_id`, a digest of the key (never the key), so keys can be rotated: the new key signs new
rows, and the old ones stay listed (`BILLING_DESK_AUDIT_OLD_KEYS`) to verify the rows they signed.

Rows written before the store had a key carry no key id and plain SHA-256 hashes (migration 0004). When a console
with a key first starts on such a log it appends one keyed *cut-over* row, which chains onto the last unkeyed one:
from then on every row must be keyed, so the unkeyed past is sealed by the first keyed row, and a log whose
newest row is unkeyed while a key is configured has been recomputed without it (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

MIN_KEY_LENGTH, MIN_KEY_VARIETY = 32, 16


class AuditKeyError(ValueError):
    pass


def key_id(secret: str) -> str:
    """A key's public name: 12 hex digits of a digest that can't be turned back into the key."""
    return hashlib.sha256(b"billing-desk audit key id\0" + secret.encode()).hexdigest()[:12]


def check_secret(secret: str, name: str) -> str:
    secret = secret.strip()
    if len(secret) < MIN_KEY_LENGTH or len(set(secret)) < MIN_KEY_VARIETY:
        raise AuditKeyError(f"{name} must be at least {MIN_KEY_LENGTH} random characters with at least "
                            f"{MIN_KEY_VARIETY} different ones.")
    return secret


@dataclass(frozen=True)
class AuditKeys:
    """The key new rows are signed with, and every key a row may name."""

    current: str
    older: tuple[str, ...] = ()
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {key_id(secret): secret.encode() for secret in (*self.older, self.current)})

    @classmethod
    def of(cls, current: str, older: Iterable[str] = ()) -> AuditKeys:
        return cls(current, tuple(secret for secret in older if secret))

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def knows(self, identifier: str) -> bool:
        return identifier in self._by_id

    def mac(self, identifier: str, data: bytes) -> str:
        """HMAC-SHA256 of `data` under the key named `identifier` (KeyError for a key not held)."""
        return hmac.new(self._by_id[identifier], data, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never the keys themselves
        return f"AuditKeys(current={self.current_id}, older={[key_id(secret) for secret in self.older]})"
