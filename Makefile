# Two commands from a fresh clone: `make run` and `make test`.
# Both build the virtual environment on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint lock promtool bench bench-metrics bench-migrations bench-web bench-intake bench-responsiveness bench-search bench-parked bench-anonymity bench-channel bench-history chaos histories worker clean chromium dovecot

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Accord needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,embedded]'
	@rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(BIN)/accord run

# The browser tests drive Debian's chromium (Playwright's own download does not work here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium \
		|| echo "could not install chromium: the browser tests will skip (and fail under CI=true)"; }

# The IMAP tests run Debian's dovecot on a loopback port.
dovecot:
	@command -v dovecot >/dev/null 2>&1 || test -x /usr/sbin/dovecot || { \
		echo "installing Debian's dovecot-imapd for the IMAP tests"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q dovecot-imapd \
		|| echo "could not install dovecot-imapd: the IMAP tests will skip (and fail under CI=true)"; }

# The monitoring tests check the alert rules and Prometheus' config with Debian's promtool.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
		echo "installing Debian's prometheus (for promtool) for the monitoring tests"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends prometheus \
		|| echo "could not install prometheus: the promtool checks will skip (and fail under CI=true)"; }

# The suite in parallel (pytest-xdist), one worker per core; each worker has its own migrated
# template databases, Temporal servers and browser. Tests are handed out as workers free up
# (--dist load), the longest first (tests/conftest.py, LONGEST_FIRST). TEST_WORKERS=0 runs the
# suite in one process.
TEST_WORKERS ?= $(shell nproc)

test: $(STAMP) chromium dovecot promtool
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist load --durations=30

# After changing pyproject.toml's dependencies: resolve them afresh in a scratch environment and
# pin what was installed (the Docker image and make test both install these versions).
lock:
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet --upgrade pip
	$(VENV)-lock/bin/python -m pip install --quiet '.[embedded]'
	{ sed -n '1,2p' requirements.lock; $(VENV)-lock/bin/python -m pip freeze --exclude-editable | grep -v -i '^accord\b'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf $(VENV)-lock build

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/mypy --strict worker.py && $(BIN)/lint-imports

# Each benchmark prints its figures beside issue 17's goals; BENCH_ARGS=--results also records
# them in bench/results.md (a reduced run of each is part of make test: tests/project/test_benchmarks.py).
bench: $(STAMP)
	$(BIN)/python -m bench.lifecycle $(BENCH_ARGS)

bench-web: $(STAMP)
	$(BIN)/python -m bench.web $(BENCH_ARGS)

bench-intake: $(STAMP)
	$(BIN)/python -m bench.intake $(BENCH_ARGS)

bench-responsiveness: $(STAMP)
	$(BIN)/python -m bench.responsiveness

bench-search: $(STAMP)
	$(BIN)/python -m bench.search $(BENCH_ARGS)

# 50,000 disputes parked on their timers: worker and server RSS, timer lateness (long: hours).
bench-parked: $(STAMP)
	$(BIN)/python -m bench.parked $(BENCH_ARGS)

bench-anonymity: $(STAMP)
	$(BIN)/python -m bench.anonymity

# One /metrics scrape's database time with 2,000,000 audit entries (PostgreSQL on 127.0.0.1).
bench-metrics: $(STAMP)
	$(BIN)/python -m bench.metrics $(BENCH_ARGS)

# accord migrate from 0006 to head on 200,000 disputes and 2,000,000 audit entries while probes
# read and write them (PostgreSQL on 127.0.0.1): the upgrade's time and the probes it blocked.
bench-migrations: $(STAMP)
	$(BIN)/python -m bench.migrations $(BENCH_ARGS)

# 100,000 deal registrations imported with overlap detection (--database for PostgreSQL), and
# same-customer matching on the labelled set (issue 20).
bench-channel: $(STAMP)
	$(BIN)/python -m bench.channel_import $(BENCH_ARGS)
	$(BIN)/python -m bench.matching

bench-history: $(STAMP)
	$(BIN)/python -m bench.history

# The fault-injection suite: 200 disputes on a real stack while the worker is killed, the dev
# server restarted, mail and the database go away and hostile mail arrives (README, "Faults").
# CHAOS_ARGS passes options, e.g. CHAOS_ARGS="--database-url postgresql+psycopg://...".
chaos: $(STAMP)
	$(BIN)/python -m chaos $(CHAOS_ARGS)

# Regenerate tests/histories/*.json after a deliberate, patched workflow change.
histories: $(STAMP)
	ACCORD_RECORD_HISTORIES=1 $(BIN)/python -m pytest -q tests/workflows/test_dispute_paths.py tests/workflows/test_validators.py tests/workflows/test_remedy_stage.py tests/workflows/test_formal_review.py tests/rules/test_consistency.py tests/workflows/test_concurrency.py tests/workflows/test_citations.py tests/workflows/test_deadline_problems.py tests/workflows/test_exception.py

worker: $(STAMP)
	$(BIN)/python worker.py

clean:
	rm -rf $(VENV) state
