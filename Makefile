# The Makefile is the interface: `make help` lists every target. Every target that runs Python
# depends on the virtualenv stamp, so a fresh clone needs nothing but python3 and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt whenever the declared or the pinned dependencies change.
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.DEFAULT_GOAL := help
.PHONY: help install servers generate check lint test golden serve update-spec bench fuzz

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The generated project is installed editable beside the toolchain, as an application would
# install it ("compat" mode puts its folder on sys.path, so mypy finds it like any package).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# Pinned by constraints.txt: another black or datamodel-code-generator would generate
	# different bytes, and `make check` would then fail on an untouched spec.
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt \
		-e '.[dev]' -e './generated[server,redis,postgres,metrics,tracing,django,flask]' --config-settings editable_mode=compat
	touch $@

install: $(STAMP) ## Create .venv with the pinned dependencies

generate: $(STAMP) ## Regenerate the generated/ project from spec/webhooks.json
	$(BIN)/python -m codegen generate

check: $(STAMP) ## Fail with a diff when generated/ is not what the generator makes now
	$(BIN)/python -m codegen check

lint: $(STAMP) ## ruff over codegen/, generated/, tests/ and benchmarks/; mypy --strict over codegen/ and generated/
	$(BIN)/ruff check codegen generated tests benchmarks
	$(BIN)/mypy codegen generated

# The dedupe and inbox tests start a real redis-server and a real PostgreSQL on 127.0.0.1
# (no fakes). Each is checked on its own (a machine may have one and lack the other) and only
# what is missing is installed: as root with apt-get (CI, a fresh Debian or Ubuntu machine)
# from Debian's packages; elsewhere one line says what to install instead of letting the
# tests fail one by one. Debian keeps PostgreSQL's programs in /usr/lib/postgresql/<version>/bin.
# SERVERS_DRY_RUN=1 prints what would be installed and installs nothing (tests/test_makefile.py).
PG_BIN_GLOB ?= /usr/lib/postgresql/*/bin
SERVERS_DRY_RUN ?=
servers: ## Install redis-server and PostgreSQL for the tests, each only when it is missing
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	{ command -v initdb >/dev/null || ls $(PG_BIN_GLOB)/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  if [ -n "$(SERVERS_DRY_RUN)" ]; then echo "would install:$$missing"; exit 0; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "the tests need$$missing: install it (Debian: sudo apt-get install$$missing; macOS: brew install$$missing)"; exit 1; \
	fi

# The suite runs on every core (pytest-xdist; work-stealing, since a few tests take far longer
# than the rest), with one worker more than there are cores to use the time tests spend
# waiting (tests/conftest.py). PYTEST_ARGS adds to it, e.g. PYTEST_ARGS="-n 0 -k dedupe".
PYTEST_ARGS ?=
test: check lint servers ## check + lint + the test suite on every core (starts its own redis-server, PostgreSQL and uvicorn)
	$(BIN)/python -m pytest -n auto --dist worksteal $(PYTEST_ARGS)

# The suite runs both fuzzers on fixed seeds; this runs them on new ones, FUZZ_SECONDS each
# (ten minutes by default), to find the shapes of spec nobody wrote a test for yet: the spec
# fuzzer (generate, import, round-trip, mypy) and the diff oracle (whatever the old models
# refuse of a mutated spec's bodies, the diff must call breaking).
FUZZ_SECONDS ?= 600
fuzz: $(STAMP) ## Fuzz the generator and the diff's oracle for FUZZ_SECONDS each (not part of make test)
	$(BIN)/python tests/fuzz_specs.py --seconds $(FUZZ_SECONDS) --first-seed $$(date +%s)
	$(BIN)/python tests/fuzz_diff.py --seconds $(FUZZ_SECONDS) --first-seed $$(date +%s)

# Each step must pass before the next: a download that is not a usable spec stops here with
# the committed spec untouched, and a regenerated package that fails the tests is not kept
# silently (the working tree shows it for review). A spec that would break code using the
# package (a removed webhook or field, a narrowed type) stops it too, until a person accepts
# it with ALLOW_BREAKING=1. FROM=path takes a local file instead of the download.
FROM ?=
ALLOW_BREAKING ?=
update-spec: $(STAMP) ## Fetch incident.io's latest spec (or FROM=file), report what changed, regenerate, test
	$(BIN)/python -m codegen update-spec $(if $(FROM),--from "$(FROM)") \
		$(if $(ALLOW_BREAKING),,--fail-on-breaking)
	$(MAKE) --no-print-directory generate
	$(MAKE) --no-print-directory test

golden: $(STAMP) ## Refresh tests/golden/*/ after an intended change to the generator
	$(BIN)/python tests/golden_cases.py --refresh

# SERVE_ARGS="--workers 4 --dedupe sqlite:/tmp/webhooks.db" for several workers.
SERVE_ARGS ?=
serve: $(STAMP) ## Run a demo receiver on 127.0.0.1:8000 (secret from INCIDENT_WEBHOOK_SECRET; SERVE_ARGS)
	$(BIN)/python -m incident_webhooks serve --host 127.0.0.1 --port 8000 $(SERVE_ARGS)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt \
		-e '.[dev,bench]' -e './generated[server,redis,postgres,metrics,tracing,django,flask]' --config-settings editable_mode=compat
	touch $@

# Never part of `make test`: timings on a shared machine are for reading, not for asserting.
bench: $(BENCH_STAMP) servers ## Benchmarks (34 and 340 webhooks, the SDK, orjson, the stores, the inbox, bursts through HTTP, GitHub's spec) -> build/bench/ (untracked)
	@# wrk, the load generator of the burst bench (C: it needs a fraction of a core).
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk is missing (Debian: apt-get install wrk): the burst rows are left out"
	$(BIN)/python benchmarks/run.py
