"""Every download the console offers goes through here, so no export can carry a spreadsheet formula.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by Excel, LibreOffice
and Google Sheets; such text (a username typed at the login, a customer's name from the hosted portal, an API
error) could run in a colleague's spreadsheet. After OWASP's CSV-injection advice, such a cell is prefixed with
an apostrophe. Only the file changes; the screen shows the value as it is.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO

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


class SafeCsvWriter:
    """Writes rows to a binary file as they come, each text cell neutralised as `neutralise` does, in the same
    dialect as `csv_bytes` (every text cell quoted; numbers and times as they are). For exports too large to
    hold as a frame: nothing but the current row is kept."""

    def __init__(self, out: BinaryIO, columns: Sequence[str]) -> None:
        self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
        self._writer = csv.writer(self._text, quoting=csv.QUOTE_NONNUMERIC)
        self._writer.writerow([neutralise(str(column)) for column in columns])
        self.rows = 0

    def write(self, row: Iterable[Any]) -> None:
        self._writer.writerow([_cell(value) for value in row])
        self.rows += 1

    def close(self) -> None:
        """Flushes and lets go of `out` (left open, for the caller to read back)."""
        self._text.flush()
        self._text.detach()


def _cell(value: Any) -> Any:
    if value is None:
        return ""  # as pandas writes a missing value
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return neutralise(str(value))
    return value


# Streamlit keeps a download's bytes in its memory until the next run (and sends them from there), so an export
# larger than this many lines is handed over zipped: a million audit events are ~200 MB of CSV, ~15 MB zipped.
ZIP_ABOVE_ROWS = 100_000


def zipped(source: BinaryIO, inner_name: str) -> BinaryIO:
    """`source` (read from where it stands) as the one file `inner_name` of a zip archive, in a temporary file,
    rewound. Deflate level 1: most of the size saved for a fraction of the time (CSV repeats itself)."""
    archive_file = tempfile.TemporaryFile()
    with zipfile.ZipFile(archive_file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open(inner_name, "w", force_zip64=True) as member:
            shutil.copyfileobj(source, member, 1 << 20)
    archive_file.seek(0)
    return archive_file
