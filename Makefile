# Graph Functions: the two set-up commands are `make run` and `make test` (see README.md).
# Everything installs into the repository (.venv, node_modules) and local state lives in .local/.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# checkov (tests/infra) pins dozens of packages: it gets its own venv, never the app's.
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
PYTEST_ARGS ?=
# Parallel workers (pytest-xdist) for the suites that wait on processes and sockets: each worker starts its
# own local tenant, Azurite and app hosts on its own ports; --dist loadfile keeps a module on one worker, in
# order, so module fixtures are built once. PYTEST_WORKERS=0 runs in this process (one test, a debugger).
# 5 on two cores: the fault modules spend much of their time waiting on timeouts and latencies, and with 4
# workers there were stretches where all four waited (50 of 560 core-seconds idle); a fifth keeps the cores
# busy (13 idle) for the cost of one more collection.
PYTEST_WORKERS ?= 5
XDIST := -n $(PYTEST_WORKERS) --dist loadfile

CHROMIUM := /usr/bin/chromium-headless-shell

# A shell may set PYTHONDONTWRITEBYTECODE: every process of the suite (pytest workers, app hosts, local
# tenants) then compiled, and pytest assertion-rewrote, the same sources again, 17 CPU-s per worker just to
# collect. Bytecode goes to __pycache__ (ignored by git).
export PYTHONDONTWRITEBYTECODE :=

.PHONY: run test collect lint typecheck unit devhost-tests emulator-tests browser-tests integration fuzz bench clean install \
	check-chromium infra-tests

install: $(STAMP) $(NODE_STAMP) $(TOOLS_STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

$(TOOLS_STAMP): requirements-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $(TOOLS_STAMP)

$(NODE_STAMP): package.json package-lock.json scripts/build_spa.py
	npm ci --no-audit --no-fund --loglevel=error
	# The single-page client's copy of @azure/msal-browser (served at /spa/vendor/, not committed).
	$(PYTHON) -m scripts.build_spa
	touch $(NODE_STAMP)

## Run the app locally against the local tenant (Azurite + emulator + devhost, or `func start` if present).
run: install
	$(PY) -m scripts.run_local

## Every check CI runs: lint, types, and all tests (unit, devhost, local tenant, browser, integration, fuzz).
test: check-chromium install lint typecheck collect
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# One collection before the workers start (beside lint and types under make -j): it writes the compiled and
# assertion-rewritten tests once, which each worker then reads (a worker's collection: 17 -> 6 CPU-s).
collect: $(STAMP)
	$(PY) -m pytest --collect-only -q -p no:cacheprovider >/dev/null

## tests/browser drive Debian's Chromium headless shell: installed when missing (as root); otherwise
## `make test` fails with the command to run (the browser tests are never skipped).
check-chromium:
	@test -x $(CHROMIUM) || { echo "make test: installing Debian's chromium-headless-shell for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null; } \
		|| { echo "make test: Chromium's headless shell is missing at $(CHROMIUM) and could not be installed." \
		"Install the Debian package: apt-get install chromium-headless-shell" >&2; exit 1; }

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

devhost-tests: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest $(XDIST) tests/devhost $(PYTEST_ARGS)

emulator-tests: $(STAMP)
	$(PY) -m pytest $(XDIST) tests/emulator $(PYTEST_ARGS)

browser-tests: check-chromium install
	$(PY) -m pytest $(XDIST) tests/browser $(PYTEST_ARGS)

## Offline checks of infra/ (Bicep parse, checkov, app settings and roles against the code, azure.yaml).
infra-tests: $(STAMP) $(TOOLS_STAMP)
	$(PY) -m pytest tests/infra $(PYTEST_ARGS)

integration: install
	$(PY) -m pytest $(XDIST) tests/integration $(PYTEST_ARGS)

fuzz: install
	$(PY) -m pytest tests/fuzz $(PYTEST_ARGS)

## Benchmarks write JSON under bench/results/.
bench: install
	$(PY) -m bench.run_all

clean:
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache bench/results
