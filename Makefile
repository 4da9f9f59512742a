# The two quickstart commands: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[pipelines,test]"
	# OPA's own evaluator (Go, in process). The package's metadata asks for Python 3.14, but it is
	# plain ctypes over a c-shared library and runs on 3.10+: installed without that check.
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python opa-golib-python-bindings==0.4.4
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rai-pipelines demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Mutation testing of the code that decides money, policy and privacy (not run in CI: about 35
# minutes on 2 cores). Prints the surviving mutants and the figures; see docs/benchmarks.md "Mutation testing".
mutation: $(STAMP)
	$(BIN)/pip install --quiet "mutmut==3.8.1"
	$(BIN)/python benchmarks/mutation.py

lint: $(STAMP)
	$(BIN)/ruff check rai_pipelines tests benchmarks
	$(BIN)/ruff format --check rai_pipelines tests benchmarks

clean:
	rm -rf $(VENV) .rai-demo .pytest_cache
