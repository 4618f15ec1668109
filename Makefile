# The two set-up commands of the README:
#   make demo   install what is needed, start the real stack, plugin, workers, dashboard, replay a sample
#   make test   install what is needed and run the whole test suite (pytest + go test)
# Both install into ./.venv unless a virtual environment is already active.

SHELL := /bin/bash
VENV ?= $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dnsentinel-installed

.PHONY: demo test test-cluster install system python go-test py-test clean

demo: install
	$(VENV)/bin/dnsentinel demo

test: install
	$(MAKE) py-test go-test

install: system python

system:
	deploy/install-system.sh

python: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

py-test:
	$(VENV)/bin/pytest

# The cluster profile's tests: brings the profile up (dnsentinel stack up --profile cluster) once,
# leaves it running; `dnsentinel stack down --profile cluster` stops it.
test-cluster: install
	$(VENV)/bin/pytest tests/cluster

go-test:
	cd coredns-plugin && go test ./...

clean:
	-$(VENV)/bin/dnsentinel stack down
	rm -rf .state
