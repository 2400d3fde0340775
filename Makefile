# Set-up and entry points. `make demo` and `make test` work on a fresh machine: they create .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR := out/demo
DEMO_DATA := $(DEMO_DIR)/synthetic
DEMO_RECORDS := $(DEMO_DIR)/records

.PHONY: venv demo test test-all bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m tfrecords.synthetic --out=$(DEMO_DATA) --ids=60 --images_per_id=8 --seed=1
	$(PY) -m tfrecords.build --dataset=synthetic --root=$(DEMO_DATA) --out=$(DEMO_RECORDS)
	$(PY) -m keras_disentangle.visualize dataset --data_dir=$(DEMO_RECORDS) --dataset=synthetic --out=$(DEMO_DIR)/dataset.png

# The suite CI runs (slow tests excluded by default; see pytest.ini).
test: venv
	$(PY) -m pytest -q

test-all: venv
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf out .pytest_cache
