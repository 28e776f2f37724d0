"""The customer directory: every organization the console has read, so staff can find a customer by what they
have (an id, an e-mail, part of a name). The Payments API has no search; this is the console's own record.

| module       | what it holds                                                                           |
|--------------|-----------------------------------------------------------------------------------------|
| `table.py`   | `directory_organizations` and what a row keeps (no address, no card data), `fold`       |
| `search.py`  | exact ids, then text containing the query, then similar names (trigram indexes)         |
| `store.py`   | `Directory`: noting each read, marking the gone, search, forget, the retention purge    |
| `refresh.py` | the daily refresh, queued by one process among all (`directory_refreshes`)              |

Every successful customer read the console makes (a lookup, a write's re-read, an approval's re-read, a bulk
job) passes through `Directory.note`, through the desk (services/desk/) and the job workers (services/jobs/),
which are handed the directory by the composition root (services/console.py).
"""

from __future__ import annotations

from .refresh import RefreshSchedule, queue_refresh
from .store import KEEP_UNREAD, Directory, DirectoryEntry
from .table import APPROVAL, BULK_JOB, IMPORT, LOOKUP, REFRESH, SANDBOX_SEED, directory_organizations, fold

__all__ = ["APPROVAL", "BULK_JOB", "IMPORT", "KEEP_UNREAD", "LOOKUP", "REFRESH", "SANDBOX_SEED", "Directory",
           "DirectoryEntry", "RefreshSchedule", "directory_organizations", "fold", "queue_refresh"]
