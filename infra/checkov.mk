# `make checkov`: offline checkov scan of infra/ that fails on any finding not justified
# inline in the Bicep (infra/checkov_gate.py, docs/deploy.md "Hardening checks").
# checkov lives in its own virtualenv: ~270 MB / ~100 packages with its own pins, kept out
# of the app's and the tests' environments. Include from the Makefile: include infra/checkov.mk
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30

.PHONY: checkov

$(CHECKOV_VENV)/.checkov-$(CHECKOV_VERSION):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $@

checkov: $(CHECKOV_VENV)/.checkov-$(CHECKOV_VERSION)
	$(CHECKOV_VENV)/bin/python infra/checkov_gate.py --checkov $(CHECKOV_VENV)/bin/checkov --timeout 600
