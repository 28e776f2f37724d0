"""Revenue over time as finance reads it (finance, admin): the figures for a range of days, the movement ledger
behind each number, exports of both (formula-safe, each an audit row); and one customer's MRR history (every role
that sees a customer's history). services/revenue/ computes; this checks who may and records the exports."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta

import pandas as pd

from .. import exports
from ..auth.roles import Action, Actor
from ..inputs import InputRefused
from ..revenue import (KINDS, LEDGER_PAGE, REASONS, RevenueOverview, ledger, needs_attention,
                       organization_history, overview)
from ..store import now
from .core import DeskCore

LONGEST_RANGE = timedelta(days=3 * 366)
LEDGER_EXPORT_ROWS = 2_000_000  # every movement of a month: a first month may count every organization


class RevenueReads(DeskCore):
    def revenue_overview(self, actor: Actor, start: date, end: date) -> RevenueOverview:
        """MRR, movements, rates and cohorts for the days from `start` to `end` (both included)."""
        self._authorize(actor, Action.SEE_REVENUE)
        _check_range(start, end)
        return overview(self.audit.engine, start, end)

    def revenue_ledger(self, actor: Actor, month: str, kinds: Sequence[str] | None, start: date, end: date,
                       page: int = 0) -> tuple[pd.DataFrame, int]:
        """A page of the movements of these kinds (None: every one) behind a month's figure, largest first, and
        how many there are."""
        self._authorize(actor, Action.SEE_REVENUE)
        _check_range(start, end)
        _check_ledger(month, kinds)
        return ledger(self.audit.engine, month, kinds, start, end, max(0, page), LEDGER_PAGE)

    def revenue_export(self, actor: Actor, what: str, fmt: str, start: date, end: date, month: str | None = None,
                       kinds: Sequence[str] | None = None) -> bytes:
        """The monthly table ("months") or a month's ledger ("ledger") as CSV or Excel, formula-neutralised; an
        audit row first (if it can't be stored, no file)."""
        self._authorize(actor, Action.SEE_REVENUE)
        _check_range(start, end)
        if fmt not in ("csv", "xlsx") or what not in ("months", "ledger") or (what == "ledger" and not month):
            raise InputRefused("download", "Download the monthly table or a month's ledger as CSV or Excel.")
        if what == "ledger":
            _check_ledger(month or "", kinds)
            frame, _ = ledger(self.audit.engine, month or "", kinds, start, end, 0, LEDGER_EXPORT_ROWS)
        else:
            frame = overview(self.audit.engine, start, end).months
        self.audit.record(user=actor.username, role=actor.role.value, action="export revenue", organization_id=None,
                          outcome="succeeded", subject=actor.subject, required=True,
                          parameters={"table": what, "format": fmt, "from": start.isoformat(), "to": end.isoformat(),
                                      "month": month, "movements": list(kinds) if kinds else "every",
                                      "rows": len(frame)})
        if fmt == "xlsx":
            if "day" in frame:
                frame = frame.assign(day=frame["day"].dt.date)
            return exports.xlsx_bytes({"Ledger" if what == "ledger" else "Months": frame})
        return exports.csv_bytes(frame)

    def attention_list(self, actor: Actor, reasons: Sequence[str] = REASONS) -> pd.DataFrame:
        """The accounts that need someone (past due, cancelling, downgrading, trials ending), most MRR at stake
        first; every role that looks customers up."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER)
        unknown = [reason for reason in reasons if reason not in REASONS]
        if unknown:
            raise InputRefused("reasons", "Choose among the reasons listed.")
        return needs_attention(self.audit.engine, now(), reasons)

    def attention_export(self, actor: Actor, fmt: str, reasons: Sequence[str] = REASONS) -> bytes:
        """The list as CSV or Excel, formula-neutralised; an audit row first."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER)
        if fmt not in ("csv", "xlsx"):
            raise InputRefused("download", "Download the list as CSV or Excel.")
        frame = self.attention_list(actor, reasons)
        self.audit.record(user=actor.username, role=actor.role.value, action="export needs attention",
                          organization_id=None, outcome="succeeded", subject=actor.subject, required=True,
                          parameters={"format": fmt, "reasons": list(reasons), "rows": len(frame)})
        if fmt == "xlsx":
            for column in ("date", "last_read_at"):  # Excel has no time zones: UTC, plainly
                frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
            return exports.xlsx_bytes({"Needs attention": frame})
        return exports.csv_bytes(frame)

    def customer_mrr_history(self, actor: Actor, organization_id: str, days: int = 365
                             ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """This organization's MRR by day over the last `days` and its movements."""
        self._authorize(actor, Action.VIEW_CUSTOMER_HISTORY, organization_id)
        return organization_history(self.audit.engine, organization_id, now().date() - timedelta(days=days))


def _check_ledger(month: str, kinds: Sequence[str] | None) -> None:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month or ""):
        raise InputRefused("month", "Choose a month of the table.")
    if kinds is not None and (not kinds or any(kind not in KINDS for kind in kinds)):
        raise InputRefused("movement", "Choose one of the movements listed.")


def _check_range(start: date, end: date) -> None:
    if start > end:
        raise InputRefused("dates", "The range must start on or before the day it ends.")
    if end - start > LONGEST_RANGE:
        raise InputRefused("dates", "Choose at most three years.")
