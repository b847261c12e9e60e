# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export CLAREL_HOME ?= $(CURDIR)/data

.PHONY: demo test venv lint bench clean-venv

# Create the virtualenv if missing and install the project (editable) with every extra.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[app,dev]'
	touch $(STAMP)

venv: $(STAMP)

# Start the whole product on localhost (Streamlit web, job worker, Gradio) on the offline demo dataset.
demo: $(STAMP)
	$(PY) -m clarel.data ensure-demo
	$(VENV)/bin/honcho start -f Procfile

# The full test suite (offline, CPU).
test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)  
	$(PY) -m tests.benchmarks

clean-venv:
	rm -rf $(VENV)
