# smvision: `make demo` (train svm on the digits, show the evaluation, serve it over HTTP), `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CONTAINER_ENGINE ?= docker
DEVICE ?= cpu
IMAGE ?= smvision:$(DEVICE)
DEMO := build/demo

.PHONY: venv demo test lint bench image lock clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements/*.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: venv
	rm -rf $(DEMO)
	$(PY) -m smvision.samples digits $(DEMO)/digits
	$(PY) -m smvision.local train --algorithm svm \
		--channel train=$(DEMO)/digits/train \
		--channel validation=$(DEMO)/digits/validation \
		--channel test=$(DEMO)/digits/test \
		--job-dir $(DEMO)/job
	$(PY) scripts/show_evaluation.py $(DEMO)/job
	$(PY) scripts/demo_serve.py $(DEMO)/job

test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check src launch tests scripts
	$(VENV)/bin/mypy

image:
	$(CONTAINER_ENGINE) build --build-arg DEVICE=$(DEVICE) -t $(IMAGE) .

lock: venv
	$(PY) scripts/lock.py

clean:
	rm -rf build .pytest_cache
