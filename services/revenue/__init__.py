"""Revenue over time: a daily snapshot of the customer directory, the MRR movements between days, and the figures
finance reads from them (MRR and ARR, movements, churn, retention, cohorts).

| module          | what it holds                                                                         |
|-----------------|---------------------------------------------------------------------------------------|
| `tables.py`     | the snapshots, movements, first paid days and the day and cohort rollups (append-only)|
| `movements.py`  | which change is which movement: the rules, in one function                           |
| `snapshots.py`  | taking a day: rows, movements and rollups in one transaction; missing days carried   |
| `schedule.py`   | when: after the day's directory refresh has finished (or daily, with it off)         |
| `figures.py`    | the Revenue page's figures from the rollups; the ledger; one organization's history  |
| `attention.py`  | the accounts needing a person: past due, cancelling, downgrading, trials ending       |

MRR is the finance summary's rule (services/finance.py `mrr_cents`), computed when the directory notes a read.
"""

from __future__ import annotations

from .attention import ATTENTION_COLUMNS, REASONS, needs_attention
from .figures import LEDGER_PAGE, MONTH_COLUMNS, RevenueOverview, ledger, organization_history, overview
from .movements import KINDS, LABELS, LEDGER_CHOICES, movement
from .schedule import SnapshotSchedule
from .snapshots import TakenDay, take_snapshot

__all__ = ["ATTENTION_COLUMNS", "KINDS", "LABELS", "LEDGER_CHOICES", "REASONS", "needs_attention", "LEDGER_PAGE", "MONTH_COLUMNS", "RevenueOverview", "SnapshotSchedule", "TakenDay",
           "ledger", "movement", "organization_history", "overview", "take_snapshot"]
