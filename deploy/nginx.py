"""nginx in front of N console replicas: renders deploy/nginx/billing-desk.conf.template.

`site_config(...)` is the http-level site an operator drops into /etc/nginx/conf.d/ (upstream, maps, server);
`standalone_config(...)` wraps a site into a complete nginx.conf that runs in the foreground from one folder
(`nginx -p PREFIX -c PREFIX/nginx.conf`: the tests and `make cluster`). The Content-Security-Policy is built here,
with the hash of Streamlit's one inline script read from the installed Streamlit, so an upgrade that changes that
script changes the policy with it instead of silently breaking the page.

    python -m deploy.nginx --listen 443 --replica 10.0.0.11:8501 --replica 10.0.0.12:8501 \
        --tls-cert /etc/ssl/desk.pem --tls-key /etc/ssl/private/desk.key --server-name desk.example.com
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "billing-desk.conf.template"
_PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)  # a script element with no attributes


def replica_name(index: int) -> str:
    """The name the X-Billing-Desk-Replica header gives the replica at `index` (0-based) of `replicas`."""
    return f"replica-{index + 1}"


def streamlit_index_html() -> Path:
    spec = find_spec("streamlit")
    if spec is None or spec.origin is None:
        raise RuntimeError("Streamlit isn't installed here: the policy needs its index.html (make run installs it)")
    return Path(spec.origin).parent / "static" / "index.html"


def inline_script_hashes(index_html: Path | None = None) -> list[str]:
    """`'sha256-…'` sources for the inline scripts of Streamlit's index.html (one in 1.67: `window.prerenderReady
    = false`, which tells prerender services when the page is ready; harmless, but refused it is a console error
    on every page load)."""
    html = (index_html or streamlit_index_html()).read_text(encoding="utf-8")
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
            for body in _INLINE_SCRIPT.findall(html)]


def content_security_policy(index_html: Path | None = None) -> str:
    """The policy the console works under, every page and both sign-in modes (docs/security.md says why each
    source is there)."""
    directives = {
        # Everything else (images, the page icon under /media/, manifests, frames, workers) from the console only.
        "default-src": ["'self'"],
        # The console's own scripts, the sign-in cookie script included (static/sign-in-cookie.js), and
        # Streamlit's one inline script by its hash. No 'unsafe-inline', no 'unsafe-eval' (Vega-Lite charts draw
        # with Vega's expression interpreter, not eval). 'wasm-unsafe-eval' lets the protobuf decoder's long.js
        # compile its 40-byte WebAssembly helper for 64-bit arithmetic (it falls back to plain JavaScript when
        # refused, but every page load then reports a violation); it allows WebAssembly only, never eval() or
        # new Function().
        "script-src": ["'self'", "'wasm-unsafe-eval'", *inline_script_hashes(index_html)],
        # Streamlit styles its components at run time (Emotion writes <style> elements, and style attributes).
        "style-src": ["'self'", "'unsafe-inline'"],
        # Streamlit's stylesheet embeds one font as a data: URL.
        "font-src": ["'self'", "data:"],
        # The WebSocket (/_stcore/stream) and Streamlit's own fetches, same origin only ('self' covers ws/wss).
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def _split_address(replica: str) -> tuple[str, str]:
    if replica.startswith("unix:"):
        return replica, ""
    host, separator, port = replica.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise ValueError(f"a replica is host:port (or unix:/path), not {replica!r}")
    return host.strip("[]"), port


def _upstream_addresses(replica: str) -> list[str]:
    """How $upstream_addr will spell this replica: nginx resolves a host name when it loads the configuration, so
    a name maps to each of its addresses now (re-render after changing DNS)."""
    host, port = _split_address(replica)
    if not port:
        return [host]
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        addresses = sorted({ipaddress.ip_address(info[4][0]) for info in found}, key=str)
    return [f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}" for address in addresses]


def _indent(lines: Sequence[str], spaces: int = 4) -> str:
    return "\n".join(" " * spaces + line if line else "" for line in lines)


def site_config(*, listen: int, replicas: Sequence[str], tls_cert: Path | None = None, tls_key: Path | None = None,
                server_name: str = "_", http_redirect_port: int | None = 80, secure_cookies: bool | None = None,
                listen_address: str | None = None) -> str:
    """The http-level nginx configuration for `replicas` (each `host:port`) served on port `listen`.

    With `tls_cert` and `tls_key` the server speaks TLS, sends HSTS, and a second server on
    `http_redirect_port` (None: none) sends plain http to https. `secure_cookies`: mark Streamlit's cookies Secure
    (default: always; browsers accept Secure cookies over plain http only from localhost and 127.0.0.1, which is
    the only place the console may be served without TLS). `listen_address`: e.g. "127.0.0.1" (default: every
    address).
    """
    if not replicas:
        raise ValueError("at least one replica")
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("TLS needs both a certificate and its key")
    if not re.fullmatch(r"[A-Za-z0-9.*_-]+( [A-Za-z0-9.*_-]+)*", server_name):
        raise ValueError(f"not a server name: {server_name!r}")
    tls = tls_cert is not None
    secure = True if secure_cookies is None else secure_cookies
    bind = f"{listen_address}:" if listen_address else ""
    servers, names = [], []
    for index, replica in enumerate(replicas):
        _split_address(replica)
        servers.append(f"server {replica} max_fails=2 fail_timeout=10s;  # {replica_name(index)}")
        for address in _upstream_addresses(replica):
            names.append(f'"~(^|, ){re.escape(address)}$" {replica_name(index)};')
    if tls:
        listen_lines = [f"listen {bind}{listen} ssl;"]
        tls_lines = [f"ssl_certificate {Path(tls_cert).resolve()};", f"ssl_certificate_key {Path(tls_key).resolve()};",
                     "ssl_protocols TLSv1.2 TLSv1.3;", "ssl_prefer_server_ciphers off;",
                     "ssl_session_cache shared:billing_desk_tls:10m;", "ssl_session_timeout 1d;",
                     "ssl_session_tickets off;",
                     "# Browsers that have seen the console over https never try plain http again (a year).",
                     'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;', ""]
    else:
        listen_lines = [f"listen {bind}{listen};"]
        tls_lines = []
    redirect = ""
    if tls and http_redirect_port is not None:
        redirect = "\n" + "\n".join([
            "# Plain http: straight to https (nothing is served over it).",
            "server {",
            f"    listen {bind}{http_redirect_port};",
            f"    server_name {server_name};",
            "    server_tokens off;",
            f"    return 301 https://$host{'' if listen == 443 else f':{listen}'}$request_uri;",
            "}"]) + "\n"
    values = {
        "route_cookie_secure": "; Secure" if tls else "",
        "replica_names": _indent(names),
        "upstream_servers": _indent(servers),
        "http_redirect_server": redirect,
        "listen": _indent(listen_lines),
        "server_name": server_name,
        "tls": _indent(tls_lines),
        "content_security_policy": content_security_policy(),
        "cookie_flags": "secure samesite=lax" if secure else "samesite=lax",
    }
    return _fill(TEMPLATE.read_text(encoding="utf-8"), values)


def _fill(template: str, values: dict[str, str]) -> str:
    missing = set(_PLACEHOLDER.findall(template)) - set(values)
    if missing:
        raise KeyError(f"no value for {sorted(missing)} in {TEMPLATE.name}")
    return _PLACEHOLDER.sub(lambda found: values[found.group(1)], template)


def standalone_config(*, prefix: Path, site: str, user: str | None = None, worker_processes: int = 1) -> str:
    """A complete nginx.conf that runs `site` in the foreground with everything it writes under `prefix`:
    `nginx -p PREFIX -c PREFIX/nginx.conf` (the folder must exist; nginx makes the temp folders in it).

    `user`: who the worker processes run as when nginx is started by root (default: root itself, because a
    folder under a private temporary directory can't be entered by nobody or www-data; a production install
    uses Debian's own nginx.conf, whose workers run as www-data). Ignored when not started by root.
    """
    prefix = Path(prefix).resolve()
    lines = []
    if os.geteuid() == 0:
        lines.append(f"user {user or 'root'};")
    lines += [
        "daemon off;",
        "master_process on;",
        f"worker_processes {worker_processes};",
        "# On reload or graceful stop, old workers close what is still open (WebSockets live for hours) after 10 s;",
        "# the browser reconnects at once, to the same replica.",
        "worker_shutdown_timeout 10s;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'error.log'} notice;",
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
        "http {",
        "    include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else _inline_types(),
        "    default_type application/octet-stream;",
        f"    access_log {prefix / 'access.log'};",
        f"    client_body_temp_path {prefix / 'client_body_temp'};",
        f"    proxy_temp_path {prefix / 'proxy_temp'};",
        f"    fastcgi_temp_path {prefix / 'fastcgi_temp'};",
        f"    uwsgi_temp_path {prefix / 'uwsgi_temp'};",
        f"    scgi_temp_path {prefix / 'scgi_temp'};",
        "    sendfile on;",
        "    tcp_nopush on;",
        "    keepalive_timeout 65;",
        "",
        _indent(site.rstrip("\n").splitlines()),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _inline_types() -> str:
    return ("    types { text/html html; text/css css; text/javascript js mjs; application/json json; image/png png; "
            "image/svg+xml svg; font/woff2 woff2; }")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.nginx",
                                     description="Print the nginx site for Billing Desk's replicas "
                                                 "(for /etc/nginx/conf.d/).")
    parser.add_argument("--listen", type=int, required=True, help="the port people connect to (443 with TLS)")
    parser.add_argument("--replica", action="append", required=True, metavar="HOST:PORT",
                        help="a console replica (repeat for each)")
    parser.add_argument("--tls-cert", type=Path, help="certificate chain (PEM)")
    parser.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    parser.add_argument("--server-name", default="_", help="the console's host name, e.g. desk.example.com")
    parser.add_argument("--http-redirect-port", type=int, default=80,
                        help="with TLS: the plain-http port that redirects to https (default 80; 0 for none)")
    options = parser.parse_args(argv)
    if (options.tls_cert is None) != (options.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    try:
        print(site_config(listen=options.listen, replicas=options.replica, tls_cert=options.tls_cert,
                          tls_key=options.tls_key, server_name=options.server_name,
                          http_redirect_port=options.http_redirect_port or None), end="")
    except (ValueError, OSError) as problem:
        parser.error(str(problem))


if __name__ == "__main__":
    main()
