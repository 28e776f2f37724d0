"""Plans: the catalog for an organization, the current plan marked, and checkout links for a chosen plan."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from services import intents
from services.formatting import escape_markdown, money
from services.frames import plans_frame
from services.payments_errors import InvalidInputError
from services.roles import Page
from ui import auth, data, organization
from ui.runtime import get_runtime
from ui.widgets import fresh_link_panel, show_error

actor = auth.require_page(Page.PLANS)
runtime = get_runtime()

st.title("Plans")
organization_id = organization.picker()
if not organization_id:
    st.info("Look up an organization to see the plans it can buy and to send it a checkout link.",
            icon=":material/search:")
    st.stop()

try:
    catalog = data.plans(actor, organization_id)
except Exception as problem:
    show_error(problem, f"load the plans for {organization_id}")
    st.stop()

frame = plans_frame(catalog)
current = catalog.plan(catalog.active_product_id)
st.caption(f"Plans for **{escape_markdown(organization_id)}** · current plan: "
           f"**{escape_markdown(current.name) if current else 'none'}** (marked ✓). Select a row to send a checkout link.")
table = frame.assign(current=frame.current.map({True: "✓", False: ""}))
selection = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
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

priced = frame.dropna(subset=["price"]).copy()
priced = priced[priced.price > 0]
if not priced.empty:
    priced["per_month"] = priced.apply(lambda row: row.price / 12 if row.interval == "year" else row.price, axis=1)
    priced["billing"] = priced.interval.map({"month": "Monthly", "year": "Yearly (per month)"})
    chart = alt.Chart(priced).mark_bar().encode(
        x=alt.X("plan:N", sort=list(dict.fromkeys(priced.plan)), title=None),
        xOffset="billing:N",
        y=alt.Y("per_month:Q", title="Cost per month ($)"),
        color=alt.Color("billing:N", title=None, legend=alt.Legend(orient="top")),
        tooltip=[alt.Tooltip("plan:N", title="Plan"), alt.Tooltip("billing:N", title="Billing"),
                 alt.Tooltip("per_month:Q", title="Per month", format="$,.2f"),
                 alt.Tooltip("credits:Q", title="Credits", format=",")])
    st.altair_chart(chart.properties(height=260), width="stretch")

rows = selection.selection.rows if selection else []
chosen = table.iloc[rows[0]] if rows else None
with st.container(border=True):
    st.markdown("**Checkout link**")
    if chosen is None:
        st.caption("Select a plan in the table above to create a checkout link for it.")
    elif chosen.custom or pd.isna(chosen.price_id):
        st.info(f"{escape_markdown(chosen.plan)} is sold by contract: hand the customer to the sales team.")
    else:
        st.markdown(f"{escape_markdown(chosen.plan)} · {escape_markdown(money(chosen.price))} per "
                    f"{escape_markdown(chosen.interval)} for **{escape_markdown(organization_id)}**")
        success_url = st.text_input("Success URL", value=runtime.success_url or "", key="success_url",
                                    help="Where the customer lands after paying.")
        cancel_url = st.text_input("Cancel URL", value=runtime.cancel_url or "", key="cancel_url",
                                   help="Where the customer lands if they leave the checkout.")
        if st.button("Create checkout link", type="primary", icon=":material/shopping_cart:"):
            intent = ("checkout", {"organization": organization_id, "price": chosen.price_id,
                                   "success": success_url.strip(), "cancel": cancel_url.strip()})
            try:
                link = runtime.desk.create_checkout_link(actor, organization_id, chosen.price_id, chosen.product_id,
                                                         success_url.strip() or None, cancel_url.strip() or None,
                                                         intents.key_for(st.session_state, *intent))
            except InvalidInputError as problem:
                st.error(problem.user_message, icon=":material/edit:")
            except Exception as problem:
                show_error(problem, "create a checkout link")
            else:
                st.session_state["fresh_link"] = {
                    "kind": "checkout", "organization_id": organization_id, "url": link.url, "intent": intent,
                    "expires_at": link.expires_at,
                    "expires": f"{link.expires_at:%d %b %H:%M} UTC" if link.expires_at else None}
fresh_link_panel("checkout", organization_id)
