# The two set-up commands: `make demo` and `make test` each build .venv when missing,
# install what they need with pip, then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch and torchvision lie on this machine's disk; pip takes them from there.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PIP) install --quiet $(TORCH)
	touch $@

$(VENV)/.installed-demo: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e ".[video]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e ".[test,video]"
	touch $@

install: $(VENV)/.installed-test

demo: $(VENV)/.installed-demo
	$(VENV)/bin/featuremaps demo

test: $(VENV)/.installed-test
	$(PY) -m pytest

clean:
	rm -rf demo-output .pytest_cache .hypothesis
