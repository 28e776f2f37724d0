"""The client's error tree, after stripe-python and openai-python.

PaymentsError
├── InvalidInputError            input refused before any request (names the field)
├── ApiConnectionError           the API could not be reached
│   └── ApiTimeoutError          it did not answer in time
├── UnexpectedResponseError      it answered with a body the console cannot use
└── ApiStatusError               it answered with an error status
    ├── BadRequestError 400, AuthenticationError 401, NotFoundError 404,
    ├── UnprocessableError 422, RateLimitError 429, ServerError 5xx

Every error carries `code`, `message`, `request_id` and `user_message`, a one-line sentence a support person
can act on. None of them ever holds the API key or a checkout/portal URL.
"""

from __future__ import annotations

import re
from typing import Any

# What an API's error text must not carry into a log, an audit row or a screen: web addresses (a checkout or
# portal link is a bearer capability), API keys, prefixed ids other than the organization's (a Stripe-worded
# "No such checkout.session: cs_live_…" hands out the session a secret processes), and long unprefixed tokens
# with digits (secrets, hashes). The organization id stays: the console names it everywhere anyway.
_ADDRESS = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.)\S+", re.IGNORECASE)
_API_KEY = re.compile(r"\bbsk_(?:live|test)_\w+", re.IGNORECASE)
_PREFIXED_ID = re.compile(r"\b(?!org_)[A-Za-z]{2,12}_(?:(?:live|test)_)?(?=\w*\d)\w{6,}")
_LONG_TOKEN = re.compile(r"(?<![\w-])(?=[\w-]*\d)[\w-]{24,}")
MAX_API_TEXT = 300


def scrub_api_text(text: str) -> str:
    """The API's own words with anything address-, key-, id- or secret-shaped replaced by what it was, cut to
    MAX_API_TEXT characters: safe to store in the audit log and to show."""
    text = _ADDRESS.sub("[link removed]", text)
    text = _API_KEY.sub("[key removed]", text)
    text = _PREFIXED_ID.sub("[id removed]", text)
    text = _LONG_TOKEN.sub("[removed]", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_API_TEXT else text[:MAX_API_TEXT - 1] + "…"


class PaymentsError(Exception):
    default_user_message = "The Payments API request failed."

    def __init__(self, message: str, *, code: str | None = None, request_id: str | None = None,
                 operation: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.operation = operation

    @property
    def user_message(self) -> str:
        return self.default_user_message

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"(code: {self.code})")
        if self.request_id:
            parts.append(f"[request {self.request_id}]")
        return " ".join(parts)


class InvalidInputError(PaymentsError, ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, code="invalid_input")
        self.field = field

    @property
    def user_message(self) -> str:
        return self.message


class ApiConnectionError(PaymentsError):
    default_user_message = "Couldn't reach the Payments API. Check the network or the API URL, then try again."


class ApiTimeoutError(ApiConnectionError):
    default_user_message = "The Payments API didn't answer in time. Try again in a moment."


class UnexpectedResponseError(PaymentsError):
    default_user_message = ("The Payments API sent a response Billing Desk can't read. Try again; if it "
                            "persists, tell the engineering team.")


class ApiStatusError(PaymentsError):
    status_code: int = 0
    default_user_message = "The Payments API refused the request."

    def __init__(self, message: str, *, status_code: int, code: str | None = None, request_id: str | None = None,
                 details: dict[str, Any] | None = None, operation: str | None = None) -> None:
        super().__init__(message, code=code, request_id=request_id, operation=operation)
        self.status_code = status_code
        self.details = details or {}

    @property
    def user_message(self) -> str:
        # The API's own message is written for people (e.g. "This organization has no active subscription").
        return self.message or self.default_user_message


class BadRequestError(ApiStatusError):
    default_user_message = "The Payments API rejected the request as malformed."


class AuthenticationError(ApiStatusError):
    default_user_message = ("The Payments API refused Billing Desk's API key. An administrator must check "
                            "the configured key.")

    @property
    def user_message(self) -> str:
        return self.default_user_message


class NotFoundError(ApiStatusError):
    default_user_message = "Not found. Check the id and try again."


class UnprocessableError(ApiStatusError):
    default_user_message = "The Payments API could not do this in the current state."


class RateLimitError(ApiStatusError):
    default_user_message = "The Payments API is rate-limiting Billing Desk. Wait a minute and try again."

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after

    @property
    def user_message(self) -> str:
        return self.default_user_message


class ServerError(ApiStatusError):
    default_user_message = "The Payments API had an internal error. Try again in a few minutes."

    @property
    def user_message(self) -> str:
        return self.default_user_message


_BY_STATUS: dict[int, type[ApiStatusError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: AuthenticationError, 404: NotFoundError,
    409: UnprocessableError, 422: UnprocessableError, 429: RateLimitError,
}


def status_error_class(status_code: int) -> type[ApiStatusError]:
    if status_code >= 500:
        return ServerError
    return _BY_STATUS.get(status_code, ApiStatusError)
