# The two set-up commands: `make demo` and `make test` each build .venv when missing,
# install what they need with pip, then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch and torchvision lie on this machine's disk; pip takes them from there.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test check install clean readme-check shapes-model shapes-seg-model objects-model

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PIP) install --quiet $(TORCH)
	touch $@

$(VENV)/.installed-demo: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e ".[video,web,batch]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e ".[test,video,web,timm,ray,batch]"
	touch $@

install: $(VENV)/.installed-test

# The type and lint gate alone (make test runs it first).
check: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

demo: $(VENV)/.installed-demo
	$(VENV)/bin/featuremaps demo

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest

# Every README command as written, the minutes-long ones too (make test leaves those out).
readme-check: $(VENV)/.installed-test
	FEATUREMAPS_README_LONG=1 $(PY) -m pytest tests/test_readme.py -s

clean:
	rm -rf demo-output .pytest_cache .hypothesis

# Re-train the bundled builtin:shapes model (about 11 minutes on 2 CPU cores); the
# checkpoint directory is committed under src/featuremaps/assets/models/shapes.
shapes-model: $(VENV)/.installed-demo
	$(VENV)/bin/featuremaps train --dataset shapes --model tinyvgg --width 32 --samples 20000 --epochs 10 \
		--batch-size 64 --lr 2e-3 --seed 0 --overwrite -o src/featuremaps/assets/models/shapes
	$(VENV)/bin/featuremaps calibrate src/featuremaps/assets/models/shapes --dataset shapes --samples 1000 --seed 7
	$(VENV)/bin/featuremaps evaluate builtin:shapes --dataset shapes --samples 2000 --seed 424242

# Re-train the bundled builtin:shapes-seg head on builtin:shapes' maps (about 13 minutes).
shapes-seg-model: $(VENV)/.installed-demo
	$(VENV)/bin/featuremaps train --task segmentation --dataset shapes --backbone builtin:shapes \
		--layers relu1_2,relu2_2,pool2 --scenes 1500 --size 128 --epochs 6 --seed 0 --overwrite \
		-o src/featuremaps/assets/models/shapes-seg
	$(VENV)/bin/featuremaps calibrate src/featuremaps/assets/models/shapes-seg --dataset shapes --samples 1000 --seed 7
	$(VENV)/bin/featuremaps evaluate builtin:shapes-seg --task segmentation --dataset shapes --samples 200 --seed 424242

# Re-train the bundled builtin:objects model (TinyResNet on composite objects made of parts;
# about 45 minutes on 2 CPU cores), then calibrate it and score it on a held-out seed.
objects-model: $(VENV)/.installed-demo
	$(VENV)/bin/featuremaps train --dataset objects --model tinyresnet --samples 16000 --epochs 10 \
		--batch-size 64 --lr 2e-3 --seed 0 --half-weights --overwrite -o src/featuremaps/assets/models/objects
	$(VENV)/bin/featuremaps calibrate src/featuremaps/assets/models/objects --dataset objects --samples 1000 --seed 7
	$(VENV)/bin/featuremaps evaluate builtin:objects --dataset objects --samples 2000 --seed 424242
