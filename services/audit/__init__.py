"""The audit log: every write attempt, who made it, why, and how it ended; append-only and hash-chained.

| module        | what it holds                                                                               |
|---------------|---------------------------------------------------------------------------------------------|
| `log.py`      | `AuditLog`: the writes (an intent before each API call, its outcome after, settling an unknown one) |
| `reads.py`    | the reads `AuditLog` offers: the Audit page's pages and counts, the export, unsettled writes |
| `filters.py`  | `AuditFilter`, `AuditCursor` and the conditions a read puts on the `audit_events` view      |
| `lines.py`    | what a read hands back (`AuditPage`, `AuditSummary`), the errors a page shows               |
| `chain.py`    | the rows (`audit_rows`), their HMAC hash chain, the append lock, the `audit_events` view    |
| `keys.py`     | the audit key the hashes are HMACs under, and the older ones still verified                 |
| `verify.py`   | re-hashing the chain: whole, or from the last verified row (the checkpoint)                 |
| `watch.py`    | the scheduled full verification (one process among all), its witness, the page's status     |
| `command.py`  | `python -m services.audit verify [--witness FILE] | cut-over`                               |

The intent is stored *before* the API call (outcome "pending"); if it can't be stored, the write does not
happen. Nothing is ever updated: how the write ended is a new row linked to the intent. Rows are stored in the
console's database (services/store/).
"""

from __future__ import annotations

from .chain import audit_events, audit_rows
from .filters import AuditCursor, AuditFilter
from .keys import AuditKeyError, AuditKeys
from .lines import (AUDIT_COLUMNS, OUTCOMES, PAGE_SIZE, SETTLED_PREFIX, AuditPage, AuditSummary, AuditUnavailable,
                    AuditUnreadable, approval_request_named, reading)
from .log import AuditLog
from .watch import ChainStatus

__all__ = ["AUDIT_COLUMNS", "OUTCOMES", "PAGE_SIZE", "SETTLED_PREFIX", "AuditCursor", "AuditFilter", "AuditKeyError",
           "AuditKeys", "AuditLog", "AuditPage", "AuditSummary", "AuditUnavailable", "AuditUnreadable", "ChainStatus",
           "approval_request_named", "audit_events", "audit_rows", "reading"]
