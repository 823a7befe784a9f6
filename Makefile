# The two promises of the README: `make demo` and `make test`, from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
KEDRO := $(BIN)/kedro

# No telemetry, no GUI backend, no network.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export MPLBACKEND := Agg
export KEDRO_LOGGING_CONFIG := $(CURDIR)/conf/logging.yml

.PHONY: install demo test lint typecheck wheel edge docs viz airflow-dags clean-data help

help:
	@echo "make demo   - create .venv, install, build the demo world, run every pipeline"
	@echo "make test   - create/update .venv, lint, type-check and run the test suite"
	@echo "make wheel  - build the slim inference wheel into dist/"
	@echo "make edge   - build the offline web app into web/dist/ from data/06_models/bundle (after make demo)"
	@echo "make docs   - build the documentation site into site/ (warnings are errors)"
	@echo "make viz    - show the pipelines in Kedro-Viz (http://127.0.0.1:4141)"
	@echo "make airflow-dags - generate the Airflow DAGs into airflow_dags/"

$(STAMP): pyproject.toml src/mixai_inference/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "MIXAI ML needs Python 3.11 or newer, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e './src/mixai_inference[serve]' -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(KEDRO) run --pipelines=demo_data
	$(KEDRO) run --pipelines=purge
	$(KEDRO) run
	$(BIN)/python docs/_scripts/readme_results.py
	@echo
	@echo "Demo finished: reports in data/08_reporting/, the deployable bundle in data/06_models/bundle/."

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# Test files spread over TEST_WORKERS processes (pytest-xdist), a file's tests in one; each
# worker builds the shared fixtures it needs (the tiny project, a PostgreSQL cluster) once.
# `make test TEST_WORKERS=0` runs everything in one process.
TEST_WORKERS ?= 2

test: lint typecheck
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

wheel: $(STAMP)
	rm -f dist/mixai_inference-*.whl
	$(BIN)/python -m build --wheel --no-isolation --outdir dist src/mixai_inference

# The static web app (docs/edge.md): onnxruntime-web, the bundle's edge graphs and models.
edge:
	cd web && npm ci --no-audit --no-fund && npm run build

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

viz: $(STAMP)
	$(KEDRO) viz run --host 127.0.0.1

# Weekly retraining (`kedro run`), the hourly purge and monitoring, scheduled by
# conf/base/airflow.yml.
airflow-dags: $(STAMP)
	$(KEDRO) airflow create --pipelines=__default__,purge,monitoring --group-by memory \
		--jinja-file conf/airflow_dag.j2 --target-dir airflow_dags

clean-data:
	find data -mindepth 2 ! -name .gitkeep -delete
