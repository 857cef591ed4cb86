# The two commands of the README: `make demo` (set up and run the hub on this machine) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Apache Kafka's jars (ops/kafka/pom.xml, from Maven Central); hub.embedded.kafka looks for them here.
KAFKA_LIBS := $(VENV)/share/lienthong/kafka

.PHONY: demo test setup system-deps lint typecheck pytest clean

$(BIN)/lienthong: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

$(KAFKA_LIBS)/.fetched: ops/kafka/pom.xml | $(BIN)/lienthong
	@echo "fetching Apache Kafka's jars from Maven Central into $(KAFKA_LIBS)"
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -f ops/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory=$(abspath $(KAFKA_LIBS))
	rm -rf ops/kafka/target
	@touch $@

setup: system-deps $(BIN)/lienthong $(KAFKA_LIBS)/.fetched

# The whole hub on this machine (object store, broker, worker, metrics), fed a demo stream. Ctrl-C stops it.
demo: setup
	$(BIN)/lienthong up --demo $(DEMO_ARGS)

system-deps:
	@bash ops/system-deps.sh

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

# Two processes; each test file stays on one (its module's servers start once), the running demo's tests too.
pytest: setup
	$(BIN)/pytest -q -n 2 --dist loadfile

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
