"""Plans and customers as DataFrames, from the sandbox over HTTP."""

from __future__ import annotations

import pandas as pd

from services.tables import CUSTOMER_COLUMNS, customer_record, monthly_costs, plans_frame, typed_customer_frame
from ui.present import monthly_cost_spec
from services.payments.client import PaymentsClient


def test_plans_frame_has_money_as_numbers_and_marks_the_current_plan(client: PaymentsClient) -> None:
    frame = plans_frame(client.list_plans("org_abc123"))
    starter = frame[(frame.plan == "Starter") & (frame.interval == "year")].iloc[0]
    assert starter.price == 1790.0 and pd.api.types.is_float_dtype(frame.price)
    assert frame[frame.current].plan.unique().tolist() == ["Growth"]
    enterprise = frame[frame.plan == "Enterprise"]
    assert len(enterprise) == 1 and pd.isna(enterprise.iloc[0].price) and enterprise.iloc[0].custom
    assert len(frame) == 1 + 4 * 2 + 1  # trial, four plans monthly and yearly, enterprise


def test_monthly_cost_chart_shows_priced_plans_per_month(client: PaymentsClient) -> None:
    frame = plans_frame(client.list_plans("org_abc123"))
    data = monthly_costs(frame)
    spec = monthly_cost_spec(data)
    # The free trial and the custom Enterprise plan have no price to chart; yearly prices are shown per month.
    assert data.plan.unique().tolist() == ["Starter", "Growth", "Scale", "Expansion"]
    starter = data[data.plan == "Starter"].set_index("billing").per_month
    assert starter["Monthly"] == 179.0 and round(starter["Yearly (per month)"], 2) == 149.17
    assert spec["encoding"]["x"]["sort"] == ["Starter", "Growth", "Scale", "Expansion"]
    fields = {encoding["field"] for encoding in spec["encoding"].values() if isinstance(encoding, dict)}
    fields |= {tooltip["field"] for tooltip in spec["encoding"]["tooltip"]}
    assert fields <= set(data.columns)  # every field the spec draws is in the data
    assert monthly_costs(frame[frame.custom]) is None  # nothing priced, no chart


def test_customers_frame_has_dates_as_datetimes(client: PaymentsClient, control) -> None:
    ids = ["org_abc123"] + [row["id"] for row in control.organizations("none")[:2]]
    customers = [client.get_customer(organization_id) for organization_id in ids]
    catalog = client.list_plans("org_abc123")
    frame = typed_customer_frame([customer_record(customer, catalog) for customer in customers], CUSTOMER_COLUMNS)
    assert pd.api.types.is_datetime64_any_dtype(frame.period_end)
    first = frame.iloc[0]
    assert (first.plan, first.price, first.status, first.card_last4) == ("Growth", 399.0, "active", "4242")
    assert frame.iloc[1].status == "none" and pd.isna(frame.iloc[1].period_end) and pd.isna(frame.iloc[1].plan)


def test_facts_are_escaped_html_with_a_dash_for_what_is_missing() -> None:
    from ui.present import facts_html

    shown = facts_html([[("Email", '<img src=x onerror="alert(1)">'), ("Card", None)], [("Address & co", "a < b")]])
    assert "<img" not in shown and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in shown
    assert "Address &amp; co" in shown and "a &lt; b" in shown and ">—</dd>" in shown
    assert shown.count("border:1px solid") == 2  # a box per group


def test_the_customer_heading_is_one_markdown_element_with_everything_from_the_api_escaped() -> None:
    from tests.test_apptest_shapes import renders_a_link
    from ui.present import customer_heading

    shown = customer_heading("[Pay](https://evil.example) **now** $5", "odd]status[", ("org_1", "cus_[x]"))
    heading, details = shown.split("\n\n")
    assert heading.startswith("### ") and "\\[Pay\\]" in heading and "\\*\\*now\\*\\*" in heading and "\\$5" in heading
    assert details.startswith(":gray-badge[Odd\\]status\\[]")  # an unknown status: the API's word, in grey
    assert details.endswith(":gray[:small[org\\_1 · cus\\_\\[x\\]]]") and not renders_a_link(shown)
    assert customer_heading("Acme", "past_due", ("org_1", None)) == "### Acme\n\n:orange-badge[Past due] :gray[:small[org\\_1]]"
