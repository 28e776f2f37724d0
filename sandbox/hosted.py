"""The sandbox's hosted pages: Stripe-like checkout and customer portal, plain HTML forms.

Every value is escaped: organization names and emails come from data a customer typed.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import FastAPI, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from . import billing
from .catalog import PRICES
from .errors import ApiError
from .store import Store, parse_iso

STYLE = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;background:#f6f8fa;color:#1a1f36;margin:0}
.bar{background:#ffb020;color:#3d2a00;text-align:center;font-size:13px;padding:6px;font-weight:600}
main{max-width:880px;margin:40px auto;display:flex;gap:40px;padding:0 20px;flex-wrap:wrap}
section{flex:1;min-width:300px;background:#fff;border-radius:8px;padding:28px;box-shadow:0 1px 3px rgba(0,0,0,.1)}
h1{font-size:20px;margin:0 0 6px}h2{font-size:15px;margin:22px 0 8px;color:#3c4257}
.amount{font-size:34px;font-weight:700;margin:10px 0}.muted{color:#697386;font-size:14px}
label{display:block;font-size:13px;color:#3c4257;margin:14px 0 6px}
input{width:100%;box-sizing:border-box;padding:10px;border:1px solid #cfd7df;border-radius:6px;font-size:16px}
.row{display:flex;gap:12px}.row>div{flex:1}
button{margin-top:20px;width:100%;padding:12px;border:0;border-radius:6px;background:#635bff;color:#fff;
 font-size:16px;font-weight:600;cursor:pointer}button.secondary{background:#fff;color:#cd3d64;border:1px solid #cd3d64}
.error{background:#fde8ec;color:#a41c4e;padding:10px;border-radius:6px;margin-top:14px}
.notice{background:#e6f4ea;color:#1e6b35;padding:10px;border-radius:6px;margin-bottom:14px}
table{width:100%;border-collapse:collapse;font-size:14px}td,th{padding:6px 4px;border-bottom:1px solid #eef0f3;text-align:left}
main.mailbox{display:block}.mailbox section{margin-top:16px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-family:inherit;font-size:15px}
a{color:#635bff}code{background:#f0f2f5;padding:2px 6px;border-radius:4px;font-size:14px}
"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A hosted page of the sandbox, with its test-mode bar."""
    return _page(title, body, status)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{STYLE}</style></head>"
        f"<body><div class='bar'>SANDBOX — test mode, no real money moves</div>{body}</body></html>",
        status_code=status)


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def _with_session_id(url: str, session_id: str) -> str:
    """Stripe's convention: replace {CHECKOUT_SESSION_ID}, else add session_id to the query."""
    if "{CHECKOUT_SESSION_ID}" in url:
        return url.replace("{CHECKOUT_SESSION_ID}", session_id)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("session_id", session_id)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _message_page(title: str, message: str, status: int) -> HTMLResponse:
    return _page(title, f"<main><section><h1>{html.escape(title)}</h1>"
                        f"<p class='muted'>{html.escape(message)}</p></section></main>", status)


