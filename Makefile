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

demo: $(STAMP)
	$(BIN)/python -m localdev.demo $(DEMO_ARGS)

# checkov (tests/deploy/test_checkov.py) has its own venv: it pins packaging<24, pytest 9 needs packaging>=24.
CHECKOV_STAMP := $(VENV)/.checkov-installed

$(CHECKOV_STAMP): infra/requirements-checkov.txt
	test -x $(VENV)/tools/checkov/bin/python || $(PYTHON) -m venv $(VENV)/tools/checkov
	$(VENV)/tools/checkov/bin/pip install --quiet -r infra/requirements-checkov.txt
	touch $(CHECKOV_STAMP)

test: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/python -m pytest -m "not long" --cov --cov-report=term $(PYTEST_ARGS)

test-all: $(STAMP) $(CHECKOV_STAMP)
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
