"""pg_trgm's word similarity, computed the same way in Python for both stores: how well the best continuous
stretch of a name's trigrams matches the trigrams of what was typed.

Written from pg_trgm's documented definition and its `calc_word_similarity` (contrib/pg_trgm/trgm_op.c): words are
runs of letters and digits, each padded with two spaces before and one after; the typed text's trigrams form a
set; the name's trigrams keep their order; the score of a stretch is shared / (typed + stretch − shared) over the
distinct trigrams, and the greatest over stretches that start and end on a shared trigram is the answer.
tests/test_directory.py compares it with PostgreSQL's own `word_similarity` on pairs of names.
"""

from __future__ import annotations

import re

WORD = re.compile(r"[^\W_]+")  # pg_trgm's word characters: letters and digits (not "_")


def trigrams(text: str) -> list[str]:
    """Every trigram of every word, in order (repeats kept)."""
    found: list[str] = []
    for word in WORD.findall(text):
        padded = f"  {word} "
        found += [padded[index:index + 3] for index in range(len(padded) - 2)]
    return found


def word_similarity(typed: str, name: str) -> float:
    """pg_trgm's `word_similarity(typed, name)` for folded text, rounded to 4 places (1.0: a word of `name` is
    exactly `typed`)."""
    wanted = set(trigrams(typed))
    sequence = trigrams(name)
    if not wanted or not sequence:
        return 0.0
    typed_count = len(wanted)
    last_seen: dict[str, int] = {}
    lower, distinct, shared, best = -1, 0, 0, 0.0

    def score(common: int, stretch: int) -> float:
        return common / (typed_count + stretch - common)

    for position, gram in enumerate(sequence):
        present = gram in wanted
        if lower >= 0 or present:
            if last_seen.get(gram, -1) < 0:
                distinct += 1
                shared += present
            last_seen[gram] = position
        if not present:
            continue
        if lower == -1:
            lower, distinct = position, 1
        current = score(shared, distinct)
        # A later start may score better: drop the stretch's first trigrams one by one while they don't recur.
        trial_shared, trial_distinct, first_lower = shared, distinct, lower
        for start in range(lower, position + 1):
            trial = score(trial_shared, trial_distinct)
            if trial > current:
                current, distinct, lower, shared = trial, trial_distinct, start, trial_shared
            dropped = sequence[start]
            if last_seen.get(dropped) == start:
                trial_distinct -= 1
                trial_shared -= dropped in wanted
        best = max(best, current)
        for start in range(first_lower, lower):  # what fell out of the stretch is unseen again
            dropped = sequence[start]
            if last_seen.get(dropped) == start:
                last_seen[dropped] = -1
    return round(best, 4)
