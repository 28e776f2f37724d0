"""The sandbox's HTTP app: the seven Payments API paths, the hosted pages, and test controls."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from typing import Any, Callable

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import billing, dialects, hosted, mailbox
from .errors import ApiError
from .faults import Fault, FaultRegistry
from .models import (CheckoutBody, ClockAdvance, CustomerInfo, Empty, ErrorEnvelope, FaultSpec, OrganizationBody,
                     ProfileBody,
                     Plan, PlanChangeBody, ProcessResult, SessionUrl, UpdateResult)
from .ratelimit import RateLimiter
from .seed import seed
from .settings import SandboxSettings
from .store import Store, iso, new_id

API_PREFIX = "/api/v1/payment"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 404, 422, 429, 500)
}


def _error_response(error: ApiError, request_id: str | None = None) -> JSONResponse:
    headers = dict(error.headers)
    if request_id:
        headers["X-Request-Id"] = request_id
    return JSONResponse(error.envelope(), status_code=error.status, headers=headers)


def create_app(settings: SandboxSettings) -> FastAPI:
    store = Store(settings.db_path)
    seed(store, settings.organizations)
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
    faults = FaultRegistry(settings.latency_ms, settings.error_rate)
    app = FastAPI(title="Payments API (Billing Desk sandbox)", version="1.0.0",
                  description="A local, stateful twin of the Payments API. See docs/payments-api.md. This "
                              "schema describes the default (camel) dialect; this sandbox answers in "
                              f"'{settings.dialect}'.")
    app.state.store, app.state.faults, app.state.settings = store, faults, settings
    # For tests and benchmarks: API calls seen, refused for rate, and answered 5xx by the sandbox's own failure
    # (injected faults are deliberate and not counted).
    stats = {"requests": 0, "rateLimited": 0, "serverErrors": 0}
    calls: dict[str, int] = {}  # API requests let through the rate limit, by path and query (each id's reads)

    def authorised(request: Request) -> str:
        key = request.headers.get("X-API-Key")
        if not key:
            raise ApiError(401, "missing_api_key", "Send your API key in the X-API-Key header.")
        if not secrets.compare_digest(key, settings.api_key):
            raise ApiError(401, "invalid_api_key", "The API key is not valid.")
        return key

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        request_id = new_id("req_", 16)
        request.state.request_id = request_id
        path = request.url.path
        if not (path.startswith("/api/") or path.startswith("/sandbox/control")):
            response = await call_next(request)
            response.headers["X-Request-Id"] = request_id
            return response
        try:
            key = authorised(request)
        except ApiError as error:
            return _error_response(error, request_id)
        if not path.startswith("/api/"):  # test controls are not rate limited
            response = await call_next(request)
            response.headers["X-Request-Id"] = request_id
            return response
        decision = limiter.take(hashlib.sha256(key.encode()).hexdigest())
        stats["requests"] += 1
        if not decision.allowed:
            stats["rateLimited"] += 1
            error = ApiError(429, "rate_limited", "Too many requests: slow down and retry after the delay given.",
                             {"retryAfter": decision.retry_after}, headers=decision.headers())
            return _error_response(error, request_id)
        called = f"{path}?{request.url.query}" if request.url.query else path
        calls[called] = calls.get(called, 0) + 1
        fault = None
        if path.startswith(API_PREFIX):
            if faults.base_latency_ms:
                await asyncio.sleep(faults.base_latency_ms / 1000)
            fault = faults.draw(path.rsplit("/", 1)[-1], request.method)
        if fault is not None and not fault.hang_after:
            await asyncio.sleep(fault.latency_ms / 1000 + fault.hang_seconds)
            if fault.status:
                error = ApiError(fault.status, fault.code or _default_code(fault.status),
                                 fault.message or "The Payments API failed (injected fault).", {"faultId": fault.id})
                headers = decision.headers()
                if fault.status == 429:
                    headers["Retry-After"] = "1"
                error.headers = headers
                return _error_response(error, request_id)
        try:
            response = await call_next(request)
        except Exception:  # answered 500 by the outermost handler
            stats["serverErrors"] += 1
            raise
        if response.status_code >= 500:
            stats["serverErrors"] += 1
        if fault is not None and fault.hang_after:
            await asyncio.sleep(fault.latency_ms / 1000 + fault.hang_seconds)
        if fault is not None and fault.malformed:
            response = Response('{"url": "http://', status_code=200, media_type="application/json")
        response.headers.update(decision.headers())
        response.headers["X-Request-Id"] = request_id
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error_response(error, getattr(request.state, "request_id", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return _error_response(_validation_error(error.errors()), getattr(request.state, "request_id", None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return _error_response(ApiError(error.status_code, code, str(error.detail)),
                               getattr(request.state, "request_id", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        return _error_response(ApiError(500, "internal_error", "The sandbox failed unexpectedly."),
                               getattr(request.state, "request_id", None))

    def answer(kind: str, body: Any) -> Any:
        """A read's answer in the sandbox's dialect; the default one is checked against its response model."""
        return body if settings.dialect == "camel" else JSONResponse(dialects.reshape(kind, body, settings.dialect))

    def run(request: Request, payload: dict[str, Any], kind: str,
            action: Callable[[Any], dict[str, Any]]) -> JSONResponse:
        """Runs a write atomically; with an Idempotency-Key, replays the first answer for the same request.
        The answer is stored as sent (in the sandbox's dialect); refusals keep the one error envelope."""
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
            raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable characters.")
        scope = hashlib.sha256(request.headers.get("X-API-Key", "").encode()).hexdigest()[:32]
        fingerprint = hashlib.sha256(json.dumps(
            [request.method, request.url.path, sorted(request.query_params.multi_items()), payload],
            sort_keys=True).encode()).hexdigest()
        with store.transaction() as conn:
            if key is not None:
                stored = store.stored_response(scope, key)
                if stored is not None:
                    if stored["fingerprint"] != fingerprint:
                        raise ApiError(400, "idempotency_key_reused",
                                       "This Idempotency-Key was used with a different request.",
                                       {"field": "Idempotency-Key"})
                    return JSONResponse(json.loads(stored["body"]), status_code=stored["status"],
                                        headers={"Idempotent-Replayed": "true"})
            conn.execute("SAVEPOINT operation")
            try:
                status, body = 200, dialects.reshape(kind, action(conn), settings.dialect)
                conn.execute("RELEASE operation")
            except ApiError as error:
                conn.execute("ROLLBACK TO operation")
                conn.execute("RELEASE operation")
                status, body = error.status, error.envelope()
            if key is not None:
                store.store_response(conn, scope, key, fingerprint, status, body)
        return JSONResponse(body, status_code=status)

    def public_base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # --- the seven operations ------------------------------------------------------------------------
    @app.get(f"{API_PREFIX}/subscription-plans", response_model=list[Plan], responses=ERRORS,
             tags=["payment"], summary="Plans with pricing, features and product details; `current` marks the "
                                       "organization's plan")
    def subscription_plans(organizationId: str = Query(..., min_length=1, max_length=100)) -> Any:
        return answer("plans", billing.plans(store, organizationId))

    @app.post(f"{API_PREFIX}/subscription-checkout", response_model=SessionUrl, responses=ERRORS,
              tags=["payment"], summary="Create a hosted checkout session")
    def subscription_checkout(body: CheckoutBody, request: Request) -> JSONResponse:
        idempotency_key = request.headers.get("Idempotency-Key")
        return run(request, body.model_dump(), "session", lambda conn: billing.create_checkout(
            store, conn, body.organizationId, body.productId, body.priceId, body.successUrl, body.cancelUrl,
            public_base(request), idempotency_key))

    @app.post(f"{API_PREFIX}/subscription-process", response_model=ProcessResult, responses=ERRORS,
              tags=["payment"], summary="Finish a subscription after checkout")
    def subscription_process(request: Request, secret: str = Query(..., min_length=1, max_length=200,
                                                                   pattern=r"^cs_[A-Za-z0-9_]+$")) -> JSONResponse:
        return run(request, {"secret": secret}, "process", lambda conn: billing.process_checkout(
            store, conn, secret, request.headers.get("Idempotency-Key")))

    @app.post(f"{API_PREFIX}/subscription-update", response_model=UpdateResult, responses=ERRORS,
              tags=["payment"], summary="Change plan: upgrades at once (prorated), downgrades at period end")
    def subscription_update(body: PlanChangeBody, request: Request) -> JSONResponse:
        return run(request, body.model_dump(), "update", lambda conn: billing.update_subscription(
            store, conn, body.organizationId, body.productId, body.priceId, request.headers.get("Idempotency-Key")))

    @app.post(f"{API_PREFIX}/subscription-cancel", response_model=Empty, responses=ERRORS,
              tags=["payment"], summary="Cancel at the end of the current period")
    def subscription_cancel(body: OrganizationBody, request: Request) -> JSONResponse:
        return run(request, body.model_dump(), "empty", lambda conn: billing.cancel_subscription(
            store, conn, body.organizationId, request.headers.get("Idempotency-Key")))

    @app.get(f"{API_PREFIX}/customer-info", response_model=CustomerInfo, responses=ERRORS,
             tags=["payment"], summary="The organization's billing customer and subscription")
    def customer_info(organizationId: str = Query(..., min_length=1, max_length=100)) -> Any:
        return answer("customer", billing.customer_info(store, organizationId))

    @app.post(f"{API_PREFIX}/customer-portal", response_model=SessionUrl, responses=ERRORS,
              tags=["payment"], summary="Create a hosted customer-portal session")
    def customer_portal(body: OrganizationBody, request: Request) -> JSONResponse:
        return run(request, body.model_dump(), "session", lambda conn: billing.create_portal(
            store, conn, body.organizationId, public_base(request), request.headers.get("Idempotency-Key")))

    # --- test controls (same key as the API) ----------------------------------------------------------
    @app.get("/sandbox/control/clock", tags=["sandbox"])
    def clock() -> dict[str, Any]:
        return {"now": iso(store.now()), "offsetSeconds": store.clock_offset().total_seconds()}

    @app.post("/sandbox/control/clock/advance", tags=["sandbox"], summary="Move the test clock forward")
    def clock_advance(body: ClockAdvance) -> dict[str, Any]:
        return billing.advance_clock(store, body.seconds + body.days * 86400)

    @app.post("/sandbox/control/faults", tags=["sandbox"], summary="Inject a fault")
    def add_fault(spec: FaultSpec) -> dict[str, Any]:
        fault = faults.add(Fault(path=spec.path, method=spec.method, status=spec.status, code=spec.code,
                                 message=spec.message, latency_ms=spec.latencyMs, hang_seconds=spec.hangSeconds,
                                 hang_after=spec.hangAfter, malformed=spec.malformed, rate=spec.rate,
                                 remaining=spec.count))
        return {"id": fault.id}

    @app.get("/sandbox/control/faults", tags=["sandbox"])
    def list_faults() -> list[dict[str, Any]]:
        return faults.list()

    @app.delete("/sandbox/control/faults", tags=["sandbox"])
    def clear_faults() -> dict[str, Any]:
        faults.clear()
        return {}

    @app.get("/sandbox/control/mutations", tags=["sandbox"], summary="Every write the sandbox performed")
    def mutations() -> list[dict[str, Any]]:
        return store.mutations()

    @app.get("/sandbox/control/stats", tags=["sandbox"],
             summary="Requests seen, refused for rate, and failed by the sandbox")
    def request_stats() -> dict[str, int]:
        return dict(stats)

    @app.get("/sandbox/control/calls", tags=["sandbox"],
             summary="API requests let through the rate limit, counted by path and query")
    def request_calls() -> dict[str, int]:
        return dict(calls)

    @app.get("/sandbox/control/organizations", tags=["sandbox"], summary="Seeded organizations and states")
    def organizations() -> list[dict[str, Any]]:
        # Each organization's latest subscription as the sandbox holds it (what tests compute expectations from).
        latest = ("(SELECT {} FROM subscriptions s WHERE s.organization_id = o.id "
                  "ORDER BY created_at DESC, rowid DESC LIMIT 1)")
        fields = {"canceling": "cancel_at_period_end", "price_id": "price_id",
                  "period_end": "current_period_end", "trial_end": "trial_end",
                  "scheduled_price_id": "scheduled_price_id"}
        rows = store.all(
            f"SELECT o.id, o.name, COALESCE({latest.format('status')}, 'none') AS status, "
            + ", ".join(f"{latest.format(column)} AS {name}" for name, column in fields.items())
            + ", (SELECT card_last4 IS NOT NULL FROM customers c WHERE c.organization_id = o.id) AS has_card "
            "FROM organizations o ORDER BY o.id")
        return [dict(row) for row in rows]

    @app.post("/sandbox/control/organizations/{organization_id}/profile", tags=["sandbox"],
              summary="Set what the customer typed: organization name, name, email, address")
    def set_profile(organization_id: str, body: ProfileBody) -> dict[str, str]:
        billing.set_profile(store, organization_id, body.organizationName, body.name, body.email, body.address)
        return {"organizationId": organization_id}

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/sandbox/mailbox", include_in_schema=False)
    def mailbox_page() -> HTMLResponse:
        return hosted.page("Mailbox", mailbox.page_body(store.all("SELECT * FROM mailbox ORDER BY id DESC LIMIT 200")))

    @app.get("/sandbox/control/mailbox", tags=["sandbox"], summary="Every e-mail the mailbox received, newest first")
    def mailbox_messages() -> list[dict[str, Any]]:
        return [dict(row) for row in store.all("SELECT * FROM mailbox ORDER BY id DESC")]

    hosted.register(app, store)
    return app


def _default_code(status: int) -> str:
    return {400: "bad_request", 401: "api_key_revoked", 404: "not_found", 422: "unprocessable",
            429: "rate_limited", 503: "service_unavailable"}.get(status, "internal_error")


def _validation_error(errors: Any) -> ApiError:
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    field = ".".join(location) or "body"
    kind = first.get("type", "")
    if kind == "json_invalid":
        return ApiError(400, "invalid_json", "The request body is not valid JSON.", {"field": "body"})
    if kind in ("model_attributes_type", "dict_type") and field == "body":
        return ApiError(400, "invalid_body", "The request body must be a JSON object.", {"field": "body"})
    if kind == "missing":
        return ApiError(400, "missing_field", f"{field} is required.", {"field": field})
    return ApiError(400, "invalid_field", f"{field} is invalid: {first.get('msg', 'bad value')}.",
                    {"field": field, "problems": [
                        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg")}
                        for e in errors]})
