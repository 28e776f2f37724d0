"""A customer's history (every console action on it, the bulk lookups that included it) and internal notes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd

from ..audit import AuditCursor, AuditFilter, AuditPage, AuditSummary, approval_request_named, reading
from ..auth.roles import Action, Actor, allowed
from ..inputs import InputRefused, note_text
from ..payments import validation
from .core import DeskCore


NOTES_PER_HOUR = 20  # notes one person may add in an hour (their length: inputs.py)
BULK_LOOKUPS_SHOWN = 100  # a customer's history lists the newest this many bulk lookups that included them
HISTORY_COLUMNS = ["at", "user", "action", "reason", "outcome", "request", "request_id"]


class History(DeskCore):
    """A customer's history and notes."""

    def customer_history(self, actor: Actor, organization_id: str, after: AuditCursor | None = None,
                         size: int = 20) -> tuple[AuditSummary, AuditPage]:
        """Every console action on this organization (writes, refusals, approval steps, notes), newest first,
        a page at a time."""
        organization_id = validation.organization_id(organization_id)
        self._authorize(actor, Action.VIEW_CUSTOMER_HISTORY, organization_id)
        with reading():
            summary, page = self.audit.summary_and_page(AuditFilter(organization=organization_id), after, size)
        # Only what a customer's history shows: the audit log's other columns (the identity provider's subject,
        # parameters, errors) are for those who may read the log, not for every role that sees the customer.
        frame = page.frame.assign(request=page.frame.parameters.map(approval_request_named))[HISTORY_COLUMNS]
        return summary, AuditPage(frame, page.next)

    def customer_bulk_lookups(self, actor: Actor, organization_id: str) -> pd.DataFrame:
        """The newest `BULK_LOOKUPS_SHOWN` bulk lookups that included this organization (purged ones too: their
        results are gone, not the fact), and their downloads; support sees its own."""
        organization_id = validation.organization_id(organization_id)
        self._authorize(actor, Action.VIEW_CUSTOMER_HISTORY, organization_id)
        with reading():
            everyone = allowed(actor.role, Action.SEE_ALL_BULK_JOBS) or allowed(actor.role, Action.READ_AUDIT_LOG)
            jobs = self.jobs.jobs_including(organization_id, None if everyone else actor.username,
                                            BULK_LOOKUPS_SHOWN)
            downloads = self.audit.job_downloads([job.id for job in jobs])
        rows = [{"at": job.created_at, "user": job.username, "job": job.id,
                 "what": f"bulk lookup of {job.total:,} organizations"
                         + (f" (results purged {job.purged_at:%d %b %Y})" if job.purged_at else "")} for job in jobs]
        for line in downloads.itertuples():
            parameters = json.loads(line.parameters or "{}")
            rows.append({"at": line.at, "user": line.user,
                         "what": f"downloaded its {parameters.get('what', 'results')} "
                                 f"({str(parameters.get('format', 'csv')).upper()}, {parameters.get('rows', 0):,} rows)",
                         "job": parameters.get("job")})
        frame = pd.DataFrame(rows, columns=["at", "user", "what", "job"])
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        return frame.sort_values("at", ascending=False, kind="stable").reset_index(drop=True)

    def add_note(self, actor: Actor, organization_id: str, note: str) -> None:
        """An internal note on the customer: an audit row (who, when, the text), so it can't be edited, only
        followed by a newer one."""
        organization_id = validation.organization_id(organization_id)
        text = note_text(note)
        self._authorize(actor, Action.ADD_NOTE, organization_id)
        # A customer's history is read by people: one person's flood of notes would bury everyone else's.
        if self.audit.count_since(actor.username, "add note", datetime.now(timezone.utc) - self.note_window) >= \
                NOTES_PER_HOUR:
            raise InputRefused("note", f"You've added {NOTES_PER_HOUR} notes in the last hour, the most one person "
                                       "may; your text is kept here, so add it a little later.")
        self.audit.record(user=actor.username, role=actor.role.value, action="add note",
                          organization_id=organization_id, outcome="succeeded", reason=text,
                          subject=actor.subject, required=True)
