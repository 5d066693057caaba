# The two commands of README.md: `make demo` and `make test`. Both build .venv on first use
# from the pinned spec in workflow/envs/ (no conda needed) and reuse it afterwards.

PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
# pytest-xdist workers of `make test` (tests/conftest.py shares the cores out between them)
TEST_WORKERS ?= 2
SNAKEMAKE_ARGS ?=
# Where torch sees no GPU, train/embed jobs (device auto) run on the CPU, and the workstation
# profile's gpu=1, which keeps GPU jobs one at a time, would only leave cores idle: the demos
# then let as many run side by side as there are cores (SNAKEMAKE_ARGS may override it).
# (--resources=...: one value, so a target in SNAKEMAKE_ARGS is not read as a resource)
CPU_ONLY = $(shell $(VENV)/bin/python -c "import torch; print(int(not torch.cuda.is_available()))" 2>/dev/null)
GPU_RESOURCES = $(if $(filter 1,$(CPU_ONLY)),--resources=gpu=$(CORES))
STAMP := $(VENV)/.debatch-installed
DEV_STAMP := $(VENV)/.debatch-dev-installed
SITE_PACKAGES = "$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"

.PHONY: venv dev-venv demo demo-seeds demo-abra demo-rotate demo-figures rxrx1-demo rxrx1-figures test test-fast lint docs docs-check dry-run bench clean-results

# The packages' bytecode is written by compileall on every core, not by pip one file at a time
# (the larger part of this build: torch's thousands of files). It must be written: where
# PYTHONDONTWRITEBYTECODE is set, every job would compile its imports from source. Left out:
# the packages' own test suites (their tests/ folders: pandas', scipy's, sympy's...; the
# workflow runs none of them) and the one file of the pinned packages that is not Python 3.11 (a test of
# torch's, which pip passes over too).
COMPILE_BYTECODE = $(VENV)/bin/python -m compileall -q -j 0 -x '/tests/|/torch/testing/_internal/py312_intrinsics\.py$$' $(SITE_PACKAGES)

# What the workflow runs on (the demos need nothing more): a new user's `make demo` installs
# no test tools.
$(STAMP): workflow/envs/requirements.txt workflow/envs/cellpose-requirements.txt workflow/envs/anndata-requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --no-compile -r workflow/envs/requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-compile --no-deps -r workflow/envs/cellpose-requirements.txt -r workflow/envs/anndata-requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-compile --no-deps -e .
	$(COMPILE_BYTECODE)
	touch $(STAMP)

# ...and the test, lint and benchmark tools, with scanpy (the tests read our AnnData with it);
# the runtime pins are given again so that no tool's dependency moves them.
$(DEV_STAMP): $(STAMP) workflow/envs/dev-requirements.txt workflow/envs/scanpy-requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-compile -r workflow/envs/requirements.txt -r workflow/envs/dev-requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-compile --no-deps -r workflow/envs/scanpy-requirements.txt
	$(COMPILE_BYTECODE)
	touch $(DEV_STAMP)

# the virtual environment alone, as the workflow needs it (every other target builds what it
# needs first when missing or stale); dev-venv adds the test and lint tools
venv: $(STAMP)

dev-venv: $(DEV_STAMP)

demo: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) $(GPU_RESOURCES) $(SNAKEMAKE_ARGS)
	@echo "debatch demo finished. Report: report/index.html in the config's results folder (default $(CURDIR)/results/)"

test: $(DEV_STAMP)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -v --durations=15

test-fast: $(DEV_STAMP)
	$(VENV)/bin/python -m pytest -m "not slow"

# Python style and errors (ruff), Snakemake formatting (snakefmt) and Snakemake's own lint.
lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check workflow/Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint

# Figures quoted in README.md and docs/ are copied from files a command regenerates
# (benchmarks/README.md by `make bench`, docs/demo/ by `make demo-figures`): `make docs`
# refreshes the copies, `make docs-check` (also a test) fails when one is stale.
docs: $(DEV_STAMP)
	$(VENV)/bin/python tools/docs.py sync

docs-check: $(DEV_STAMP)
	$(VENV)/bin/python tools/docs.py check

# The method comparison over three seeds (config/seeds.yaml), into results_seeds/.
demo-seeds: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/config.yaml config/seeds.yaml $(GPU_RESOURCES) $(SNAKEMAKE_ARGS)

# ABRA's parts changed one at a time (config/abra_variants.yaml), into results_abra/.
demo-abra: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/config.yaml config/abra_variants.yaml $(GPU_RESOURCES) $(SNAKEMAKE_ARGS)

# Every batch held out in turn (config/rotate.yaml: leave-one-batch-out), into results_rotate/.
demo-rotate: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/config.yaml config/rotate.yaml $(GPU_RESOURCES) $(SNAKEMAKE_ARGS)

# The demo's own figures for the docs: the one-seed demo's and the three-seed comparison's
# verdicts against the demo's truth, both comparisons and the rotation, tabulated into docs/demo/.
demo-figures: demo demo-seeds demo-abra demo-rotate
	$(VENV)/bin/python tools/docs.py verdict results
	$(VENV)/bin/python tools/docs.py verdict results_seeds
	$(VENV)/bin/python tools/docs.py demo results_seeds
	$(VENV)/bin/python tools/docs.py abra results_abra
	$(VENV)/bin/python tools/docs.py rotate results_rotate
	$(VENV)/bin/python tools/docs.py sync

# The RxRx1-shaped synthetic screen (debatch.demo.rxrx1, settings config/rxrx1_screen.yaml):
# generated when missing or its settings change, converted by RxRx1's converter into a plate
# sheet, then run with config/rxrx1.yaml (three methods, one seed) into results_rxrx1/, or with
# config/rxrx1_figures.yaml (every method, teacher variant and ABRA ablation, three seeds; 42 trainings) into
# results_rxrx1_figures/, tabulated into docs/demo/rxrx1.md (from the models' training logs, so
# that run stops at training: --until train).
RXRX1_DEMO ?= resources/rxrx1_demo

$(RXRX1_DEMO)/metadata.csv: config/rxrx1_screen.yaml | $(STAMP)
	$(VENV)/bin/python -m debatch.demo.rxrx1 $(RXRX1_DEMO) --params config/rxrx1_screen.yaml

# the validation experiments: experiments.tsv's split val (the generator's WILDS split)
$(RXRX1_DEMO)/sheet/plates.tsv: $(RXRX1_DEMO)/metadata.csv
	$(VENV)/bin/python -m debatch.ingest.rxrx1 $< $(RXRX1_DEMO)/images $(RXRX1_DEMO)/sheet \
		--validation $$(awk -F'\t' '$$4 == "val" {print $$1}' $(RXRX1_DEMO)/experiments.tsv)

rxrx1-demo: $(STAMP) $(RXRX1_DEMO)/sheet/plates.tsv
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/config.yaml config/rxrx1.yaml $(GPU_RESOURCES) $(SNAKEMAKE_ARGS)

rxrx1-figures: $(STAMP) $(RXRX1_DEMO)/sheet/plates.tsv
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/config.yaml config/rxrx1.yaml config/rxrx1_figures.yaml --until train $(GPU_RESOURCES) $(SNAKEMAKE_ARGS)
	$(VENV)/bin/python tools/docs.py rxrx1 results_rxrx1_figures

bench: $(DEV_STAMP)
	$(VENV)/bin/python benchmarks/run_all.py
	$(VENV)/bin/python tools/docs.py sync

dry-run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --dry-run

clean-results:
	rm -rf results resources/demo .snakemake
