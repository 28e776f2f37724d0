# Billing Desk: `make run` starts the console (on the embedded sandbox unless an API is configured);
# `make test` installs what the tests need (Debian's chromium included) and runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# Extra `streamlit run` options (`python -m ui.serve` is `streamlit run app.py` that starts the console at once), e.g. STREAMLIT_FLAGS="--server.fileWatcherType auto" to reload on save.
STREAMLIT_FLAGS ?=
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test sandbox bench load cluster clean

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(CHROMIUM):
	@echo "Installing Debian's chromium for the browser tests..."
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null

# PostgreSQL's server for the store tests (tests/support/postgres.py starts a throwaway one); Debian keeps initdb
# under a versioned folder, so the target is whichever is there, or a name that never exists when none is.
POSTGRES_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) install-postgresql)

$(POSTGRES_INITDB):
	@echo "Installing Debian's postgresql for the store tests..."
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null

# nginx in front of the replicas (tests/e2e/test_nginx.py, test_cluster.py, `make cluster`).
NGINX := /usr/sbin/nginx

$(NGINX):
	@echo "Installing Debian's nginx for the replica tests..."
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq; \
	  if apt-cache policy nginx-light | grep -q 'Candidate: [0-9]'; then PACKAGE=nginx-light; else PACKAGE=nginx; fi; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$PACKAGE >/dev/null

# With no API configured (PAYMENTS_API_URL or .streamlit/secrets.toml), `make run` asks for the sandbox.
SANDBOX_FLAG := $(if $(or $(PAYMENTS_API_URL),$(wildcard .streamlit/secrets.toml)),,BILLING_DESK_SANDBOX=1)

run: $(VENV)/.runtime
	$(SANDBOX_FLAG) $(PY) -m ui.serve --server.address 127.0.0.1 --server.port $(PORT) $(STREAMLIT_FLAGS)

sandbox: $(VENV)/.runtime
	$(PY) -m sandbox

# The test suite's OpenID Connect provider (tests/oidc): installed from its committed lock file.
OIDC_MODULES := tests/oidc/node_modules/.package-lock.json
$(OIDC_MODULES): tests/oidc/package-lock.json
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error

test: $(VENV)/.dev $(CHROMIUM) $(POSTGRES_INITDB) $(NGINX) $(OIDC_MODULES)
	$(PY) -m pytest

bench: $(VENV)/.dev $(CHROMIUM)
	$(PY) -m bench

load: $(VENV)/.dev $(CHROMIUM)
	$(PY) -m pytest -m load -s tests/e2e/test_load.py

# The production shape on this machine, in the foreground: PostgreSQL (.data/cluster/postgres), migrations, the
# sandbox API, two console replicas and nginx on CLUSTER_PORT. Ctrl-C stops everything.
CLUSTER_PORT ?= 8080
cluster: $(VENV)/.runtime $(POSTGRES_INITDB) $(NGINX)
	$(PY) -m deploy.cluster --port $(CLUSTER_PORT)

clean:
	rm -rf $(VENV) .data .pytest_cache
