"""Every download the console offers goes through here, so no export can carry a spreadsheet formula.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by Excel, LibreOffice
and Google Sheets; such text (a username typed at the login, a customer's name from the hosted portal, an API
error) could run in a colleague's spreadsheet. After OWASP's CSV-injection advice, such a cell is prefixed with
an apostrophe. Only the file changes; the screen shows the value as it is.
"""

from __future__ import annotations

import csv
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells (and column names) can't be read as formulas; numbers and times are untouched."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column].dtype):
            safe[column] = safe[column].map(neutralise)
    safe.columns = [neutralise(str(column)) for column in safe.columns]
    return safe


def csv_bytes(frame: pd.DataFrame) -> bytes:
    # Every text cell quoted: a carriage return inside a cell would otherwise end the row for some readers.
    return safe_frame(frame).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode("utf-8")
