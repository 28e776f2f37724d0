"""Every download the console offers goes through here, so no export can carry a spreadsheet formula.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by Excel, LibreOffice
and Google Sheets; such text (a username typed at the login, a customer's name from the hosted portal, an API
error) could run in a colleague's spreadsheet. After OWASP's CSV-injection advice, such a cell is prefixed with
an apostrophe. Only the file changes; the screen shows the value as it is. The Excel export (`xlsx_bytes`)
neutralises text the same way and stores it as text, so no cell is ever a formula or a link.
"""

from __future__ import annotations

import csv
import io
import math
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, BinaryIO

import numpy as np
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


# --- Excel ------------------------------------------------------------------------------------------
# Money columns by name across the console's tables (results and the finance summary's sheets); a column of
# Decimal values counts as money too.
MONEY_COLUMNS = frozenset({"price", "monthly_amount", "scheduled_price", "scheduled_monthly_amount", "amount", "mrr",
                           "arr", "mrr_at_risk", "to_mrr", "monthly_after"})
SHARE_COLUMNS = frozenset({"share_of_mrr"})
_CURRENCY_SYMBOLS = {"USD": "$", "CAD": "CA$", "AUD": "A$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_SHEET_TITLE_FORBIDDEN = re.compile(r"[\\/?*\[\]:]")
# Characters XML 1.0 can't hold (openpyxl refuses them): shown as U+FFFD, so the rest of the text survives.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def currency_format(currency: str = "USD") -> str:
    """Excel's number format for an amount in `currency`: "$"#,##0.00 for dollars, else the code after it."""
    code = (currency or "USD").upper()
    symbol = _CURRENCY_SYMBOLS.get(code)
    if symbol:
        return f'"{symbol}"#,##0.00;-"{symbol}"#,##0.00'
    return f'#,##0.00 "{_XML_ILLEGAL.sub("", code)[:3]}"'


def _sheet_title(name: str, used: set[str]) -> str:
    """A title Excel accepts (31 characters, none of \\ / ? * [ ] :, no apostrophe at either end), unique in the
    workbook; a leading formula character is dropped (a title is never evaluated, but it is copied about)."""
    title = _XML_ILLEGAL.sub("", _SHEET_TITLE_FORBIDDEN.sub(" ", str(name)))
    title = title.lstrip("=+-@'\t\r\n ").rstrip("' \t\r\n")[:31].rstrip("' ") or "Sheet"
    base, number = title, 2
    while title.lower() in used:
        suffix = f" ({number})"
        title, number = base[:31 - len(suffix)] + suffix, number + 1
    used.add(title.lower())
    return title


def _is_money(frame: pd.DataFrame, column: object) -> bool:
    if str(column) in MONEY_COLUMNS:
        return True
    values = frame[column].dropna()
    return frame[column].dtype == object and not values.empty and all(isinstance(value, Decimal) for value in values)


def _xlsx_value(value: Any) -> tuple[Any, str]:
    """A cell's value and its kind: "text" (XML-safe, then neutralised), "number", "bool", "datetime", "date",
    or "empty"."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None, "empty"
    if isinstance(value, str):
        return neutralise(_XML_ILLEGAL.sub("\ufffd", value)), "text"
    if isinstance(value, (bool, np.bool_)):
        return bool(value), "bool"
    if isinstance(value, (int, np.integer)):
        return int(value), "number"
    if isinstance(value, (float, np.floating)):
        return (float(value), "number") if math.isfinite(value) else (None, "empty")
    if isinstance(value, Decimal):
        return (value, "number") if value.is_finite() else (None, "empty")
    if isinstance(value, (pd.Timestamp, datetime)):
        moment = pd.Timestamp(value)
        if moment.tzinfo is not None:  # a spreadsheet holds no zone: UTC, as every time in the console
            moment = moment.tz_convert("UTC").tz_localize(None)
        return moment.to_pydatetime(), "datetime"
    if isinstance(value, date):
        return value, "date"
    return neutralise(_XML_ILLEGAL.sub("\ufffd", str(value))), "text"


_WIDTH_SAMPLE = 500  # rows read to size a column


def xlsx_bytes(sheets: dict[str, pd.DataFrame], currency: str = "USD") -> bytes:
    """An Excel workbook, one sheet per frame (in order; titles made valid for Excel), header row bold and frozen.

    Nothing from the API becomes a formula, a hyperlink or an external link: every text cell (and header) is
    neutralised as the CSV export does, so none begins with `=` and each is written as a string; no cell gets a
    hyperlink. Money columns (MONEY_COLUMNS by name, or a column of Decimals) are numbers with `currency`'s
    format; times are Excel datetimes in UTC; numbers stay numbers (a negative amount is a number, not text).
    Rows are streamed (openpyxl's write-only mode): 5,000 results take a second or two."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    money_format = currency_format(currency)
    bold = Font(bold=True)
    used: set[str] = set()
    for name, frame in sheets.items():
        sheet = workbook.create_sheet(_sheet_title(name, used))
        titles: list[str] = []
        cells: list[list[Any]] = []
        widths: list[int] = []
        for column in frame.columns:
            money = _is_money(frame, column)
            values = [_xlsx_value(raw) for raw in frame[column].tolist()]
            fixed = {"datetime": "yyyy-mm-dd hh:mm", "date": "yyyy-mm-dd",
                     "number": money_format if money else "0.0%" if str(column) in SHARE_COLUMNS else None}
            column_cells: list[Any] = []
            for value, kind in values:
                number_format = fixed.get(kind)
                if number_format is None:
                    column_cells.append(value)
                    continue
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = number_format
                column_cells.append(cell)
            header, _ = _xlsx_value(str(column))
            sample = [len(value) if kind == "text" else 17 if kind == "datetime" else 11 if kind == "date"
                      else 14 if money else min(len(str(value)), 20) for value, kind in values[:_WIDTH_SAMPLE]
                      if kind != "empty"]
            widths.append(min(max([len(header), *sample]), 60) + 2)
            titles.append(header)
            cells.append(column_cells)
        for index, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.freeze_panes = "A2"
        headers = []
        for header in titles:
            cell = WriteOnlyCell(sheet, value=header)
            cell.font = bold
            headers.append(cell)
        sheet.append(headers)
        for row in zip(*cells):
            sheet.append(list(row))
    if not workbook.sheetnames:
        workbook.create_sheet("Sheet")
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
