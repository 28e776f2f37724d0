"""Plans: the catalog for an organization, the current plan marked, and checkout links for a chosen plan."""

from __future__ import annotations

import streamlit as st

from services import intents
from services.formatting import escape_markdown
from services.tables import monthly_cost_chart, plans_frame
from services.plan_change import checkout_options
from services.auth.roles import Page
from ui import session, reads, organization
from ui.console import get_runtime
from ui.widgets import fresh_link_panel, show_error, stop_on_read_error

actor = session.require_page(Page.PLANS)
runtime = get_runtime()

st.title("Plans")
organization_id = organization.chosen_or_stop(
    "Look up an organization to see the plans it can buy and to send it a checkout link.")

try:
    catalog = reads.plans(actor, organization_id)
except Exception as problem:
    stop_on_read_error(problem, f"load the plans for {organization_id}")

frame = plans_frame(catalog)
current = catalog.plan(catalog.active_product_id)
try:  # the customer's exact price, to mark one row rather than both intervals of the plan
    subscription = reads.customer(actor, organization_id).subscription
    current_price = subscription.price_id if subscription and subscription.is_live else None
except Exception:
    current_price = None
if current_price in set(frame.price_id):
    frame["current"] = frame.price_id == current_price
st.caption(f"Plans for **{escape_markdown(organization_id)}** · current plan: "
           f"**{escape_markdown(current.name) if current else 'none'}** (marked ✓). Select a row (or pick below) to send a checkout link.")
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

cost_chart = monthly_cost_chart(frame)
if cost_chart is not None:
    chart_data, chart_spec = cost_chart
    st.vega_lite_chart(chart_data, chart_spec, width="stretch")

options = checkout_options(catalog)
rows = selection.selection.rows if selection else []
picked = table.iloc[rows[0]].price_id if rows else None
with st.container(border=True):
    st.markdown("**Checkout link**")
    custom = [plan.name for plan in catalog.plans if plan.custom]
    choice = st.selectbox("Plan", options, format_func=lambda option: option.label, key=f"checkout_plan_{picked}",
                          index=next((i for i, option in enumerate(options) if option.price.price_id == picked), None),
                          placeholder="Choose a plan, or select a row in the table",
                          help=(f"{', '.join(custom)}: sold by contract through sales." if custom else None))
    if choice is not None:
        st.markdown(f"{escape_markdown(choice.label)} for **{escape_markdown(organization_id)}**")
        success_url = st.text_input("Success URL", value=runtime.success_url or "", key="success_url",
                                    help="Where the customer lands after paying.")
        cancel_url = st.text_input("Cancel URL", value=runtime.cancel_url or "", key="cancel_url",
                                   help="Where the customer lands if they leave the checkout.")
        if st.button("Create checkout link", type="primary", icon=":material/shopping_cart:"):
            intent = ("checkout", {"organization": organization_id, "price": choice.price.price_id,
                                   "success": success_url.strip(), "cancel": cancel_url.strip()})
            try:
                link = runtime.desk.create_checkout_link(actor, organization_id, choice.price.price_id,
                                                         choice.plan.product_id, success_url.strip() or None,
                                                         cancel_url.strip() or None,
                                                         intents.key_for(st.session_state, *intent))
            except Exception as problem:
                show_error(problem, "create a checkout link")
            else:
                st.session_state["fresh_link"] = {
                    "kind": "checkout", "organization_id": organization_id, "url": link.url, "intent": intent,
                    "expires_at": link.expires_at,
                    "expires": f"{link.expires_at:%d %b %H:%M} UTC" if link.expires_at else None}
fresh_link_panel("checkout", organization_id)
