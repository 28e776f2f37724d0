"""The customer directory as people use it: search by whatever they have (every role that looks customers up),
export it (finance, admin; audited), forget one organization (admin; audited). services/directory/."""

from __future__ import annotations

import pandas as pd

from .. import exports
from ..auth.roles import Action, Actor
from ..directory import DirectoryEntry
from ..inputs import InputRefused, reason_text
from ..jobs.store import IMPORT
from ..payments import validation
from .core import DeskCore

DIRECTORY_COLUMNS = ["organization_id", "customer_id", "name", "email", "plan", "status", "mrr", "currency",
                     "cancel_at_period_end", "scheduled_plan", "period_end", "last_read_at", "last_read_by", "gone_at"]
SEARCH_RESULTS = 20  # matches a search lists


class DirectoryReads(DeskCore):
    """Searching, exporting and forgetting in the directory the console keeps."""

    def search_customers(self, actor: Actor, query: str, limit: int = SEARCH_RESULTS) -> list[DirectoryEntry]:
        """The best matches for an id (whole or its start), an e-mail or part of it, part of a name (misspelt or
        not), best first; newest-read first among equals. Reads the store only: opening one reads the API."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER)
        return self.directory.search(query, limit)

    def directory_size(self, actor: Actor) -> int:
        """How many organizations the directory holds."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER)
        return self.directory.size()

    def directory_export(self, actor: Actor, fmt: str = "csv") -> bytes:
        """The whole directory as CSV or Excel, formula-neutralised; every export is an audit row (if it can't be
        stored, no file)."""
        self._authorize(actor, Action.EXPORT_DIRECTORY, parameters={"format": fmt})
        if fmt not in ("csv", "xlsx"):
            raise InputRefused("download", "Download the directory as CSV or Excel.")
        rows = [{"organization_id": entry.organization_id, "customer_id": entry.customer_id, "name": entry.name,
                 "email": entry.email, "plan": entry.plan, "status": entry.status,
                 "mrr": None if entry.mrr_cents is None else entry.mrr_cents / 100, "currency": entry.currency,
                 "cancel_at_period_end": entry.cancel_at_period_end, "scheduled_plan": entry.scheduled_plan,
                 "period_end": entry.period_end, "last_read_at": entry.last_read_at,
                 "last_read_by": entry.last_read_by, "gone_at": entry.gone_at}
                for entry in self.directory.entries()]
        frame = pd.DataFrame(rows, columns=DIRECTORY_COLUMNS)
        self.audit.record(user=actor.username, role=actor.role.value, action="export directory",
                          organization_id=None, outcome="succeeded", subject=actor.subject, required=True,
                          parameters={"format": fmt, "rows": len(frame)})
        if fmt == "xlsx":
            for column in ("period_end", "last_read_at", "gone_at"):  # Excel has no time zones: UTC, plainly
                frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
            return exports.xlsx_bytes({"Directory": frame})
        return exports.csv_bytes(frame)

    def import_organizations(self, actor: Actor, organization_ids: list[str]) -> str:
        """Reads these organizations into the directory through a durable job (rate-limited, resumable, like a bulk
        lookup); audited. Returns the job's id."""
        self._authorize(actor, Action.MANAGE_DIRECTORY, parameters={"organizations": len(organization_ids)})
        ids = [validation.organization_id(organization_id) for organization_id in organization_ids]
        # Audited before it is done (the intent, then its outcome): no import without its row.
        audit_id = self.audit.begin(user=actor.username, role=actor.role.value, action="import organizations",
                                    organization_id=None, parameters={"organizations": len(ids)}, reason="",
                                    idempotency_key=None, subject=actor.subject)
        try:
            job_id = self.jobs.create(actor.username, actor.role.value, ids, kind=IMPORT)
        except Exception as problem:
            self.audit.complete(audit_id, "failed", getattr(problem, "message", "The job could not be created."))
            raise
        self.audit.complete(audit_id, "succeeded", result={"job": job_id})
        self.on_job_started()
        return job_id

    def forget_organization(self, actor: Actor, organization_id: str, reason: str) -> bool:
        """Removes one organization from the directory (it comes back only if the console reads it again),
        audited with the reason; whether it was there."""
        organization_id = validation.organization_id(organization_id)
        reason = reason_text(reason)
        self._authorize(actor, Action.MANAGE_DIRECTORY, organization_id, reason=reason)
        audit_id = self.audit.begin(user=actor.username, role=actor.role.value, action="forget organization",
                                    organization_id=organization_id, parameters={}, reason=reason,
                                    idempotency_key=None, subject=actor.subject)  # no forget without its row
        try:
            forgotten = self.directory.forget(organization_id)
        except Exception:
            self.audit.complete(audit_id, "failed", "The directory could not be changed.")
            raise
        self.audit.complete(audit_id, "succeeded", result={"wasThere": forgotten})
        return forgotten
