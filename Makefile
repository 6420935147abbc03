# Kefu: `make run` starts the product with demo data, `make test` runs the checks. Both use .venv/.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check

.PHONY: run test deps dev-deps browser services lint messages bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: requirements.txt | $(VENV)/bin/python
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.deps-dev: requirements.txt requirements-dev.txt $(VENV)/.deps
	$(PIP) install -r requirements-dev.txt
	touch $@

deps: $(VENV)/.deps
dev-deps: $(VENV)/.deps-dev

## Debian's Chromium and a CJK font for the browser tests (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "wenquanyi zen hei" || { \
	  echo "[browser] installing chromium and fonts-wqy-zenhei"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; }

services:
	@bash scripts/services.sh

run: deps
	@bash scripts/run.sh

test: dev-deps browser
	@KEFU_NEED_RABBITMQ=1 bash scripts/services.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) tests/security/pip_audit.py -r requirements.txt --cache-dir .run/pip-audit
	$(PY) -m pytest

lint: dev-deps
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

messages: deps
	$(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=tests --ignore=staticfiles
	msgattrib --clear-fuzzy --empty -o locale/zh_Hans/LC_MESSAGES/django.po locale/zh_Hans/LC_MESSAGES/django.po
	$(PY) scripts/po_fill.py

clean:
	rm -rf $(VENV) .run staticfiles .pytest_cache .ruff_cache
