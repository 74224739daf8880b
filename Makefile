# The two commands a new user needs: `make run` (the app, embedded store, offline, no keys) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup run test test-long lint lock neo4j-start neo4j-stop bench demo api clean mutate

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

run: setup  ## the app on http://127.0.0.1:8501 (SQLite in ~/.persona, offline provider unless a key is set)
	$(BIN)/streamlit run app.py --server.address 127.0.0.1

test: setup  ## lint, then every test (Neo4j is fetched through Maven and started by the tests)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-long: setup  ## the long reliability cases too
	$(BIN)/python -m pytest --run-slow

# The mutants `make mutate` runs by default: timeref, retrieval's fusion and hub cap, the store's shared checks, the
# API guard (about 440 mutants, ~15 min on 2 cores). MUTANTS="persona.*" runs all of the five files (~1,900).
MUTANTS ?= persona.timeref.* persona.retrieval.x__expand* persona.retrieval.x_rrf* \
	persona.store.common.x_check_batch* persona.store.common.x_fts_words* persona.store.common.x_possible_id* \
	persona.store.common.x_check_changes* persona.store.base.x__shown* \
	persona.api.xǁApiGuardǁ_authorised* persona.api.x__is_loopback* persona.api.x_serve*

mutate: setup  ## mutation testing (mutmut; config in pyproject.toml), NOT part of `make test`
	rm -rf mutants
	$(BIN)/mutmut run $(foreach m,$(MUTANTS),"$(m)")
	$(BIN)/mutmut export-cicd-stats && cat mutants/mutmut-cicd-stats.json

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

lock:  ## re-resolve the pinned dependencies (after editing pyproject.toml)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --quiet -o requirements.lock

neo4j-start:  ## a local Neo4j on 127.0.0.1:7687 from Maven jars, no Docker needed
	scripts/neo4j/neo4j start

neo4j-stop:
	scripts/neo4j/neo4j stop

demo: setup  ## load the demo persona into the embedded store
	$(BIN)/persona demo

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
