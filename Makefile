# The two commands: `make demo` and `make test`. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_LOCK := offline-wheels/requirements-dev.lock
# llama-cpp-python compiles llama.cpp: portable (GGML_NATIVE=OFF, as llama-server is built), not tuned to this
# CPU; a native build enables ggml's AMX kernels where the CPU has AMX, which crash (ggml-org/llama.cpp#20824).
BINDING_CMAKE_ARGS := -DGGML_NATIVE=OFF
# pip keys the wheel it builds from an sdist by the sdist alone, never by CMAKE_ARGS: the install keeps a wheel
# cache of its own per set of build options, so a wheel built another way on this machine is never reused.
PIP_BUILD_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/appliance/pip-$(shell printf '%s' '$(BINDING_CMAKE_ARGS)' | sha256sum | cut -c1-12)

.PHONY: install demo test test-fast lint docs lock clean

ENGINE := $(BIN)/llama-server

install: $(STAMP) $(ENGINE)

$(STAMP): pyproject.toml $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# Exactly the dev lock's files, checked by their sha256 (the cpu lock's pins, which the bundle carries, plus the
	# test and documentation tools), then the appliance itself over them, nothing resolved anew.
	CMAKE_ARGS="$(BINDING_CMAKE_ARGS)" PIP_CACHE_DIR="$(PIP_BUILD_CACHE)" \
	  $(BIN)/python -m pip install --progress-bar off --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/python -m pip install --progress-bar off --no-deps -e .
	# The locks leave PyPI's torchvision out (it does not load beside the CPU torch build, and Unsloth then refuses
	# to import); a virtual environment made before that may still hold it.
	$(BIN)/python -m pip uninstall --yes --quiet torchvision 2>/dev/null || true
	touch $(STAMP)

# llama.cpp's server (the CPU backend), built from the locked llama-cpp-python sdist with every download off;
# cached by the sdist's digest under ~/.cache/appliance/llama-server, so a machine builds it once.
$(ENGINE): $(STAMP) offline-wheels/requirements-cpu.lock appliance/serve/llama_server_build.py
	$(BIN)/python -m appliance.serve.llama_server_build

demo: install
	bash scripts/demo.sh

test: install
	bash scripts/test.sh

test-fast: install
	$(BIN)/python -m pytest -m "unit and not postgres" -q

lint: install
	$(BIN)/ruff check appliance tests bench scripts

docs: install
	$(BIN)/cog -r docs/cli.md docs/roles.md

# On a connected machine: re-resolve the hash-pinned locks: cpu and cuda, which `appliance bundle build` fetches,
# then dev (the cpu lock's pins plus the tools), which `make install` installs.
lock:
	$(PYTHON) scripts/lock.py cpu
	$(PYTHON) scripts/lock.py cuda
	$(PYTHON) scripts/lock.py dev

clean:
	rm -rf $(VENV) var .pytest_cache
