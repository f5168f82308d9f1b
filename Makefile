# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

PEERS  := .venv-peers
.PHONY: run test test-unit test-release setup peers lock clean

# The venv is (re)built whenever the lock or the project metadata changes.
$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check --require-hashes -r requirements/lock.txt
	$(BIN)/pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

# The peer engines (Spark, Daft) in their own venv: daft needs pyarrow<26, the main lock keeps 26.
$(PEERS)/.installed: requirements/peers.txt pyproject.toml
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --disable-pip-version-check --require-hashes -r requirements/peers.txt
	$(PEERS)/bin/pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

peers: $(PEERS)/.installed

run: $(STAMP)
	$(BIN)/bench run mini

# The unit and integration tiers, within ~15 minutes on 2 cores; the release tier (Docker, the
# cluster journey, the docs walk, perf, the 10G load test) is make test-release. CI runs both.
test: $(STAMP)
	$(BIN)/pytest --durations=20 tests/unit tests/integration

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

test-release: $(STAMP)
	$(BIN)/pytest tests/release

# Refresh the hash lock after editing requirements/requirements.in (README: "Refreshing the lock").
lock: $(STAMP)
	$(BIN)/pip install --disable-pip-version-check pip-tools
	$(BIN)/pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file requirements/lock.txt requirements/requirements.in
	$(BIN)/pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file requirements/peers.txt requirements/peers.in

clean:
	rm -rf $(VENV) $(PEERS) data .pytest_cache
