# Every target works on a fresh clone: the venv is (re)built when missing or when its requirements change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-all lint bench clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Azurite (the blob storage of `make demo`, `acibatch up` and the azurite tests) is an npm package: taken from PATH
# when there, else installed into the venv's folder, where localtools/azurite.py looks. 3.35.0 is the newest that runs
# on Node 20 (3.36 needs Node 21). Without npm, those run with storage off and the azurite tests skip, saying so.
AZURITE_VERSION := 3.35.0
AZURITE_STAMP := $(VENV)/.azurite-installed

$(AZURITE_STAMP): $(STAMP)
	@if command -v azurite-blob >/dev/null 2>&1 || test -x $(VENV)/azurite/node_modules/.bin/azurite-blob; then \
	  touch $@; \
	elif command -v npm >/dev/null 2>&1 && npm install --silent --no-audit --no-fund --prefix $(VENV)/azurite \
	    azurite@$(AZURITE_VERSION); then \
	  touch $@; \
	else \
	  echo "warning: could not install Azurite (needs Node.js >= 20 and npm): blob storage is off, azurite tests skip"; \
	fi

demo: $(STAMP) $(AZURITE_STAMP)
	$(BIN)/python -m localdev.demo $(DEMO_ARGS)

# checkov (tests/deploy/test_checkov.py) has its own venv: it pins packaging<24, pytest 9 needs packaging>=24.
CHECKOV_STAMP := $(VENV)/.checkov-installed

$(CHECKOV_STAMP): infra/requirements-checkov.txt
	test -x $(VENV)/tools/checkov/bin/python || $(PYTHON) -m venv $(VENV)/tools/checkov
	$(VENV)/tools/checkov/bin/pip install --quiet -r infra/requirements-checkov.txt
	touch $(CHECKOV_STAMP)

test: $(STAMP) $(CHECKOV_STAMP) $(AZURITE_STAMP)
	$(BIN)/python -m pytest -m "not long" --cov --cov-report=term $(PYTEST_ARGS)

test-all: $(STAMP) $(CHECKOV_STAMP) $(AZURITE_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The deployment zip, built as `func azure functionapp publish` builds it (.funcignore, remote build of
# requirements.txt); tests/deploy/test_release.py checks what it holds and that it indexes.
.PHONY: release
release: $(STAMP)
	$(BIN)/python -m infra.funcpack --app . --out dist/acibatch.zip

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov bench/results
