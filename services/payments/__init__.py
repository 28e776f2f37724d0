"""The Payments API client. It knows nothing of the console: give it a base URL and a key, get typed results.

    from services.payments import PaymentsClient
    with PaymentsClient("https://api.example.com/api/v1", "bsk_test_…") as client:
        customer = client.get_customer("org_abc123")

The small public face is here; `client`, `models`, `errors`, `rate_pacer` and `validation` are the parts.
"""

from .client import PaymentsClient, mask_key, new_idempotency_key
from .errors import (ApiConnectionError, ApiStatusError, ApiTimeoutError, AuthenticationError, BadRequestError,
                     InvalidInputError, NotFoundError, PaymentsError, RateLimitError, ServerError,
                     UnexpectedResponseError, UnprocessableError)
from .models import (Address, CustomerInfo, Plan, PlanCatalog, PlanChangeResult, Price, ProcessResult,
                     ScheduledChange, SessionLink, Subscription)
from .rate_pacer import RatePacer

__all__ = [
    "PaymentsClient", "mask_key", "new_idempotency_key", "RatePacer",
    "PaymentsError", "InvalidInputError", "ApiConnectionError", "ApiTimeoutError", "UnexpectedResponseError",
    "ApiStatusError", "BadRequestError", "AuthenticationError", "NotFoundError", "UnprocessableError",
    "RateLimitError", "ServerError",
    "Address", "CustomerInfo", "Plan", "PlanCatalog", "PlanChangeResult", "Price", "ProcessResult",
    "ScheduledChange", "SessionLink", "Subscription",
]
