# `make demo` and `make test` work on a fresh machine: they create .venv, install the package, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is pinned here (not in pyproject) so that a CPU build is installed on machines without a GPU;
# users installing the package get a normal `torch>=2.2` dependency.
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv demo test bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/monomial-gmn demo

test: venv
	$(PY) -m pytest tests

bench: venv
	$(VENV)/bin/monomial-gmn bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info
