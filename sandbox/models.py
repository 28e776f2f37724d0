"""Request and response bodies of the Payments API as the sandbox serves them (the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

ORGANIZATION_ID = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$",
                        description="The organization's id, e.g. org_abc123.")
PRICE_ID = Field(min_length=7, max_length=100, pattern=r"^price_[A-Za-z0-9]+$")
PRODUCT_ID = Field(min_length=6, max_length=100, pattern=r"^prod_[A-Za-z0-9]+$")
URL = Field(default=None, max_length=2048, pattern=r"^https?://[^\s]+$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OrganizationBody(_Body):
    organizationId: str = ORGANIZATION_ID


class PlanChangeBody(OrganizationBody):
    priceId: str = PRICE_ID
    productId: str = PRODUCT_ID


class CheckoutBody(PlanChangeBody):
    successUrl: Optional[str] = URL
    cancelUrl: Optional[str] = URL


class ProfileBody(BaseModel):
    """What a customer can type about themselves (a test control: the hostile-data tests set it)."""

    model_config = ConfigDict(extra="forbid")
    organizationName: str | None = Field(None, max_length=10_000)
    name: str | None = Field(None, max_length=10_000)
    email: str | None = Field(None, max_length=10_000)
    address: dict[str, str | None] | None = None


class ErrorEnvelope(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class Price(BaseModel):
    priceId: str
    productId: str
    interval: Literal["month", "year"]
    intervalCount: int
    unitAmount: int = Field(description="Cents")
    currency: str


class Plan(BaseModel):
    productId: str
    name: str
    description: str
    tier: int
    features: list[str]
    credits: Optional[int]
    overageRate: Optional[float] = Field(description="Dollars per credit beyond the allowance")
    seats: Optional[int]
    trialDays: int
    custom: bool
    current: bool = Field(description="The organization's current (live) plan")
    prices: list[Price]


class ScheduledChange(BaseModel):
    productId: str
    priceId: str
    planName: str
    interval: str
    unitAmount: int
    effectiveAt: str


class Subscription(BaseModel):
    id: str
    status: Literal["trialing", "active", "past_due", "canceled", "incomplete"]
    productId: str
    priceId: str
    planName: str
    interval: str
    unitAmount: int
    currency: str
    currentPeriodStart: str
    currentPeriodEnd: str
    cancelAtPeriodEnd: bool
    canceledAt: Optional[str]
    trialEnd: Optional[str]
    scheduledChange: Optional[ScheduledChange]
    createdAt: str


class Address(BaseModel):
    line1: Optional[str] = None
    line2: Optional[str] = None
    city: Optional[str] = None
    state: Optional[str] = None
    postalCode: Optional[str] = None
    country: Optional[str] = None


class CustomerInfo(BaseModel):
    organizationId: str
    organizationName: str
    customerId: Optional[str]
    name: Optional[str]
    email: Optional[str]
    address: Optional[Address]
    defaultCardBrand: Optional[str]
    defaultCardLast4: Optional[str]
    activeProductId: Optional[str]
    subscriptionStatus: str
    subscription: Optional[Subscription]


class SessionUrl(BaseModel):
    url: str
    expiresAt: str


class ProcessResult(BaseModel):
    organizationId: str
    checkoutSessionId: str
    subscriptionId: str
    status: str
    alreadyProcessed: bool
    subscription: Subscription


class UpdateResult(BaseModel):
    organizationId: str
    subscriptionId: str
    change: Literal["upgrade", "downgrade"]
    effective: Literal["immediately", "period_end"]
    effectiveAt: str
    prorationAmount: int = Field(description="Cents charged now (0 for a downgrade)")
    currency: str
    subscription: Subscription


class Empty(BaseModel):
    pass


class ClockAdvance(BaseModel):
    seconds: float = Field(default=0, ge=0)
    days: float = Field(default=0, ge=0)


class FaultSpec(BaseModel):
    path: str = "*"
    method: Optional[str] = None
    status: Optional[int] = Field(default=None, ge=400, le=599)
    code: Optional[str] = None
    message: Optional[str] = None
    latencyMs: int = Field(default=0, ge=0)
    hangSeconds: float = Field(default=0, ge=0)
    hangAfter: bool = False
    malformed: bool = False
    rate: float = Field(default=1.0, ge=0, le=1)
    count: Optional[int] = Field(default=None, ge=1)
