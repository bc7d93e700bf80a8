# Everyday verbs. Everything a fresh machine needs is installed from here.
SHELL := /bin/bash
# A Python 3.13 that really runs (a pyenv shim may exist without resolving).
PY313 := $(shell for p in $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13 $$(command -v python3.13); do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV := .venv
TOOLS := .jobkit/venvs
MINISTACK_VERSION := 1.5.33
SAM_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
PYTEST := $(VENV)/bin/pytest

.PHONY: setup up down demo test unit integration chaos bench lint fmt clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PY313)" || { echo "python3.13 not found (pyenv install 3.13.0)"; exit 1; }
	$(PY313) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# MiniStack pins its own botocore and runs the functions with its own interpreter, so it
# gets its own Python 3.13 venv (the template's runtime).
$(TOOLS)/ministack/.installed:
	$(PY313) -m venv $(TOOLS)/ministack
	$(TOOLS)/ministack/bin/pip install --quiet --disable-pip-version-check "ministack[full]==$(MINISTACK_VERSION)"
	touch $@

$(TOOLS)/sam/.installed:
	$(PY313) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet --disable-pip-version-check "aws-sam-cli==$(SAM_VERSION)"
	touch $@

# checkov pins much of its own world: its own venv too.
$(TOOLS)/checkov/.installed:
	$(PY313) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet --disable-pip-version-check "checkov==$(CHECKOV_VERSION)"
	touch $@

# Headless Chromium for the job-health page test (Debian's package; root on these machines).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

setup: $(VENV)/.installed $(TOOLS)/ministack/.installed $(TOOLS)/sam/.installed $(CHROMIUM)

up: setup
	$(VENV)/bin/jobkit up

down:
	@if [ -x $(VENV)/bin/jobkit ]; then $(VENV)/bin/jobkit down; fi

demo: setup
	$(VENV)/bin/jobkit demo

# The template's tests run SAM's translator from the SAM CLI's venv.
unit: $(VENV)/.installed $(TOOLS)/sam/.installed
	$(PYTEST) -q tests/unit

# Integration tests bring the local stack up (or reuse a running one) and stop what they start.
integration: setup
	$(PYTEST) -q tests/integration

test: setup
	$(PYTEST) -q tests/unit tests/integration

# The chaos test at full size: 25 clients x 200 records (make test runs 20 x 50).
chaos: setup
	JOBKIT_CHAOS_CLIENTS=25 JOBKIT_CHAOS_RECORDS=200 $(PYTEST) -q -s -p no:timeout \
		tests/integration/test_chaos_on_stack.py

# Requests per record and cold starts on the local stack; writes bench/results.json.
bench: setup
	$(VENV)/bin/python -m bench.run

# cfn-lint with its informational rules (-c I) too; no rule is ignored.
lint: $(VENV)/.installed $(TOOLS)/sam/.installed $(TOOLS)/checkov/.installed
	$(TOOLS)/sam/bin/cfn-lint -c I -- template.yaml
	$(TOOLS)/checkov/bin/checkov -f template.yaml --config-file .checkov.yaml --skip-download
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/common/jobkit functions cli/jobkit_cli local/external_system bench tests
	@# No block above cyclomatic complexity 10 (radon's grade C or worse; it counts the
	@# conditions of comprehensions, which ruff's C901 does not).
	@too_complex="$$($(VENV)/bin/radon cc --min C --show-complexity layers functions cli local bench)"; \
		if [ -n "$$too_complex" ]; then echo "$$too_complex"; echo "radon: above complexity 10"; exit 1; fi

fmt: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: down
	rm -rf .aws-sam .jobkit $(VENV)
