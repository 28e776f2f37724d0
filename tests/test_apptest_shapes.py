"""The Plans and Customer pages through AppTest on a console whose sandbox answers in the Stripe-like dialect
(sandbox/dialects.py), and API text that must show literally, never as markdown or a link."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pandas as pd
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from sandbox.seed import MARKUP_NAME
from sandbox.settings import new_test_key
from services.payments.client import PaymentsClient
from tests.e2e.conftest import free_port
from tests.test_apptest import app, texts

# Elements whose text Streamlit renders as markdown (st.text, dataframes and widget options are plain).
MARKDOWN_ELEMENTS = ("markdown", "caption", "subheader", "header", "title", "error", "warning", "info", "success")
_CODE_SPAN = re.compile(r"(`+).+?\1")
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_LINK_SYNTAX = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(|(?<!\\)<(https?|mailto):")
# What GFM turns into a link by itself: web addresses and e-mail addresses.
_AUTOLINK_LITERAL = re.compile(r"https?://|www\.\w|[\w.+-]+@[\w-]+\.\w")
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")  # zero-width characters: a way to stop autolinks


def _resolved(markdown: str) -> str:
    """Backslash escapes and entities resolved, as markdown resolves them before GFM looks for addresses."""
    return html.unescape(_BACKSLASH_ESCAPE.sub(r"\1", markdown))


def renders_a_link(markdown: str) -> bool:
    """Whether Streamlit's markdown would show a link here: link syntax, or a bare web or mail address (linked
    even with its characters escaped; a zero-width character inside does stop it). Never inside a code span."""
    outside_code = _CODE_SPAN.sub("", markdown)
    return bool(_LINK_SYNTAX.search(outside_code) or _AUTOLINK_LITERAL.search(_resolved(outside_code)))


def as_read(markdown: str) -> str:
    """Markdown source as a person reads it: escapes resolved, zero-width characters unseen."""
    return _INVISIBLE.sub("", _resolved(markdown))


def markdown_shown(at: AppTest) -> list[str]:
    return [str(element.value) for kind in MARKDOWN_ELEMENTS for element in getattr(at, kind)]


def plain_shown(at: AppTest) -> list[str]:
    """Text shown without markdown: st.text, and st.html (its markup escaped, presumably)."""
    return [str(element.value) for element in at.text] + [html.unescape(element.proto.body)
                                                          for element in at.get("html")]


def test_renders_a_link_knows_what_gfm_links() -> None:
    assert renders_a_link("see https\\:\\/\\/evil\\.example") and renders_a_link("www\\.evil\\.example")
    assert renders_a_link("[x](javascript:alert(1))") and renders_a_link("a@b\\.example")
    assert renders_a_link("https&#58;//evil.example")
    assert not renders_a_link("\\[x\\]\\(javascript\\:alert\\(1\\)\\)") and not renders_a_link("`https://x.example`")
    assert not renders_a_link("Acme Analytics · \\$399\\.00 per month")


@pytest.fixture(scope="module")
def stripe_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentsClient]:
    """A console of its own (the console is cached per configuration) on a sandbox answering Stripe-style,
    and a client to that sandbox for the expected values."""
    port, key = free_port(), new_test_key()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"BILLING_DESK_DATA_DIR": str(tmp_path_factory.mktemp("stripe_console")),
                            "BILLING_DESK_SANDBOX": "1", "SANDBOX_PORT": str(port), "SANDBOX_API_KEY": key,
                            "SANDBOX_DIALECT": "stripe"}.items():
            patch.setenv(name, value)
        app()  # the console, and its sandbox, start with the first run
        with PaymentsClient(f"http://127.0.0.1:{port}/api/v1", key) as client:
            assert client.list_plans("org_abc123").active_product_id is None  # the dialect marks no plan
            yield client


def _chart_data(at: AppTest) -> pd.DataFrame:
    chart = at.get("vega_lite_chart")[0].proto
    return convert_arrow_bytes_to_pandas_df(chart.data.data)


def test_plans_page_on_stripe_answers(stripe_api: PaymentsClient) -> None:
    at = app("support", org="org_abc123")
    at.switch_page("pages/plans.py").run()
    assert not at.exception and not at.error
    frame = at.dataframe[0].value
    assert list(frame.plan.unique()) == ["Free Trial", "Starter", "Growth", "Scale", "Expansion", "Enterprise"]
    growth = frame[frame.plan == "Growth"]
    assert list(growth.features.unique()) == ["15,000 credits per month · 10 seats · Priority email support · "
                                              "Integrations"]
    assert list(zip(growth.interval, growth.price)) == [("month", 399.0), ("year", 3990.0)]
    assert list(frame[frame.current == "✓"].price_id) == ["price_GrowthMonthly01"]  # from the customer
    assert "Current plan: Growth" in plain_shown(at)
    chart = _chart_data(at)
    assert list(chart.plan.unique()) == ["Starter", "Growth", "Scale", "Expansion"]
    for plan, rows in chart.groupby("plan", sort=False):  # one bar per billing, a yearly price per month
        per_month = rows.set_index("billing").per_month
        monthly, yearly = frame[(frame.plan == plan)].set_index("interval").price[["month", "year"]]
        assert len(rows) == 2 and per_month["Monthly"] == monthly
        assert per_month["Yearly (per month)"] == pytest.approx(yearly / 12)


def test_plans_page_shows_api_text_only_as_plain_text(stripe_api: PaymentsClient) -> None:
    catalog = stripe_api.list_plans("org_abc123")
    from_api = {plan.name for plan in catalog.plans} | {feature for plan in catalog.plans for feature in plan.features}
    from_api |= {plan.description for plan in catalog.plans}
    at = app("support", org="org_abc123")
    at.switch_page("pages/plans.py").run()
    at.selectbox[0].select_index(3).run()  # Growth monthly: its label is shown above the URLs
    assert "Growth · $399.00 per month for org_abc123" in plain_shown(at)
    in_markdown = [shown for shown in markdown_shown(at) for text in from_api if text in as_read(shown)]
    assert not in_markdown, in_markdown
    assert all(not help_text or not any(text in help_text for text in from_api)
               for help_text in (box.help for box in at.selectbox))


def test_customer_page_on_stripe_answers(stripe_api: PaymentsClient) -> None:
    subscription = stripe_api.get_customer("org_abc123").subscription
    assert subscription and subscription.current_period_end
    at = app("support", org="org_abc123")
    assert not at.exception and not at.error
    page = texts(at)
    for expected in ("Acme Analytics", "Growth", "$399.00 per month", "Visa •••• 4242", "Active",
                     f"{subscription.current_period_end:%d %b %Y}"):
        assert expected in page, expected


def test_a_customer_name_with_a_web_address_is_shown_literally(stripe_api: PaymentsClient) -> None:
    at = app("support", org="org_markup")
    assert not at.exception
    address = MARKUP_NAME.rsplit(" ", 1)[-1]
    shown = markdown_shown(at)
    assert any(address in as_read(value) for value in shown + plain_shown(at)), "the name is shown"
    linked = [value for value in shown if "evil" in value and renders_a_link(value)]
    assert not linked, f"the organization's name is rendered as markdown with a link: {linked}"