def register(app: FastAPI, store: Store) -> None:
    def checkout_form(session_id: str, error: str | None = None, status: int = 200) -> HTMLResponse:
        try:
            session = billing.live_checkout_session(store, session_id)
        except ApiError:
            return _message_page("Checkout not found", "This checkout link is not valid.", 404)
        if session["status"] == "expired":
            return _message_page("Checkout expired", "This checkout link has expired. Ask for a new one.", 410)
        if session["status"] == "complete":
            return _message_page("Already paid", "This checkout session has been paid.", 200)
        plan, price = PRICES[session["price_id"]]
        organization = store.organization(session["organization_id"])
        customer = store.customer(session["organization_id"])
        cancel = (f"<p class='muted'><a id='cancel-link' href='/sandbox/checkout/{html.escape(session_id)}/cancel'>"
                  f"← Cancel and go back</a></p>")
        error_html = f"<div class='error' role='alert'>{html.escape(error)}</div>" if error else ""
        body = f"""<main>
<section><p class='muted'>{html.escape(organization['name'] if organization else '')}</p>
<h1>Subscribe to {html.escape(plan.name)}</h1>
<div class='amount'>{_money(price.unit_amount)} <span class='muted'>per {price.interval}</span></div>
<p class='muted'>{html.escape(plan.description)}</p>
<p class='muted'>Billed to {html.escape(customer['email'] if customer else '')}</p>{cancel}</section>
<section><h1>Pay with card</h1>
<form method='post' action='/sandbox/checkout/{html.escape(session_id)}/pay'>
<label for='card'>Card number</label><input id='card' name='card_number' inputmode='numeric'
 autocomplete='off' placeholder='4242 4242 4242 4242' required>
<div class='row'><div><label for='exp'>Expiry (MM / YY)</label><input id='exp' name='expiry' placeholder='12 / 34'
 required></div><div><label for='cvc'>CVC</label><input id='cvc' name='cvc' placeholder='123' required></div></div>
<button type='submit'>Pay {_money(price.unit_amount)}</button>{error_html}
<p class='muted'>Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined.</p>
</form></section></main>"""
        return _page(f"Checkout — {plan.name}", body, status)

    @app.get("/sandbox/checkout/cancelled", include_in_schema=False)
    def checkout_cancelled() -> HTMLResponse:
        return _message_page("Checkout cancelled", "No payment was taken. You can close this page.", 200)

    @app.get("/sandbox/checkout/{session_id}", include_in_schema=False)
    def checkout_page(session_id: str) -> HTMLResponse:
        return checkout_form(session_id)

    @app.post("/sandbox/checkout/{session_id}/pay", include_in_schema=False)
    def checkout_pay(session_id: str, card_number: str = Form(""), expiry: str = Form(""),
                     cvc: str = Form("")) -> Response:
        try:
            success_url = billing.pay_checkout(store, session_id, card_number, expiry, cvc)
        except ApiError as error:
            if error.status == 404:
                return _message_page("Checkout not found", "This checkout link is not valid.", 404)
            return checkout_form(session_id, error.message, status=402 if error.status == 402 else error.status)
        target = success_url or f"/sandbox/checkout/{session_id}/success"
        return RedirectResponse(_with_session_id(target, session_id), status_code=303)

    @app.get("/sandbox/checkout/{session_id}/cancel", include_in_schema=False)
    def checkout_cancel(session_id: str) -> Response:
        session = billing.checkout_session(store, session_id)
        if session is None:
            return _message_page("Checkout not found", "This checkout link is not valid.", 404)
        if session["cancel_url"]:
            return RedirectResponse(session["cancel_url"], status_code=303)
        return _message_page("Checkout cancelled", "No payment was taken. You can close this page.", 200)

    @app.get("/sandbox/checkout/{session_id}/success", include_in_schema=False)
    def checkout_success(session_id: str) -> HTMLResponse:
        session = billing.checkout_session(store, session_id)
        if session is None:
            return _message_page("Checkout not found", "This checkout link is not valid.", 404)
        return _page("Payment received", f"""<main><section><h1>Payment received</h1>
<p class='muted'>The subscription is activated when Billing Desk processes this checkout session.</p>
<p>Checkout session id:</p><p><code id='session-id'>{html.escape(session_id)}</code></p></section></main>""")

    def portal(session_id: str, notice: str | None = None, error: str | None = None,
               status: int = 200) -> HTMLResponse:
        try:
            session = billing.live_portal_session(store, session_id)
        except ApiError as problem:
            return _message_page("Portal link unavailable", problem.message, problem.status)
        info = billing.customer_info(store, session["organization_id"])
        subscription = info["subscription"]
        plan_html = "<p class='muted'>No subscription.</p>"
        cancel_form = ""
        if subscription:
            ends = parse_iso(subscription["currentPeriodEnd"]).strftime("%d %b %Y")
            state = ("Cancels on " + ends) if subscription["cancelAtPeriodEnd"] else (
                "Renews on " + ends if subscription["status"] in billing.LIVE_STATUSES else subscription["status"])
            plan_html = (f"<p><b>{html.escape(subscription['planName'])}</b> — {_money(subscription['unitAmount'])} "
                         f"per {subscription['interval']}</p><p class='muted'>Status: "
                         f"{html.escape(subscription['status'])} · {html.escape(state)}</p>")
            if subscription["status"] in billing.LIVE_STATUSES and not subscription["cancelAtPeriodEnd"]:
                cancel_form = (f"<form method='post' action='/sandbox/portal/{html.escape(session_id)}/cancel'>"
                               "<button class='secondary' type='submit'>Cancel subscription</button></form>")
        card = (f"{html.escape((info['defaultCardBrand'] or '').title())} •••• {html.escape(info['defaultCardLast4'])}"
                if info["defaultCardLast4"] else "No card on file")
        rows = "".join(
            f"<tr><td>{parse_iso(row['created_at']).strftime('%d %b %Y')}</td><td>{html.escape(row['description'])}"
            f"</td><td>{_money(row['amount'])}</td><td>{html.escape(row['status'])}</td></tr>"
            for row in store.invoices(session["organization_id"]))
        notice_html = f"<div class='notice' role='status'>{html.escape(notice)}</div>" if notice else ""
        error_html = f"<div class='error' role='alert'>{html.escape(error)}</div>" if error else ""
        body = f"""<main><section>{notice_html}<p class='muted'>{html.escape(info['organizationName'])}</p>
<h1>Billing</h1><h2>Current plan</h2>{plan_html}{cancel_form}
<h2>Invoices</h2><table><tr><th>Date</th><th>Description</th><th>Amount</th><th>Status</th></tr>{rows}</table>
</section><section><h1>Payment method</h1><p id='card-on-file'>{card}</p>
<form method='post' action='/sandbox/portal/{html.escape(session_id)}/card'>
<label for='card'>New card number</label><input id='card' name='card_number' placeholder='4242 4242 4242 4242'
 required><label for='exp'>Expiry (MM / YY)</label><input id='exp' name='expiry' placeholder='12 / 34' required>
<button type='submit'>Replace card</button>{error_html}</form></section></main>"""
        return _page("Billing portal", body, status)

    @app.get("/sandbox/portal/{session_id}", include_in_schema=False)
    def portal_page(session_id: str, notice: str | None = None) -> HTMLResponse:
        return portal(session_id, notice=notice)

    @app.post("/sandbox/portal/{session_id}/card", include_in_schema=False)
    def portal_card(session_id: str, card_number: str = Form(""), expiry: str = Form("")) -> Response:
        try:
            notice = billing.portal_replace_card(store, session_id, card_number, expiry)
        except ApiError as error:
            return portal(session_id, error=error.message, status=error.status)
        return RedirectResponse(f"/sandbox/portal/{session_id}?{urlencode({'notice': notice})}", status_code=303)

    @app.post("/sandbox/portal/{session_id}/cancel", include_in_schema=False)
    def portal_cancel(session_id: str) -> Response:
        try:
            notice = billing.portal_cancel(store, session_id)
        except ApiError as error:
            return portal(session_id, error=error.message, status=error.status)
        return RedirectResponse(f"/sandbox/portal/{session_id}?{urlencode({'notice': notice})}", status_code=303)
