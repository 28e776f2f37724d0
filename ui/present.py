"""How things look on screen: markdown-safe text, escaped HTML, status and environment badges' labels and colours,
the customer's heading.

API data is shown literally: anything from the API that goes into markdown passes through `escape_markdown` (or
`code_span`), and into HTML through `facts_html`, so a name like `[click](https://evil.example)` or a bare URL
never becomes a link.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

# Streamlit markdown treats these as syntax ($ even starts LaTeX); API data must show literally.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=/@&])")
_BARE_ADDRESS = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)", re.IGNORECASE)

STATUS_STYLE: dict[str, tuple[str, str]] = {  # status -> (label, badge colour)
    "active": ("Active", "green"), "trialing": ("Trialing", "blue"), "past_due": ("Past due", "orange"),
    "canceled": ("Canceled", "gray"), "incomplete": ("Incomplete", "red"), "none": ("No subscription", "gray"),
    "unpaid": ("Unpaid", "red"), "incomplete_expired": ("Expired", "gray"),
}
ENVIRONMENT_STYLE: dict[str, tuple[str, str]] = {
    "sandbox": ("TEST · SANDBOX", "orange"), "test": ("TEST", "orange"), "live": ("LIVE", "red"),
}


def short_id(value: object) -> str | None:
    """A request's or job's id as the pages show it: its first 8 characters (enough to tell them apart). None for
    none, a table's empty cell (NaN) included."""
    return str(value)[:8] if isinstance(value, str) and value else None


def escape_markdown(text: object) -> str:
    """Text shown literally inside markdown: every character markdown could read as syntax is escaped. Markdown
    resolves escapes before it looks for bare web addresses, so an invisible word joiner (U+2060) goes into
    `://` and `www.`: a phishing address in a customer's name stays text, not a link. `&` is escaped too, or
    markdown would decode `https&colon;//…` into an address first. (E-mail addresses are
    left whole: copied into a mail client they must still work, and a mailto link is harmless.)"""
    return markdown_literal(unlinked(text))


def markdown_literal(text: object) -> str:
    """Markdown's syntax escaped, addresses left as they are: for the console's own sentences, which may name a
    person, a status or a form like `https://`, but never carry an address from outside."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def unlinked(text: object) -> str:
    """The text as a person sees it on screen: web addresses carry an invisible word joiner after `:` and `www`."""
    return _BARE_ADDRESS.sub("\u2060", str(text))


# A bordered box as st.container(border=True) draws it, in colours that suit the light and the dark theme alike.
_BOX_STYLE = ("border:1px solid rgba(128,128,128,.3);border-radius:.5rem;padding:.75rem 1rem;margin:0;"
              "display:grid;grid-template-columns:repeat(auto-fit,minmax(11rem,1fr));gap:.5rem 1rem")
_LABEL_STYLE = "font-size:.875rem;font-weight:normal;opacity:.6;margin:0"
_VALUE_STYLE = "overflow-wrap:anywhere;margin:0"


def facts_html(boxes: Sequence[Sequence[tuple[str, object]]]) -> str:
    """Boxes of small grey labels over values, as HTML for one `st.html` element. Every label and value is
    HTML-escaped, so text from the API shows literally: no tag, entity or markdown is read, and HTML (unlike
    markdown) never turns a bare address into a link. A missing value shows as a dash. Each box is a description
    list, so a screen reader says which label a value belongs to."""
    def cell(label: str, value: object) -> str:
        shown = html.escape(str(value)) if value not in (None, "") else "—"
        return (f'<div><dt style="{_LABEL_STYLE}">{html.escape(label)}</dt>'
                f'<dd style="{_VALUE_STYLE}">{shown}</dd></div>')
    return '<div style="display:grid;gap:1rem">' + "".join(
        f'<dl style="{_BOX_STYLE}">' + "".join(cell(label, value) for label, value in box) + "</dl>"
        for box in boxes) + "</div>"


def code_span(text: object) -> str:
    """Inline code: markdown is not interpreted inside, so only backticks need neutralising."""
    return "`" + str(text).replace("`", "ˋ").replace("\n", " ") + "`"


def status_style(status: str) -> tuple[str, str]:
    return STATUS_STYLE.get(status, (status.replace("_", " ").capitalize() or "Unknown", "gray"))


def status_label(status: str) -> str:
    return status_style(status)[0]


def customer_heading(name: str, status: str, ids: Sequence[str | None]) -> str:
    """The Customer page's head as one markdown element: the customer's name as a heading, then its status badge
    and its ids in small grey. One element rather than four (a row of heading and badge, and a caption): each
    element is a message for the browser to render, and a lookup draws this one every time (docs/performance.md).
    The name, the ids and the status (an unknown one is shown as the API words it) are escaped."""
    label, colour = status_style(status)
    line = " · ".join(escape_markdown(part) for part in ids if part)
    return f"### {escape_markdown(name)}\n\n:{colour}-badge[{escape_markdown(label)}] :gray[:small[{line}]]"


def monthly_cost_spec(costs: pd.DataFrame) -> dict[str, Any]:
    """The Plans page's chart as a plain Vega-Lite spec (Altair would validate it against its schema on every
    page run, 17 ms each): per plan, one bar per way of billing, in cost per month."""
    return {
        "mark": {"type": "bar"},
        "height": 260,
        "encoding": {
            "x": {"field": "plan", "type": "nominal", "sort": list(dict.fromkeys(costs.plan)), "title": None,
                  "axis": {"labelAngle": 0}},
            "xOffset": {"field": "billing", "type": "nominal"},
            "y": {"field": "per_month", "type": "quantitative", "title": "Cost per month ($)"},
            "color": {"field": "billing", "type": "nominal", "title": None, "legend": {"orient": "top"}},
            "tooltip": [
                {"field": "plan", "type": "nominal", "title": "Plan"},
                {"field": "billing", "type": "nominal", "title": "Billing"},
                {"field": "per_month", "type": "quantitative", "title": "Per month", "format": "$,.2f"},
                {"field": "credits", "type": "quantitative", "title": "Credits", "format": ","},
            ],
        },
    }
