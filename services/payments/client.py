"""The Payments API client: one object, one pooled session, typed results, a clear error for every failure.

Modelled on stripe-python and openai-python: `(connect, read)` timeouts; GETs (and POSTs, which always carry
an Idempotency-Key, so a retry can't repeat a write) retried with backoff on connection errors, 429 and 5xx,
honouring `Retry-After` up to a cap; self-pacing under `X-RateLimit-*`; the key masked in `repr` and absent
from every message.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from typing import Any, Mapping

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from . import validation
from .errors import (ApiConnectionError, ApiTimeoutError, PaymentsError, RateLimitError,
                              UnexpectedResponseError, scrub_api_text, status_error_class)
from .models import (CustomerInfo, PlanCatalog, PlanChangeResult, ProcessResult, SessionLink,
                              parse_customer, parse_plan_change, parse_plans, parse_process, parse_session_link)
from .rate_pacer import RatePacer

log = logging.getLogger("billing_desk.payments")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SECRET_IN_URL = re.compile(r"(secret=)[^&\s'\"]+")


class RedactSecrets(logging.Filter):
    """urllib3 logs each retried URL; a process call's URL carries the checkout secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "secret=" in message:
            record.msg, record.args = _SECRET_IN_URL.sub(r"\1[redacted]", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactSecrets())


def mask_key(api_key: str) -> str:
    prefix = api_key[:9] if api_key.startswith(("bsk_live_", "bsk_test_")) else ""
    return f"{prefix}…{api_key[-4:]}" if len(api_key) > 12 else "…"


def new_idempotency_key() -> str:
    return f"bd-{uuid.uuid4()}"


class PaymentsClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: tuple[float, float] = (3.05, 10.0),
                 max_retries: int = 2, retry_after_cap: int = 20, backoff_factor: float = 0.25,
                 pool_size: int = 16, pacer: RatePacer | None = None) -> None:
        self.base_url = validation.api_base_url(base_url)
        self._api_key = validation.api_key(api_key)
        self.timeout = timeout
        self.pacer = pacer or RatePacer()
        self.session = requests.Session()
        retry = Retry(total=max_retries, connect=max_retries, read=min(1, max_retries), status=max_retries,
                      other=0, redirect=0, allowed_methods=frozenset({"GET", "POST"}),
                      status_forcelist=RETRY_STATUSES, backoff_factor=backoff_factor, backoff_max=8,
                      respect_retry_after_header=True, retry_after_max=retry_after_cap, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"X-API-Key": self._api_key, "Accept": "application/json",
                                     "User-Agent": "billing-desk/1.0"})

    def __repr__(self) -> str:
        return f"PaymentsClient(base_url={self.base_url!r}, api_key={mask_key(self._api_key)!r})"

    def in_background(self) -> contextlib.AbstractContextManager[None]:
        """This thread's requests, until the block ends, are background work: they leave the key's rate to
        people's requests first (services/payments/rate_pacer.py)."""
        return self.pacer.in_background()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "PaymentsClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the seven operations -------------------------------------------------------------------------
    def list_plans(self, organization_id: str) -> PlanCatalog:
        organization_id = validation.organization_id(organization_id)
        data = self._request("GET", "/payment/subscription-plans", "list plans",
                             params={"organizationId": organization_id})
        return parse_plans(data, organization_id)

    def get_customer(self, organization_id: str) -> CustomerInfo:
        organization_id = validation.organization_id(organization_id)
        data = self._request("GET", "/payment/customer-info", "look up customer",
                             params={"organizationId": organization_id})
        return parse_customer(data, organization_id)

    def create_checkout(self, organization_id: str, price_id: str, product_id: str, success_url: str | None = None,
                        cancel_url: str | None = None, *, idempotency_key: str | None = None) -> SessionLink:
        body: dict[str, Any] = {"organizationId": validation.organization_id(organization_id),
                                "priceId": validation.price_id(price_id),
                                "productId": validation.product_id(product_id)}
        if success_url is not None:
            body["successUrl"] = validation.redirect_url(success_url, "success URL")
        if cancel_url is not None:
            body["cancelUrl"] = validation.redirect_url(cancel_url, "cancel URL")
        data = self._request("POST", "/payment/subscription-checkout", "create checkout link", json=body,
                             idempotency_key=idempotency_key)
        return parse_session_link(data, "create checkout link")

    def process_checkout(self, checkout_session_id: str, *, idempotency_key: str | None = None) -> ProcessResult:
        secret = validation.checkout_session_id(checkout_session_id)
        data = self._request("POST", "/payment/subscription-process", "process checkout", params={"secret": secret},
                             idempotency_key=idempotency_key)
        return parse_process(data)

    def update_subscription(self, organization_id: str, price_id: str, product_id: str, *,
                            idempotency_key: str | None = None) -> PlanChangeResult:
        body = {"organizationId": validation.organization_id(organization_id),
                "priceId": validation.price_id(price_id), "productId": validation.product_id(product_id)}
        data = self._request("POST", "/payment/subscription-update", "change plan", json=body,
                             idempotency_key=idempotency_key)
        return parse_plan_change(data)

    def cancel_subscription(self, organization_id: str, *, idempotency_key: str | None = None) -> None:
        body = {"organizationId": validation.organization_id(organization_id)}
        self._request("POST", "/payment/subscription-cancel", "cancel subscription", json=body,
                      idempotency_key=idempotency_key)

    def create_portal(self, organization_id: str, *, idempotency_key: str | None = None) -> SessionLink:
        body = {"organizationId": validation.organization_id(organization_id)}
        data = self._request("POST", "/payment/customer-portal", "create portal link", json=body,
                             idempotency_key=idempotency_key)
        return parse_session_link(data, "create portal link")

    # --- transport ----------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, operation: str, *, params: Mapping[str, str] | None = None,
                 json: Any = None, idempotency_key: str | None = None) -> Any:
        headers = {}
        if method == "POST":
            headers["Idempotency-Key"] = validation.idempotency_key(idempotency_key or new_idempotency_key())
        self.pacer.wait()
        try:
            response = self.session.request(method, self.base_url + path, params=params, json=json,
                                            headers=headers, timeout=self.timeout)
            self.pacer.observe(response.headers)  # while this request still counts as in flight
        except requests.exceptions.ConnectTimeout:
            # `from None`: requests' own message holds the URL, and a process call's URL holds its secret.
            raise ApiConnectionError(f"Could not connect to the Payments API in time ({operation}).",
                                     code="connect_timeout", operation=operation) from None
        except requests.exceptions.Timeout:
            raise ApiTimeoutError(f"The Payments API did not answer in time ({operation}).", code="timeout",
                                  operation=operation) from None
        except requests.exceptions.ConnectionError as problem:
            if _read_timed_out(problem):  # read timeouts that used up the retries arrive wrapped
                raise ApiTimeoutError(f"The Payments API did not answer in time ({operation}).", code="timeout",
                                      operation=operation) from None
            # Refused: nothing was sent. Broken mid-request: the API may have acted on it.
            code = "connection_refused" if _refused(problem) else "connection_broken"
            raise ApiConnectionError(f"Could not reach the Payments API ({operation}).", code=code,
                                     operation=operation) from None
        except requests.exceptions.RequestException as problem:
            raise ApiConnectionError(f"Could not reach the Payments API ({operation}): {type(problem).__name__}.",
                                     code="connection_error", operation=operation) from None
        finally:
            self.pacer.release()
        request_id = response.headers.get("X-Request-Id") or response.headers.get("Request-Id")
        log.info("%s %s -> %s (%s)", method, path, response.status_code, request_id,
                 extra={"request_id": request_id, "method": method, "endpoint": path,
                        "status": response.status_code,
                        "elapsed_ms": round(response.elapsed.total_seconds() * 1000, 1)})
        if response.status_code >= 400:
            raise self._status_error(response, operation, request_id)
        try:
            return response.json()
        except ValueError:
            raise UnexpectedResponseError(f"The Payments API answered {operation} with a body that is not JSON.",
                                          code="malformed_json", request_id=request_id,
                                          operation=operation) from None

    def _status_error(self, response: requests.Response, operation: str, request_id: str | None) -> PaymentsError:
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            envelope = {}
        # The API's words are scrubbed here, where they enter the console: whatever keeps or shows an error
        # (the audit row, the screen, the log) never sees a link, key or secret the API put in its message.
        code = scrub_api_text(envelope["code"])[:64] if isinstance(envelope.get("code"), str) else None
        message = scrub_api_text(envelope["message"]) if isinstance(envelope.get("message"), str) else None
        details = envelope.get("details") if isinstance(envelope.get("details"), dict) else {}
        status = response.status_code
        message = message or f"The Payments API answered {operation} with HTTP {status}."
        error_class = status_error_class(status)
        if error_class is RateLimitError:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            self.pacer.rate_limited(retry_after)
            return RateLimitError(message, status_code=status, code=code or "rate_limited", request_id=request_id,
                                  details=details, operation=operation, retry_after=retry_after)
        return error_class(message, status_code=status, code=code, request_id=request_id, details=details,
                           operation=operation)


def _refused(problem: requests.exceptions.ConnectionError) -> bool:
    inner = problem.args[0] if problem.args else None
    reason = inner.reason if isinstance(inner, MaxRetryError) else inner
    return isinstance(reason, NewConnectionError)


def _read_timed_out(problem: requests.exceptions.ConnectionError) -> bool:
    inner = problem.args[0] if problem.args else None
    return isinstance(inner, MaxRetryError) and isinstance(inner.reason, ReadTimeoutError)


def _retry_after_seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
