"""The accounts that need a person today, from the directory as last read: past due, cancelling at period end, a
downgrade scheduled, a trial ending within 14 days. Each once, with every reason it has, the MRR at stake and the
date that matters; the most money at stake first.

MRR at stake: past due or cancelling, its whole MRR; a scheduled downgrade, the MRR it loses (current minus what
the change leaves; a scheduled change that doesn't lower MRR is not listed); a trial, none (it pays nothing yet and
the plan it would choose is not known: the date is what matters).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine

from ..directory import directory_organizations as directory
from ..store import utc

PAST_DUE, CANCELLING, DOWNGRADE, TRIAL_ENDING = "Past due", "Cancelling at period end", "Downgrade scheduled", \
    "Trial ending"
REASONS = (PAST_DUE, CANCELLING, DOWNGRADE, TRIAL_ENDING)
TRIAL_WINDOW = timedelta(days=14)
ATTENTION_COLUMNS = ["organization_id", "name", "email", "plan", "reasons", "at_stake", "date", "scheduled_plan",
                     "status", "last_read_at"]


def needs_attention(engine: Engine, moment: datetime, reasons: Sequence[str] = REASONS) -> pd.DataFrame:
    """Every organization with one of `reasons`, most MRR at stake first, then the nearest date."""
    wanted = set(reasons)
    conditions = []
    if PAST_DUE in wanted:
        conditions.append(directory.c.status == "past_due")
    if CANCELLING in wanted:
        conditions.append(directory.c.cancel_at_period_end.is_(True))
    if DOWNGRADE in wanted:
        conditions.append(directory.c.scheduled_plan.is_not(None))
    if TRIAL_ENDING in wanted:
        conditions.append(and_(directory.c.status == "trialing", directory.c.trial_end <= moment + TRIAL_WINDOW))
    if not conditions:
        return pd.DataFrame(columns=ATTENTION_COLUMNS)
    with engine.connect() as conn:
        rows = conn.execute(select(directory).where(directory.c.gone_at.is_(None), or_(*conditions))).all()
    records = []
    for row in rows:
        mrr = row.mrr_cents or 0
        found, at_stake, when = [], 0, None
        if row.status == "past_due":
            found.append(PAST_DUE)
            at_stake, when = mrr, row.period_end
        if row.cancel_at_period_end:
            found.append(CANCELLING)
            at_stake, when = mrr, row.period_end
        lowers = row.scheduled_mrr_cents is None or row.scheduled_mrr_cents < mrr  # an upgrade needs nobody
        if row.scheduled_plan is not None and not row.cancel_at_period_end and lowers:
            found.append(DOWNGRADE)
            lost = mrr - row.scheduled_mrr_cents if row.scheduled_mrr_cents is not None else 0
            at_stake, when = max(at_stake, lost, 0), when or row.scheduled_at
        if row.status == "trialing" and row.trial_end is not None and utc(row.trial_end) <= moment + TRIAL_WINDOW:
            found.append(TRIAL_ENDING)
            when = row.trial_end
        found = [reason for reason in found if reason in wanted]
        if not found:
            continue
        records.append({"organization_id": row.organization_id, "name": row.name, "email": row.email,
                        "plan": row.plan, "reasons": ", ".join(found), "at_stake": at_stake / 100,
                        "date": utc(when) if when else None, "scheduled_plan": row.scheduled_plan,
                        "status": row.status, "last_read_at": utc(row.last_read_at)})
    frame = pd.DataFrame(records, columns=ATTENTION_COLUMNS)
    if frame.empty:
        return frame
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    frame["last_read_at"] = pd.to_datetime(frame["last_read_at"], utc=True)
    return frame.sort_values(["at_stake", "date"], ascending=[False, True], na_position="last").reset_index(drop=True)
