# clinicbot: `make run` starts the bot on the embedded SQLite default; `make test` runs the tests.
# Both set up .venv on first use; they need only python3 (3.11+) and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: run demo test bench fuzz lint typecheck venv dev clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --disable-pip-version-check -q --upgrade "pip>=24" setuptools wheel
	@$(PIP) -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	@$(PIP) -e ".[dev]"
	@touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(VENV)/bin/clinicbot db upgrade
	@# A fresh database with no chat platform configured gets the demo practice, to try in the playground.
	$(VENV)/bin/clinicbot demo --try-out
	$(VENV)/bin/clinicbot serve

demo: $(VENV)/.installed
	$(VENV)/bin/clinicbot db upgrade
	$(VENV)/bin/clinicbot demo

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(PY) -m bench $(BENCH_ARGS)

# The input fuzzers (Slack payloads, Teams activities, webhook bodies) at a size CI has no time for.
FUZZ_EXAMPLES ?= 2000
fuzz: $(VENV)/.installed-dev
	CLINICBOT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider tests/bot/test_fuzz_inputs.py

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check bot adapters sync tests bench
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.installed-dev
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
