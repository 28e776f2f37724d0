"""What counts as which MRR movement: one function, the rules the Revenue page and docs/revenue.md state.

An organization's MRR on a day is its snapshot's (services/finance.py `mrr_cents`, the finance summary's own rule:
active and past due count, a yearly price a twelfth a month, trials and everything else zero). Between two
consecutive days, a change is one movement:

- **new**: from zero to above zero, never having paid before (a trial converting, a first subscription);
- **reactivation**: from zero to above zero, having paid before (a churned customer back);
- **expansion** / **contraction**: from above zero to more / less, still above zero (upgrades apply at once;
  a downgrade when it takes effect at the period's end);
- **churn**: from above zero to zero. A cancel at period end is churn on the day the period ends and the
  subscription reads canceled; before that it is *scheduled churn*, shown beside the MRR it still counts in (as
  ChartMogul's committed MRR). Past due stays in MRR until it is canceled;
- **first counted**: paying already when the console first read it (an import, a first lookup), or its price first
  known: the console can't tell when it began paying, so it is not new MRR but the directory's opening balance;
- **no longer counted**: left the directory (forgotten, purged after its retention) or its price no longer known.

MRR on a day = MRR the day before + new + expansion + reactivation − contraction − churn + first counted − no
longer counted, exactly (tests/test_revenue.py).
"""

from __future__ import annotations

NEW, EXPANSION, REACTIVATION, CONTRACTION, CHURN = "new", "expansion", "reactivation", "contraction", "churn"
FIRST_COUNTED, NO_LONGER_COUNTED = "first_counted", "no_longer_counted"
GROWTH = (NEW, EXPANSION, REACTIVATION)  # up in the movements chart
LOSS = (CONTRACTION, CHURN)  # down
KINDS = (*GROWTH, *LOSS, FIRST_COUNTED, NO_LONGER_COUNTED)
LABELS = {NEW: "New", EXPANSION: "Expansion", REACTIVATION: "Reactivation", CONTRACTION: "Contraction",
          CHURN: "Churn", FIRST_COUNTED: "First counted", NO_LONGER_COUNTED: "No longer counted"}
# What the ledger can list, by name: one kind, or the kinds a figure is made of (None: every movement).
LEDGER_CHOICES: dict[str, tuple[str, ...] | None] = {
    "Every movement": None, **{label: (kind,) for kind, label in LABELS.items()},
    "Growth and loss (net)": (*GROWTH, *LOSS), "Loss (gross MRR churn)": LOSS,
    "Retention (NRR: expansion, contraction, churn)": (EXPANSION, CONTRACTION, CHURN),
    "Net MRR churn (contraction, churn, expansion, reactivation)": (CONTRACTION, CHURN, EXPANSION, REACTIVATION)}


def movement(before: int | None, after: int | None, paid_before: bool) -> str | None:
    """The kind of movement from `before` to `after` (MRR in cents; None: not in the snapshot, or its price not
    known), or None for no movement. `paid_before`: the organization had MRR above zero on an earlier day."""
    if before is None or after is None:
        if before is None and after:
            return FIRST_COUNTED
        if after is None and before:
            return NO_LONGER_COUNTED
        return None
    if before == after:
        return None
    if before == 0:
        return REACTIVATION if paid_before else NEW
    if after == 0:
        return CHURN
    return EXPANSION if after > before else CONTRACTION


def signed_change(kind: str, before: int | None, after: int | None) -> int:
    """The MRR change a movement makes, in cents (negative for contraction, churn, no longer counted)."""
    return (after or 0) - (before or 0)
