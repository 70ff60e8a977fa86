# opqueue: `make run` starts the service, `make test` runs the whole suite.
# Both set everything up first on a machine that has only Python and pip.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck unit integration bench clean protos browser

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

integration: install browser
	$(BIN)/pytest -m integration

test: lint typecheck browser
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

# Regenerate opqueue/v1/*_pb2.py(i) (messages only, no gRPC stubs) with the pinned grpcio-tools.
# googleapis-common-protos ships google/longrunning/operations.proto as operations_proto.proto,
# so that one file is mapped back to its real import path.
protos: install
	common=$$($(BIN)/python -c 'import google.api, os; print(os.path.dirname(os.path.dirname(google.api.__path__[0])))') && \
	wkt=$$($(BIN)/python -c 'import grpc_tools, os; print(os.path.join(grpc_tools.__path__[0], "_proto"))') && \
	$(BIN)/python -m grpc_tools.protoc -Iprotos \
		-Igoogle/longrunning/operations.proto=$$common/google/longrunning/operations_proto.proto \
		-I$$common -I$$wkt --python_out=. --pyi_out=. protos/opqueue/v1/operation_metadata.proto

# wrk (Debian's package) is the HTTP load generator; without it (not root, no apt) the
# benchmarks fall back to a slower Python one and say so in the table.
bench: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq wrk >/dev/null 2>&1 || \
		  { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }; }; } || \
		echo "wrk could not be installed: using the Python load generator"
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
