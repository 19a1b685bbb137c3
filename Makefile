# The two README commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The real OPA evaluator is a test-only oracle; its metadata says Python >= 3.14 but it runs on 3.11.
OPA_ORACLE := opa-golib-python-bindings==0.4.4

.PHONY: run test venv venv-test system-deps lint typecheck pytest bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps --ignore-requires-python $(OPA_ORACLE)
	touch $@

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

# System packages the tests use: nginx (runtime filter end to end), chromium, chromium-driver and poppler
# (report and audit page checks), pango (WeasyPrint PDF). Installed only when missing.
system-deps:
	@bash scripts/system-deps.sh

# The webhook server for cluster eu-1 on https://127.0.0.1:8443: development certificates in var/tls
# (trust var/tls/ca.crt), SQLite audit in var/audit.db (migrated first), the default policy repo.
AUDIT_DB ?= sqlite:///./var/audit.db
run: venv
	mkdir -p var
	@echo "== The example's decisions (policyengine check examples/ --cluster eu-1); exit 1 = something is denied"
	-$(VENV)/bin/policyengine check examples/ --cluster eu-1
	@echo "== Serving the webhook and routing filter for eu-1 on https://127.0.0.1:8443 (Ctrl-C stops)"
	$(VENV)/bin/policyengine db upgrade --db $(AUDIT_DB)
	$(VENV)/bin/policyengine serve --dev-certs --cluster eu-1 --db $(AUDIT_DB) \
		--spool-dir var/spool --host 127.0.0.1 --port 8443

lint: venv-test
	$(VENV)/bin/ruff check policyengine tests bench
	$(VENV)/bin/mypy

pytest: venv-test system-deps
	$(VENV)/bin/pytest -n 2 --dist loadgroup -q

test: lint pytest

# Every benchmark, each printing its ratio to a baseline measured in the same run (docs/benchmarks.md).
bench: venv-test system-deps
	$(PY) bench/decide.py
	$(PY) bench/audit.py
	$(PY) bench/webhook.py
	$(PY) bench/authz.py
	$(PY) bench/opa.py
	$(PY) bench/scale.py

clean:
	rm -rf $(VENV) var
