# PyroSys: `make demo` trains and tests the default experiment; `make test` runs the test suite.
# Every install goes through constraints.txt, which pins the CPU build of torch.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt
DEMO_CONFIG := configs/digits/lenet5.yaml

.PHONY: demo test accuracy bench bench-plm bench-proteins reliability integration install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: setup.cfg setup.py constraints.txt | $(BIN)/python
	$(INSTALL) -e .
	touch $@

# one run of the installer for the package, the test tools, the protein language model extras (the tests
# build tiny random ESM models), Optuna for searches and Ray (Train and Tune: `make test` trains one run on a local
# Ray instance); it stands for `make install` too
$(VENV)/.installed-dev: setup.cfg setup.py constraints.txt | $(BIN)/python
	$(INSTALL) -e ".[dev,plm,lora,search,ray]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/pyrosys-trainer --c $(DEMO_CONFIG) --outdir experiments | tee $(VENV)/demo.log
	run=$$(sed -n 's/^\[pyrosys\] results: //p' $(VENV)/demo.log | tail -n 1); \
	$(BIN)/pyrosys-tester --m "$$run/models/best.ckpt"; \
	echo "Demo done. The experiment folder is $$run (configuration, statistics CSVs, checkpoints, bundle models/best/, testing_*/)."

test: $(VENV)/.installed-dev
	$(BIN)/pytest -q -n 2 --dist loadfile

accuracy: $(VENV)/.installed-dev
	$(BIN)/pytest -q -s -m accuracy

reliability: $(VENV)/.installed-dev
	$(BIN)/pytest -q tests/reliability -m "not accuracy"

integration: $(VENV)/.installed-dev
	$(BIN)/pytest -q -m integration

# large_fasta.py: one epoch on a generated FASTA of 2 M sequences read through its on-disk index, their lengths drawn
# from a real protein set's (the benchmarks extra); `--limit-batches N` trains the epoch's first N batches; its
# section of benchmarks/results.md
bench: $(VENV)/.installed-benchmarks
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/large_fasta.py

# the embedding cache: a grid of 8 heads on a frozen ESM-2 8M-shaped encoder with and without it (a few minutes);
# its section of benchmarks/results.md
bench-plm: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/embedding_cache.py

# the real protein sets (aaanalysis and modlamp wheels) against composition baselines: benchmarks/proteins.md;
# 1-3 minutes a run and set on 2 idle cores (SETS=AMPvsTM,ACPvsRandom SEEDS=1 for a subset)
$(VENV)/.installed-benchmarks: $(VENV)/.installed-dev
	$(INSTALL) -e ".[dev,plm,lora,search,benchmarks]"
	touch $@

bench-proteins: $(VENV)/.installed-benchmarks
	$(BIN)/python benchmarks/proteins.py $(if $(SETS),--sets $(SETS)) $(if $(SEEDS),--seeds $(SEEDS))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
