# The two commands of the README. Both create .venv on first use (Python >= 3.10).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 8
STAMP := $(VENV)/.installed

.PHONY: run test lint gpu-check wheelhouse clean-results

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,slurm]'
	touch $(STAMP)

## run: the default sweep (config.yaml): snakemake --cores $(CORES) with the local profile
## (snakemake auto-loads only ./profiles/default, so the workflow profile is named explicitly)
run: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH snakemake --cores $(CORES) --workflow-profile workflow/profiles/default

## test: the whole test suite
test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH python -m pytest $(PYTEST_ARGS)

## gpu-check: on a CUDA machine, every GPU path once with one summary (tests/gpu/check.py); exits 0 without CUDA
gpu-check: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH python tests/gpu/check.py

## wheelhouse: wheels of every dependency but torch/torchvision into $(WHEELHOUSE), for an offline
## machine (docs/gpu.md); e.g. make wheelhouse WHEEL_PYTHON=3.12 WHEEL_PLATFORM=manylinux2014_x86_64
WHEELHOUSE ?= wheelhouse
WHEEL_PYTHON ?=
WHEEL_PLATFORM ?=
WHEEL_PRESENT ?=
wheelhouse: $(STAMP)
	$(BIN)/python tests/gpu/wheelhouse.py --dest $(WHEELHOUSE) \
		$(if $(WHEEL_PYTHON),--python-version $(WHEEL_PYTHON)) $(if $(WHEEL_PLATFORM),--platform $(WHEEL_PLATFORM)) \
		$(if $(WHEEL_PRESENT),--present $(WHEEL_PRESENT))

## lint: snakemake --lint and snakefmt --check
lint: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH snakemake --lint
	PATH=$(abspath $(BIN)):$$PATH snakefmt --check Snakefile workflow/rules

clean-results:
	rm -rf results .snakemake
