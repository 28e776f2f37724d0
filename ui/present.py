"""How things look on screen: markdown-safe text, status and environment badges' labels and colours.

API data is shown literally: anything from the API that goes into markdown passes through `plain` (or
`code_span`), so a name like `[click](https://evil.example)` or a bare URL never becomes a link.
"""

from __future__ import annotations

import re

# Streamlit markdown treats these as syntax ($ even starts LaTeX); API data must show literally.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=/@])")

STATUS_STYLE: dict[str, tuple[str, str]] = {  # status -> (label, badge colour)
    "active": ("Active", "green"), "trialing": ("Trialing", "blue"), "past_due": ("Past due", "orange"),
    "canceled": ("Canceled", "gray"), "incomplete": ("Incomplete", "red"), "none": ("No subscription", "gray"),
    "unpaid": ("Unpaid", "red"), "incomplete_expired": ("Expired", "gray"),
}
ENVIRONMENT_STYLE: dict[str, tuple[str, str]] = {
    "sandbox": ("TEST · SANDBOX", "orange"), "test": ("TEST", "orange"), "live": ("LIVE", "red"),
}


def escape_markdown(text: object) -> str:
    """Text shown literally inside markdown: every character markdown could read as syntax is escaped, and
    `:` and `/` too, so a bare web address is not turned into a link."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def code_span(text: object) -> str:
    """Inline code: markdown is not interpreted inside, so only backticks need neutralising."""
    return "`" + str(text).replace("`", "ˋ").replace("\n", " ") + "`"


def status_style(status: str) -> tuple[str, str]:
    return STATUS_STYLE.get(status, (status.replace("_", " ").capitalize() or "Unknown", "gray"))


def status_label(status: str) -> str:
    return status_style(status)[0]
