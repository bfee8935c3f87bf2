# Two commands on a fresh machine:  make run  (gateway + emulators, local)   make test  (whole suite)
# Python 3.13 is what the app runs on in Azure (infra/ sets it), so the venv, the local host and the tests use it
# too: python3.13 on PATH, else the newest pyenv 3.13.x, else stop with a message. `make PYTHON=/path/python3.13`
# overrides the search.
# (A pyenv shim named python3.13 can sit on PATH without working, so each candidate must actually run 3.13.)
PY313_CHECK := -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'
# Only `make PYTHON=...` overrides the search; an exported PYTHON (often another version) does not.
ifneq ($(origin PYTHON),command line)
PYTHON := $(shell for p in "$$(command -v python3.13)" $$(ls -d $(HOME)/.pyenv/versions/3.13.*/bin/python3.13 \
	2>/dev/null | sort -rV); do [ -n "$$p" ] && "$$p" $(PY313_CHECK) 2>/dev/null && { echo "$$p"; break; }; done)
endif
VENV := .venv
PY := $(VENV)/bin/python
# The stamp names the Python line: a venv made by an earlier checkout (e.g. 3.11) has no such stamp, so the
# recipe runs and recreates it.
DEPS_STAMP := $(VENV)/.deps-py313

.PHONY: run test deps clean

# `make checkov`: the offline Bicep hardening scan (its own venv); `make test` runs it too, as a test.
include infra/checkov.mk

$(DEPS_STAMP): requirements.txt requirements-dev.txt requirements-embeddings.txt
	@test -n "$(PYTHON)" || { echo "error: Python 3.13 not found (looked for python3.13 on PATH and" \
		"~/.pyenv/versions/3.13.*/bin/python3.13). Install it (e.g. 'pyenv install 3.13') or run" \
		"'make PYTHON=/path/to/python3.13 ...'." >&2; exit 1; }
	@$(PYTHON) $(PY313_CHECK) || { \
		echo "error: PYTHON=$(PYTHON) is not Python 3.13" >&2; exit 1; }
	@if ! $(PY) $(PY313_CHECK) 2>/dev/null; then \
		echo "creating $(VENV) with $(PYTHON)"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-embeddings.txt
	touch $@

# `npm ci` first empties node_modules: through a symlinked dev/node_modules (a worktree sharing another checkout's
# install) it would wipe that install and leave a private copy here, so a symlink is left alone.
dev/node_modules/.package-lock.json: dev/package.json dev/package-lock.json
	@if [ -L dev/node_modules ]; then echo "dev/node_modules is a symlink: not reinstalling through it"; \
	else cd dev && npm ci --no-audit --no-fund --loglevel=error; fi

deps: $(DEPS_STAMP) dev/node_modules/.package-lock.json

run: deps
	$(PY) -m dev.run

test: deps $(CHECKOV_VENV)/.checkov-$(CHECKOV_VERSION)
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) dev/node_modules .local .pytest_cache
