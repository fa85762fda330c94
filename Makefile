# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed

MST_VENV := .venv-mst
MST_PY := $(MST_VENV)/bin/python
MST_STAMP := $(MST_VENV)/.installed

ANON_VENV := .venv-anon
ANON_PY := $(ANON_VENV)/bin/python
ANON_STAMP := $(ANON_VENV)/.installed
CROSSCHECK_DIR := build/crosscheck

.PHONY: demo test test-all lint bench crosscheck mutation clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch, pinned: an unpinned torch pulls a multi-GB GPU build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/synthdata run pipelines/flchain.yaml

# Lint and types first (seconds), then the fast suite (the layering and docs tests included).
# pytest exits 5 when it collected no test: that is a failure too.
test: $(STAMP)
	$(PY) -m ruff check synthdata tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest -q; code=$$?; \
	if [ $$code -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$code

lint: $(STAMP)
	$(PY) -m ruff check synthdata tests benchmarks
	$(PY) -m mypy

# Mutation testing over evaluate/leakage.py, privacy/mechanisms.py and constraints/ (slow:
# about an hour on 2 cores; results in benchmarks/results/mutation.md).
mutation: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2; $(VENV)/bin/mutmut results

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

# Peers (SDV) live only in .venv-bench; the product's .venv never contains them.
$(BENCH_STAMP): pyproject.toml benchmarks/requirements.txt
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet torch==2.13.0
	$(BENCH_PY) -m pip install --quiet -e . -r benchmarks/requirements.txt
	touch $(BENCH_STAMP)

# SmartNoise MST (the DP peer of bench_privacy.py) pins opendp<0.15: its own env, no synthdata.
$(MST_STAMP): benchmarks/requirements-mst.txt
	test -x $(MST_PY) || $(PYTHON) -m venv $(MST_VENV)
	$(MST_PY) -m pip install --quiet --upgrade pip
	$(MST_PY) -m pip install --quiet torch==2.13.0
	$(MST_PY) -m pip install --quiet -r benchmarks/requirements-mst.txt
	touch $(MST_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_PY) benchmarks/bench_tabular.py $(BENCH_ARGS)

# anonymeter 1.1.0 pins numpy<1.27: it gets its own env, which never holds synthdata.
$(ANON_STAMP): benchmarks/requirements-anon.txt
	test -x $(ANON_PY) || $(PYTHON) -m venv $(ANON_VENV)
	$(ANON_PY) -m pip install --quiet --upgrade pip
	$(ANON_PY) -m pip install --quiet -r benchmarks/requirements-anon.txt
	touch $(ANON_STAMP)

# Issue 6 cross-check, one stage per env, exchanging CSV/JSON files in $(CROSSCHECK_DIR):
# our generators and metrics in .venv, SDMetrics in .venv-bench, anonymeter in .venv-anon.
crosscheck: $(STAMP) $(BENCH_STAMP) $(ANON_STAMP)
	$(PY) benchmarks/crosscheck.py generate --work $(CROSSCHECK_DIR) $(CROSSCHECK_ARGS)
	$(PY) benchmarks/crosscheck.py ours --work $(CROSSCHECK_DIR)
	$(BENCH_PY) benchmarks/crosscheck.py sdmetrics --work $(CROSSCHECK_DIR)
	$(ANON_PY) benchmarks/crosscheck.py anonymeter --work $(CROSSCHECK_DIR)
	$(PY) benchmarks/crosscheck.py report --work $(CROSSCHECK_DIR) --out benchmarks/results

clean:
	rm -rf reports/run-* .pytest_cache .mypy_cache mutants
