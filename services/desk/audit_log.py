"""The audit log as the Audit page reads it (READ_AUDIT_LOG): pages, counts, choices, exports, the chain's status."""

from __future__ import annotations

from typing import BinaryIO

import pandas as pd

from .. import exports
from ..audit import PAGE_SIZE, AuditCursor, AuditFilter, AuditPage, AuditSummary, ChainStatus, reading
from ..auth.roles import Action, Actor
from .core import DeskCore


class AuditLogReads(DeskCore):
    """Reading the audit log through the role check."""

    def audit_events(self, actor: Actor, filters: AuditFilter) -> pd.DataFrame:
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            return self.audit.events(filters)

    def audit_choices(self, actor: Actor, column: str) -> list[str]:
        """The values a filter can offer (users, actions)."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            return self.audit.distinct(column)

    def audit_chain_status(self, actor: Actor) -> ChainStatus:
        """Whether the audit log's hash chain verifies (rows added since the last check are hashed)."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            return self.audit.chain_status()

    def audit_page(self, actor: Actor, filters: AuditFilter, after: AuditCursor | None = None,
                   size: int = PAGE_SIZE) -> tuple[AuditSummary, AuditPage]:
        """How many events match (and the newest), and one page of them, newest first, older than `after`
        (None: the first page). The page goes no newer than the counted newest, so the two agree."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            return self.audit.summary_and_page(filters, after, size)

    def audit_export(self, actor: Actor, filters: AuditFilter, upto: AuditCursor | None = None, *,
                     zip_as: str | None = None) -> BinaryIO:
        """Every matching event (none newer than `upto`: what the page counted) as a formula-safe CSV, written
        in batches to a temporary file, rewound (services/audit/ `export`). `zip_as`: the CSV's name inside
        a zip archive, returned instead (exports.ZIP_ABOVE_ROWS says when). The caller closes it."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading():
            exported = self.audit.export_file(filters, upto)
        if zip_as is None:
            return exported
        with exported:
            return exports.zipped(exported, zip_as)

    def audit_csv(self, actor: Actor, filters: AuditFilter) -> bytes:
        """Every matching event as a formula-safe CSV (services/exports.py), uncapped."""
        self._authorize(actor, Action.READ_AUDIT_LOG)
        with reading(), self.audit.export_file(filters) as exported:
            return exported.read()
