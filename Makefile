# atlas-sweeps: the commands a newcomer needs. Run as root on Debian/Ubuntu for the sandbox targets.
#   make demo   a real launch on the sandbox cluster: sweeps created, jobs submitted and finished, status shown
#   make test   the whole suite (unit + integration on the sandbox cluster), as CI runs it

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/atlas-sweeps
PYTHON ?= python3

.PHONY: install sandbox sandbox-down test test-openssh unit demo bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "python3's venv module is missing; installing python3-venv"; \
	  apt-get install -y -q python3-venv >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q python3-venv; }; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

sandbox: install
	$(CLI) sandbox up

sandbox-down: install
	$(CLI) sandbox down

# Unit and integration tests, in two phases: everything but the `serial` tests on 4 workers (a file's tests stay
# on one worker; most of the time is spent waiting for Slurm), then the `serial` ones alone (they stop sshd or hook
# the cluster user's shell: tests/integration/conftest.py says which and why). pytest's exit code 5 (nothing
# collected) is a failure in either phase, and so is a phase in which no integration test executed
# (tests/conftest.py checks ATLAS_REQUIRE_INTEGRATION).
PYTEST_PHASE = ATLAS_REQUIRE_INTEGRATION=1 $(VENV)/bin/pytest
NO_TESTS = if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; [ $$rc -eq 0 ] || exit $$rc

test: install
	$(CLI) sandbox up
	$(CLI) sandbox up --release trixie
	$(PYTEST_PHASE) -n 4 --dist loadfile -m "not serial"; rc=$$?; $(NO_TESTS)
	$(PYTEST_PHASE) -m serial tests/integration; rc=$$?; $(NO_TESTS)

# The integration suite again on the openssh transport (the sandbox's *-openssh profiles): one ControlMaster.
test-openssh: install
	$(CLI) sandbox up
	$(CLI) sandbox up --release trixie
	ATLAS_REQUIRE_INTEGRATION=1 ATLAS_TEST_TRANSPORT=openssh $(VENV)/bin/pytest tests/integration

unit: install
	$(VENV)/bin/pytest tests/unit tests/standin -q

# A real launch on the sandbox: two sweeps of configs/composite_grid.yml, then wait for the six runs and
# show the final table (exit 0 only when all six completed).
demo: install
	$(CLI) sandbox up
	cd configs && ../$(CLI) launch composite_grid --cluster sandbox --nodes 2
	$(CLI) status --wait --timeout 600

bench: install
	$(CLI) sandbox up
	$(PY) bench/launch.py
	$(PY) bench/status.py
	$(PY) bench/snapshot.py
	$(PY) bench/startup.py

lint: install
	$(VENV)/bin/ruff check atlas_sweeps tests bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
