# napari-galam: the two commands of the README, and a few helpers.
#   make demo   set up, then open napari with the demo data (headless: Xvfb + demo.png)
#   make test   set up, then run the whole test suite (under Xvfb)
.PHONY: setup demo test test-gui test-tf lint bench clean

VENV := .venv
PY := $(VENV)/bin/python
XVFB := xvfb-run -a -s "-screen 0 1600x1000x24"
# One BLAS thread per process: pPXF and numpy on 2 cores are 10x faster in the test
# suite this way (multi-threaded BLAS oversubscribes; set before numpy loads).
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/galam demo

# TensorFlow and a napari viewer never share a process (Mesa's LLVM vs TensorFlow's:
# segfault), so the suite runs as two pytest processes.
test: setup lint test-tf test-gui

test-gui:
	$(XVFB) $(PY) -m pytest -m "not tensorflow" $(PYTEST_ARGS)

test-tf:
	@$(PY) -m pytest -m tensorflow $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tensorflow tests collected"; status=0; fi; exit $$status

lint:
	$(VENV)/bin/ruff check src tests benchmarks scripts

bench: setup
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache demo.png
