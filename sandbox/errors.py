"""The error envelope the Payments API answers with: `{code, message, details}`."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised anywhere in the sandbox to answer with the API's JSON error envelope."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


def not_found_organization(organization_id: str) -> ApiError:
    return ApiError(404, "organization_not_found", f"No organization with id '{organization_id}'.",
                    {"field": "organizationId"})
