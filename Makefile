# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build of torch that lies on this machine's disk; an unpinned torch is a multi-GB
# CUDA download. Set TORCH= to leave torch out (dilnet then uses its own numpy/BLAS kernels).
TORCH  ?= torch==2.13.0

.PHONY: demo test lint bench docs figures clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,viz,onnx]' $(TORCH)
	touch $@

demo: $(VENV)/.installed
	$(PY) -m dilnet_zoo.demo --force

test: lint
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff check dilnet dilnet_zoo tests bench docs
	$(PY) -m ruff format --check dilnet dilnet_zoo tests bench docs/figures docs/griffe_attrs.py

# the docs site in site/ (open site/index.html); --strict: a broken link or reference fails
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# redraw the docs' figures (committed SVGs) from the code and from bench/results
figures: $(VENV)/.installed
	for f in docs/figures/make_*.py; do $(PY) $$f || exit 1; done

bench: $(VENV)/.installed
	$(PY) bench/conv.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis site
