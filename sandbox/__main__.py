"""`python -m sandbox`: serve the Payments API twin on loopback until interrupted."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from .app import create_app
from .mailbox import Mailbox
from .settings import DEFAULT_DB, DIALECTS, SandboxSettings, new_test_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--api-key", default=os.environ.get("SANDBOX_API_KEY"),
                        help="bsk_test_ + 32 hex characters; a new one is made and printed if omitted")
    parser.add_argument("--db", default=str(DEFAULT_DB), help="SQLite file holding the sandbox's state")
    parser.add_argument("--rate-limit", type=int, default=1000, help="requests per minute per key")
    parser.add_argument("--rate-burst", type=int, default=None, help="bucket size (default: one minute's worth)")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every API call")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of API calls answered with a 500")
    parser.add_argument("--organizations", type=int, default=74, help="organizations seeded on first start")
    parser.add_argument("--dialect", default=os.environ.get("SANDBOX_DIALECT") or "camel", choices=DIALECTS,
                        help="answer shapes: camel (docs/payments-api.md) or stripe (the same state, Stripe-style)")
    parser.add_argument("--smtp-port", type=int, default=0,
                        help="the mailbox's SMTP server (default 0: any free port, printed; -1: no mailbox)")
    args = parser.parse_args(argv)
    try:
        settings = SandboxSettings(api_key=args.api_key or new_test_key(), db_path=args.db,
                                   rate_limit=args.rate_limit, rate_burst=args.rate_burst,
                                   latency_ms=args.latency_ms, error_rate=args.error_rate,
                                   organizations=args.organizations, dialect=args.dialect)
    except ValueError as problem:
        parser.error(str(problem))
    print(f"Payments sandbox (test mode) on http://{args.host}:{args.port}/api/v1", flush=True)
    print(f"API key: {settings.api_key}", flush=True)
    print(f"State: {args.db} · Dialect: {args.dialect} · OpenAPI: http://{args.host}:{args.port}/openapi.json",
          flush=True)
    app = create_app(settings)
    mailbox = Mailbox(app.state.store, args.host, args.smtp_port).start() if args.smtp_port >= 0 else None
    if mailbox is not None:
        print(f"Mailbox: SMTP on {args.host}:{mailbox.port}, read at http://{args.host}:{args.port}/sandbox/mailbox",
              flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if mailbox is not None:
            mailbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
