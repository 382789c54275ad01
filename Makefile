# The two commands a newcomer needs: `make up` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up down call test check deps venv lock compiled pure asterisk-root bench clean

deps:
	@scripts/install-deps.sh

# The environment is the lock (scripts/lock.sh wrote it): exactly those releases, their hashes
# checked, nothing resolved here; then this checkout, editable, with no dependency of its own.
$(STAMP): pyproject.toml requirements-dev.lock
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "make: installing the locked Python packages into $(VENV) (log: $(VENV)/pip.log)"
	@$(PY) -m pip install --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock \
	    > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e . \
	    >> $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -m pip check >> $(VENV)/pip.log 2>&1 || { echo "make: requirements-dev.lock lacks what pyproject.toml asks for (make lock KEEP=1):"; tail -n 5 $(VENV)/pip.log; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

## Move the lock to the newest releases pyproject.toml allows, on purpose, then install and check
## them (commit the lock with what it changed): make lock; `make lock KEEP=1` changes only what
## pyproject.toml's own edits need.
lock: venv
	@scripts/lock.sh $(if $(KEEP),--keep)
	@$(MAKE) --no-print-directory venv check
	@git diff --stat -- 'requirements*.lock' 2>/dev/null || true

## The call path compiled with mypyc (setup.py lists the modules; C extensions beside the
## sources), rebuilt whenever a file of the packages it is compiled from changes. `make pure`
## removes it, and `make test PURE=1` tests the sources as they are.
COMPILED := $(VENV)/.compiled
# The packages of setup.py's COMPILED list (read by harness/compiled.py, the tests' guard too).
COMPILED_DIRS := $(or $(shell $(PYTHON) -m harness.compiled dirs 2>/dev/null),\
                 $(error make: cannot read setup.py's COMPILED list with $(PYTHON) (Python 3.11 is required)))
COMPILED_FROM := setup.py $(foreach dir,$(COMPILED_DIRS),$(wildcard $(dir)/*.py))
BUILD := $(if $(PURE),pure,compiled)

$(COMPILED): $(STAMP) $(COMPILED_FROM)
	@echo "make: compiling the call path with mypyc (log: $(VENV)/mypyc.log)"
	@find $(COMPILED_DIRS) -name '*.so' -delete  # none left over from a module no longer listed
	@HOTLINE_COMPILE=1 $(PY) setup.py build_ext --inplace > $(VENV)/mypyc.log 2>&1 || { tail -n 40 $(VENV)/mypyc.log; exit 1; }
	@find $(COMPILED_DIRS) -name '*.so' -exec touch {} +  # copied from build/ with their old times
	@touch $@

compiled: $(COMPILED)

pure:
	@rm -f $(COMPILED)
	@find $(COMPILED_DIRS) -name '*.so' -delete

## The Debian sid root that runs Asterisk 22, built once and cached outside the checkout.
asterisk-root: deps
	@scripts/asterisk-root.sh >/dev/null

## Run the hotline on loopback with demo data: Redis, demo tier tables, hotline serve,
## Asterisk 22 and two SIPp agents, all in the background.
up: deps venv $(BUILD) asterisk-root
	@$(PY) -m harness.devstack up

## Dial the hotline as CALLER, pressing DTMF: make call CALLER=13800000001 DTMF=1
CALLER ?= 13800000004
DTMF ?=
call: venv
	@$(PY) -m harness.devstack call --caller '$(CALLER)' --dtmf '$(DTMF)' $(if $(SURVEY),--survey '$(SURVEY)')

## Stop what `make up` started.
down: venv
	@$(PY) -m harness.devstack down

## Everything the tests need is installed and started by the tests themselves.
test: deps venv $(BUILD) asterisk-root check
	@$(PY) -m pytest -q

## Lint, types, the layer contract (pyproject's [tool.importlinter]), and the shipped flows
## with their prompts checked against the sid root's sounds when it is there.
check: venv
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@set -o pipefail; $(VENV)/bin/lint-imports --no-cache | tail -n 4
	@HOTLINE_SOUND_DIRS="$$($(PY) -m harness.asterisk sound-dirs)" $(VENV)/bin/hotline flows validate

bench: deps venv $(BUILD) asterisk-root
	@$(PY) -m bench.bench_tiers
	@$(PY) -m bench.bench_agi
	@$(PY) -m bench.bench_e2e
	@$(PY) -m bench.bench_sms
	@$(PY) -m bench.bench_records
	@$(PY) -m bench.bench_kpis
	@$(PY) -m bench.bench_whatif
	@$(PY) -m bench.bench_hardening
	@$(PY) -m bench.bench_abuse
	@$(PY) -m bench.bench_failover

clean: down pure
	rm -rf .run build
