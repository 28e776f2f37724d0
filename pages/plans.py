"""Plans: the catalog for an organization, the current plan marked, and checkout links for a chosen plan."""

from __future__ import annotations

import streamlit as st

from services import intents
from services.auth.roles import Page
from services.plan_change import checkout_options
from services.tables import current_plan, monthly_costs, plans_frame
from ui import organization, reads, session
from ui.console import get_console
from ui.present import escape_markdown, monthly_cost_spec
from ui.widgets import fresh_link_panel, remember_fresh_link, show_error, stop_on_read_error

actor = session.require_page(Page.PLANS)
console = get_console()

st.title("Plans")
organization_id = organization.chosen_or_stop(
    "Look up an organization to see the plans it can buy and to send it a checkout link.")

try:
    catalog = reads.plans(actor, organization_id)
except Exception as problem:
    stop_on_read_error(problem, f"load the plans for {organization_id}")

try:  # the customer marks the current plan (and its exact price) when the plans answer doesn't
    customer = reads.customer(actor, organization_id)
except Exception:
    customer = None
frame = plans_frame(catalog, customer)
current, _ = current_plan(catalog, customer)
st.caption(f"Plans for **{escape_markdown(organization_id)}**, the current plan marked ✓. "
           "Select a row (or pick below) to send a checkout link.")
st.text(f"Current plan: {current.name if current else 'none'}")  # API text: plain, never markdown
table = frame.assign(current=frame.current.map({True: "✓", False: ""}))
selection = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", placeholder="—",
    key="plans_table",
    column_order=["current", "plan", "interval", "price", "credits", "overage_rate", "seats", "features",
                  "product_id", "price_id"],
    column_config={
        "current": st.column_config.TextColumn("Current", width="small"),
        "plan": st.column_config.TextColumn("Plan"),
        "interval": st.column_config.TextColumn("Billed", help="month or year"),
        "price": st.column_config.NumberColumn("Price", format="dollar"),
        "credits": st.column_config.NumberColumn("Credits / month", format="localized"),
        "overage_rate": st.column_config.NumberColumn("Overage / credit", format="$%.3f"),
        "seats": st.column_config.NumberColumn("Seats"),
        "features": st.column_config.TextColumn("Features", width="large"),
        "product_id": st.column_config.TextColumn("Product id"),
        "price_id": st.column_config.TextColumn("Price id"),
    })

costs = monthly_costs(frame)
if costs is not None:
    st.vega_lite_chart(costs, monthly_cost_spec(costs), width="stretch")

options = checkout_options(catalog)
rows = selection.selection.rows if selection else []
picked = table.iloc[rows[0]].price_id if rows else None
with st.container(border=True):
    st.markdown("**Checkout link**")
    choice = st.selectbox("Plan", options, format_func=lambda option: option.label, key=f"checkout_plan_{picked}",
                          index=next((i for i, option in enumerate(options) if option.price.price_id == picked), None),
                          placeholder="Choose a plan, or select a row in the table",
                          help=("Plans without a price are sold by contract through sales."  # no API text:
                                if any(plan.custom for plan in catalog.plans) else None))  # help is markdown
    if choice is not None:
        st.text(f"{choice.label} for {organization_id}")  # the plan's name, as plain text
        success_url = st.text_input("Success URL", value=console.success_url or "", key="success_url",
                                    help="Where the customer lands after paying.")
        cancel_url = st.text_input("Cancel URL", value=console.cancel_url or "", key="cancel_url",
                                   help="Where the customer lands if they leave the checkout.")
        if st.button("Create checkout link", type="primary", icon=":material/shopping_cart:"):
            intent = ("checkout", {"organization": organization_id, "price": choice.price.price_id,
                                   "success": success_url.strip(), "cancel": cancel_url.strip()})
            try:
                link = console.desk.create_checkout_link(actor, organization_id, choice.price.price_id,
                                                         choice.plan.product_id, success_url.strip() or None,
                                                         cancel_url.strip() or None,
                                                         intents.key_for(st.session_state, *intent))
            except Exception as problem:
                show_error(problem, "create a checkout link")
            else:
                remember_fresh_link("checkout", organization_id, link, intent)
fresh_link_panel("checkout", organization_id)
