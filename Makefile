# The README's two commands are `make demo` and `make test`; the other targets are
# their steps. Every step installs what it needs, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARTIFACTS ?= artifacts
BUILD ?= build

.PHONY: setup system-deps build demo test bench serve clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	# The tritonserver that serve-model and the Triton tests run: only the binary PyTriton
	# bundles is used, so its Python pins (numpy<2) are not installed (docs/triton.md).
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps nvidia-pytriton==0.7.0
	touch $@

system-deps:
	@scripts/system-deps.sh

build: setup system-deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release --log-level=WARNING \
	  -DCMAKE_PREFIX_PATH="$$($(BIN)/python -c 'import torch; print(torch.utils.cmake_prefix_path)')"
	cmake --build $(BUILD) -j 2

demo: build
	$(BIN)/train-model all --artifacts $(ARTIFACTS)
	$(BIN)/export-model all --format all --artifacts $(ARTIFACTS)
	$(BIN)/verify-model all --artifacts $(ARTIFACTS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure
	$(BIN)/pytest

# After `make demo`: a Triton repository for the official container (checked with Triton's
# own proto), then a live tritonserver on 127.0.0.1 that proves every golden sample over
# HTTP and gRPC before it serves. Ctrl-C stops it.
serve: setup
	$(BIN)/triton-repo all --artifacts $(ARTIFACTS)
	$(BIN)/serve-model all --artifacts $(ARTIFACTS)

bench: build
	$(BIN)/bench-model all --artifacts $(ARTIFACTS) --json $(ARTIFACTS)/bench.json --plot docs/bench.png

clean:
	rm -rf $(BUILD) $(ARTIFACTS)
