"""One idempotency key per intended write, kept in the person's session.

The key is derived once for an intent (the action and its exact parameters) and reused until that intent is
finished, so a rerun, a double click or a retry after a lost answer sends the same key and the API performs
the write once. Finishing the intent retires the key: the next, deliberate, identical write gets a new one.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from .payments.client import new_idempotency_key

_STORE_KEY = "_intent_keys"


def _signature(action: str, parameters: dict[str, Any]) -> str:
    return json.dumps([action, parameters], sort_keys=True, default=str)


def key_for(session: MutableMapping[str, Any], action: str, parameters: dict[str, Any]) -> str:
    keys = session.setdefault(_STORE_KEY, {})
    signature = _signature(action, parameters)
    if signature not in keys:
        keys[signature] = new_idempotency_key()
    return keys[signature]


def retire(session: MutableMapping[str, Any], action: str, parameters: dict[str, Any]) -> None:
    session.get(_STORE_KEY, {}).pop(_signature(action, parameters), None)
