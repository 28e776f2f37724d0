"""Hostile or mistaken inputs a console must refuse clearly: used by the client, service and page tests."""

HOSTILE_INPUTS: list[str] = [
    "", " ", "\t", "\n", "   \n  ", "x" * 10_000, "a" * 101,
    "org_abc123\x00", "org\x07abc", "org_abc123\nrm", "org abc123", " org_abc 123 ", "org_abc123\r\nX: y",
    "org_аbc123",  # Cyrillic a
    "org_abc１２３",  # full-width digits
    "ｏｒｇ_abc", "org_abc123\u200b", "org_abc\u202e321", "org_\u00e9t\u00e9",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "**bold**", "[link](javascript:alert(1))",
    "# heading", "`code`", "$x^2$", "> quote", "| table |",
    "'; DROP TABLE audit_events; --", "1 OR 1=1", "org_abc123' OR '1'='1", "\" OR \"\"=\"",
    "cus_123", "sub_123", "in_123", "bps_123", "cs_test_a1", "price_1", "prod_1",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<b>hi</b>", "vbscript:msgbox(1)",
    "file:///etc/passwd", "ftp://example.com", "//evil.example.com", "http://", "https://",
    "http:// example.com", "https://exa mple.com", "https://example.com/\nSet-Cookie: x",
    "../../etc/passwd", "%00", "%0d%0a", "{{7*7}}", "${jndi:ldap://x}", "😀", "org_😀", "\\", "org/abc",
    "org?abc=1", "org#abc", "org&org=x", "org.abc", "-org", "_org",
]
assert len(HOSTILE_INPUTS) >= 50

# One of each kind, for the browser, where every value costs a round trip through a real page: empty,
# whitespace, 10,000 characters, control characters, line breaks, look-alikes, HTML, markdown, SQL, wrong
# prefixes, javascript: and data: URLs, header injection, scheme-relative URLs.
BROWSER_SAMPLE: list[str] = [
    "", "   \n  ", "x" * 10_000, "org_abc123\x00", "org_abc123\nrm", "org abc123", "org_аbc123",
    "org_abc123\u200b", "<script>alert(1)</script>", "**bold**", "'; DROP TABLE audit_events; --", "cus_123",
    "javascript:alert(1)", "data:text/html,<b>hi</b>", "https://example.com/\nSet-Cookie: x", "//evil.example.com",
]
assert set(BROWSER_SAMPLE) <= set(HOSTILE_INPUTS)

# What an API's error text may carry that must never reach an audit row, a log or a screen (the part after the
# colon is what must be gone); the console's own ids, like the organization's, may stay.
SECRET_SHAPED_API_TEXT: dict[str, str] = {
    "No such checkout.session: cs_live_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ0123": "cs_live_a1B2c3D4e5F6g7H8i9J0k",
    "Open https://billing.stripe.com/p/session/live_YWNjdF8xTjRx to fix the card": "billing.stripe.com",
    "Invalid API key provided: bsk_live_0123456789abcdef0123456789abcdef": "0123456789abcdef0123456789abcdef",
    "Customer cus_Q1w2E3r4T5y6U7 has no default payment method": "cus_Q1w2E3r4T5y6U7",
    "Webhook secret whsec_5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c mismatch": "whsec_5f6a7b8c9d0e1f2a",
    "Session token 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 expired": "9f86d081884c7d659a2f",
    "Redirect to www.evil.example/login?next=/billing": "www.evil.example",
    "x" * 5000: "x" * 301,
}
