# Two commands on a fresh machine:  make run  (gateway + emulators, local)   make test  (whole suite)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test deps clean

$(VENV)/.deps: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

dev/node_modules/.package-lock.json: dev/package.json dev/package-lock.json
	cd dev && npm ci --no-audit --no-fund --loglevel=error

deps: $(VENV)/.deps dev/node_modules/.package-lock.json

run: deps
	$(PY) -m dev.run

test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) dev/node_modules .local .pytest_cache
