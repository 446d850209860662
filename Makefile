# One entry point for people and CI: `make check` is exactly what .ci/run runs.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export PYTHONHASHSEED := 0

.PHONY: setup demo check lint format type test bench clean

setup: $(STAMP)

# torch==2.13.0 first: it is a local CPU wheel; a bare `torch` would pull CUDA builds.
# The minari extra makes the Minari round-trip tests (tests/training/common/test_minari.py) run;
# the ray extra the local-Ray tests (tests/training/common/test_parallel.py, test_sweep.py);
# robotics and metaworld (mujoco wheels, ~10 s and ~110 MB) the Fetch and MT10 tests
# (tests/training/common/test_goal_sources.py; skipped with a reason without them).
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,dev,minari,ray,robotics,metaworld]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/zshot demo

check: setup lint type test

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

type: setup
	$(VENV)/bin/mypy zshot runtime hardware_bridge sim training

test: setup
	$(PY) -m pytest tests

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
