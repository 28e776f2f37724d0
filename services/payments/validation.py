"""Checks on what a person types, before any request: each failure names its field and says what to do."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import InvalidInputError

ORGANIZATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,99}$")
PRICE_ID = re.compile(r"^price_[A-Za-z0-9]{1,96}$")
PRODUCT_ID = re.compile(r"^prod_[A-Za-z0-9]{1,96}$")
CHECKOUT_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")
API_KEY = re.compile(r"^bsk_(live|test)_[0-9a-f]{32}$")
# Ids of other kinds that people paste into the organization box by mistake.
_OTHER_ID_KINDS = {"cus_": "a customer id", "sub_": "a subscription id", "price_": "a price id",
                   "prod_": "a product id", "cs_": "a checkout session id", "in_": "an invoice id",
                   "bps_": "a portal session id"}


def _has_control_or_space(text: str) -> bool:
    return any(ch.isspace() or not ch.isprintable() for ch in text)


def organization_id(raw: object, field: str = "organization id") -> str:
    """The organization id, trimmed of surrounding whitespace, or InvalidInputError saying what is wrong."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInputError(field, "Enter an organization id, e.g. org_abc123.")
    text = raw.strip()
    if len(text) > 100:
        raise InvalidInputError(field, "An organization id is at most 100 characters.")
    if _has_control_or_space(text):
        raise InvalidInputError(field, "An organization id has no spaces, tabs or line breaks.")
    for prefix, kind in _OTHER_ID_KINDS.items():
        if text.startswith(prefix):
            raise InvalidInputError(field, f"That is {kind}, not an organization id (e.g. org_abc123).")
    if not text.isascii() or not ORGANIZATION_ID.match(text):
        raise InvalidInputError(field, "An organization id has only letters, digits, '_' and '-' (e.g. org_abc123).")
    return text


def other_id_kind(text: str) -> str | None:
    """What kind of id `text` is when it is another kind than an organization's ("a customer id"), or None."""
    return next((kind for prefix, kind in _OTHER_ID_KINDS.items() if text.strip().startswith(prefix)), None)


def _prefixed_id(raw: object, pattern: re.Pattern[str], field: str, example: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInputError(field, f"Enter a {field}, e.g. {example}.")
    text = raw.strip()
    if not text.isascii() or not pattern.match(text):
        raise InvalidInputError(field, f"A {field} looks like {example} (letters and digits after the prefix).")
    return text


def price_id(raw: object) -> str:
    return _prefixed_id(raw, PRICE_ID, "price id", "price_1A2b3C")


def product_id(raw: object) -> str:
    return _prefixed_id(raw, PRODUCT_ID, "product id", "prod_1A2b3C")


def checkout_session_id(raw: object) -> str:
    return _prefixed_id(raw, CHECKOUT_SESSION_ID, "checkout session id", "cs_test_a1B2c3")


def redirect_url(raw: object, field: str) -> str:
    """An absolute http(s) URL for a checkout redirect; `javascript:` and `data:` are refused."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInputError(field, f"Enter the {field} (an http or https address).")
    text = raw.strip()
    if len(text) > 2048:
        raise InvalidInputError(field, f"The {field} is longer than 2,048 characters.")
    if _has_control_or_space(text):
        raise InvalidInputError(field, f"The {field} can't contain spaces or line breaks.")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(field, f"The {field} must start with https:// (or http://) and name a host.")
    return text


def api_base_url(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInputError("api_url", "Set the Payments API URL, e.g. https://api.example.com/api/v1.")
    text = raw.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or _has_control_or_space(text):
        raise InvalidInputError("api_url", "The Payments API URL must be an http(s) address.")
    return text


def api_key(raw: object) -> str:
    if not isinstance(raw, str) or not API_KEY.match(raw.strip()):
        raise InvalidInputError("api_key", "The API key must look like bsk_live_ or bsk_test_ followed by "
                                           "32 hexadecimal characters.")
    return raw.strip()


def idempotency_key(raw: object) -> str:
    if not isinstance(raw, str) or not 0 < len(raw) <= 255 or not raw.isascii() or _has_control_or_space(raw):
        raise InvalidInputError("idempotency key", "An idempotency key is 1 to 255 printable ASCII characters.")
    return raw


def key_environment(api_key: str) -> str:
    """"live" or "test", from the key's prefix: what a person must be told before touching real money."""
    return "live" if api_key.startswith("bsk_live_") else "test"


def mask_checkout_session_id(session_id: str) -> str:
    """A checkout session id is the key to its checkout page: wherever one is shown or recorded, only its
    two ends are kept (enough to tell two apart)."""
    return f"{session_id[:12]}…{session_id[-6:]}" if len(session_id) > 24 else "cs_…"
