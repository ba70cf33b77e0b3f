# The two commands of the course:
#   make course   create/update .venv, then execute every notebook headless (QUICK mode) into build/course/
#   make test     create/update .venv, then run the test suite
#
# Variables:
#   TORCH_SPEC   the PyTorch requirement installed first (default torch==2.13.0). On a CPU-only Linux box with
#                internet, add TORCH_INDEX=https://download.pytorch.org/whl/cpu to avoid the CUDA wheels;
#                on a GPU box the default PyPI wheel brings CUDA. An already installed torch that satisfies
#                the spec is kept.
#   TORCH_INDEX  optional extra index for torch only (e.g. a CUDA- or CPU-specific PyTorch index)
#   PYTHON       the interpreter that creates .venv (default python3, needs >= 3.10)
#   PYTEST_ARGS  extra pytest arguments, e.g. PYTEST_ARGS="-k strokes -x"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all test course bench sysdeps venv clean

all: test

sysdeps:
	@bash scripts/sysdeps.sh

$(STAMP): pyproject.toml Makefile scripts/sysdeps.sh
	@bash scripts/sysdeps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "== installing $(TORCH_SPEC) into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	@echo "== installing the handwriting package and its dependencies into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	@touch $@

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

course: $(STAMP)
	$(PY) -m handwriting course

bench: $(STAMP)
	$(PY) -m handwriting bench all

clean:
	rm -rf build .pytest_cache .hypothesis
