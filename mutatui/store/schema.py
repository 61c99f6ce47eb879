"""The DuckDB schema of a mutatui database (docs/reference/schema.md is generated from it).

One database holds many screens. Sites are stored as half-open blocks (row0:row1, col0:col1) so
elements and tiles share one table. Result rows hold a mutant's text only when it differs from
the baseline (the baseline text lives once, in `probes`), which keeps a million-result screen
small. Rows are appended in batches ordered by (layer, matrix), so DuckDB's zone maps make the
explorer's per-matrix reads cheap.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

TABLES = """
-- The file's own facts: `schema_version` (readers and writers check it) and the program.
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per screen: a `mutatui screen` run, or the explorer's live runs on one model.
CREATE TABLE IF NOT EXISTS screens (
    screen_id INTEGER PRIMARY KEY,               -- the screen's id in this file (merge renumbers)
    name VARCHAR NOT NULL UNIQUE,                -- --name, the spec's name, or screen-<hash>
    kind VARCHAR NOT NULL DEFAULT 'screen',      -- 'screen' | 'live' | 'published' (another
                                                 -- screen's published tables: no weights)
    model VARCHAR NOT NULL,                      -- the --model spec it was run with
    spec JSON NOT NULL,                          -- the canonical spec (what --resume reads back)
    spec_hash VARCHAR NOT NULL,                  -- sha256 of the spec without its name:
                                                 -- equal hashes, the same mutations and probes
    decoding VARCHAR NOT NULL,                   -- 'greedy' | 'sample(T=0.7, seed=0)'
    max_new_tokens INTEGER NOT NULL,             -- tokens generated per text probe
    shard VARCHAR,                               -- 'K/N' for one part of a sharded spec, 'a,b/N'
                                                 -- for a merge of some parts, NULL for a whole one
    planned_mutations BIGINT,                    -- how many mutations the spec (shard) holds
    status VARCHAR NOT NULL,                     -- 'running' | 'complete' | 'interrupted' (a
                                                 -- running screen whose lock is free was killed)
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- last commit or status change
    elapsed_seconds DOUBLE NOT NULL DEFAULT 0    -- time screening committed batches, summed
                                                 -- over resumes and merged parts
);

-- How a screen's outcomes were computed: the engine path, the weights' dtype and the arithmetic,
-- the device, the global matmul settings pinned, and the near-tie tolerances measured at the
-- start (`exact.tolerance`). One row per screen; a resume on the same device keeps them.
CREATE TABLE IF NOT EXISTS engines (
    screen_id INTEGER PRIMARY KEY,
    path VARCHAR NOT NULL,                       -- 'the fast path (Llama)' | 'the batched path'
    dtype VARCHAR NOT NULL,                      -- the weights' precision: float32 / bfloat16 / float16
    arithmetic VARCHAR NOT NULL,                 -- 'native' | 'float32' (half weights upcast exactly)
    device VARCHAR NOT NULL,                     -- 'cpu' | 'cuda:0 (NVIDIA H100 80GB HBM3)'
    precision VARCHAR NOT NULL,                  -- global matmul settings pinned for the run,
                                                 -- and the attention implementation
    element_tolerance DOUBLE NOT NULL,           -- relative margin below which a decision is a
                                                 -- near tie, settled naively (elements)
    block_tolerance DOUBLE NOT NULL,             -- the same, for blocks
    measured_element DOUBLE,                     -- largest batched-vs-lone logit difference the
                                                 -- calibration saw, elements
    measured_block DOUBLE,                       -- the same, blocks (NULL: none in the sample)
    calibration_mutations INTEGER NOT NULL,      -- mutants the tolerances were measured on
    baseline_near_ties INTEGER,                  -- first text probe's baseline decisions under it
    versions VARCHAR NOT NULL                    -- 'torch 2.13.0, transformers 5.24.0'
);

-- The assays of a screen, with the unmutated model's answers.
CREATE TABLE IF NOT EXISTS probes (
    screen_id INTEGER NOT NULL,
    probe_id INTEGER NOT NULL,                   -- text probes 0..n-1 in spec order, choice last
    name VARCHAR NOT NULL,                       -- p1, p2, ... from flags; choice[:<file>]
    kind VARCHAR NOT NULL,                       -- 'text' | 'choice'
    style VARCHAR,                               -- describe / explain / instruct / code / ...
    prompt VARCHAR NOT NULL,                     -- the prompt; for the choice probe its source
                                                 -- and the sha256 of its questions
    baseline_text VARCHAR,                       -- text probes: the baseline continuation
    baseline_tokens INTEGER[],                   -- text probes: its token ids, EOS excluded
    baseline_score INTEGER,                      -- choice probes: questions answered right
    questions INTEGER,                           -- choice probes: how many questions
    PRIMARY KEY (screen_id, probe_id)
);

-- Each screened matrix, as it was before any mutation.
CREATE TABLE IF NOT EXISTS matrices (
    screen_id INTEGER NOT NULL,
    layer SMALLINT NOT NULL,
    matrix VARCHAR NOT NULL,                     -- short name (q k v o gate up down) or the
                                                 -- module path inside the layer
    module_path VARCHAR NOT NULL,                -- the full module path in the model
    rows INTEGER NOT NULL,                       -- the logical shape (y = W x)
    cols INTEGER NOT NULL,
    min DOUBLE NOT NULL,                         -- the extremes: what min and max mutations write
    max DOUBLE NOT NULL,
    PRIMARY KEY (screen_id, layer, matrix)
);

-- One row per mutation screened, committed with its results. Sites are half-open blocks of
-- the logical matrix (y = W x; a fused module's part), so elements and tiles share one table.
CREATE TABLE IF NOT EXISTS mutations (
    screen_id INTEGER NOT NULL,
    mutation_id BIGINT NOT NULL,                 -- position in the spec's enumeration
    layer SMALLINT NOT NULL,
    matrix VARCHAR NOT NULL,
    row0 INTEGER NOT NULL,                       -- an element has row1 = row0 + 1, col1 = col0 + 1
    row1 INTEGER NOT NULL,
    col0 INTEGER NOT NULL,
    col1 INTEGER NOT NULL,
    kind VARCHAR NOT NULL,                       -- 'max' | 'min' | 'zero' | 'value'
    value DOUBLE NOT NULL,                       -- the value written into the site
    PRIMARY KEY (screen_id, mutation_id)
);

-- One row per mutation and probe, in mutation_id order, which is (layer, matrix) order. The
-- grading rules behind the columns: docs/design/grading.md.
CREATE TABLE IF NOT EXISTS results (
    screen_id INTEGER NOT NULL,
    mutation_id BIGINT NOT NULL,
    probe_id INTEGER NOT NULL,
    changed BOOLEAN NOT NULL,                    -- non-silent: the continuation (or the choice
                                                 -- score) differs from the baseline's
    diverge_at INTEGER,                          -- index of the first differing token
    edit_distance DOUBLE,                        -- normalized token edit distance, 0..1
    cosine DOUBLE,                               -- cosine of the sentence embeddings of mutant
                                                 -- and baseline (changed only)
    text VARCHAR,                                -- mutant text, only when changed (the
                                                 -- baseline's is in probes)
    first_word VARCHAR,                          -- first word of the mutant text (changed only)
    empty BOOLEAN NOT NULL DEFAULT false,        -- immediate EOS / no text
    repetitive BOOLEAN NOT NULL DEFAULT false,   -- repetition loop
    garbage BOOLEAN NOT NULL DEFAULT false,      -- non-text output
    nonfinite BOOLEAN NOT NULL DEFAULT false,    -- NaN or inf logits seen
    choice_score INTEGER,                        -- choice probes: questions answered right
    choice_delta INTEGER,                        -- choice_score - baseline_score
    destructive BOOLEAN NOT NULL DEFAULT false,  -- choice score destroyed
    severity TINYINT NOT NULL DEFAULT 0,         -- 0 none, 1 mild, 2 moderate, 3 severe
    malignant BOOLEAN NOT NULL DEFAULT false,    -- cosine <= 0.5 and choice score destroyed
    style VARCHAR,                               -- descriptive / conversational / poetic / other
    settled_naively BOOLEAN NOT NULL DEFAULT false,  -- a near tie sent it to the naive path
    PRIMARY KEY (screen_id, mutation_id, probe_id)
);

-- Effect sizes (exact/effects.py): how far a mutation moves the model on a text probe's baseline
-- continuation, from the teacher-forced pass, for every mutation, changed or not. Written with
-- the results when the screen records them (spec `effects`), or later by `mutatui effects`.
CREATE TABLE IF NOT EXISTS effects (
    screen_id INTEGER NOT NULL,
    mutation_id BIGINT NOT NULL,
    probe_id INTEGER NOT NULL,
    delta_nll DOUBLE,                            -- mean NLL of the baseline continuation (its
                                                 -- tokens and final EOS), mutant minus unmutated,
                                                 -- nats per token
    kl_prefix DOUBLE,                            -- mean KL(unmutated || mutant) of the next-token
                                                 -- distributions over the steps up to and
                                                 -- including the first divergence (all when
                                                 -- unchanged)
    kl_all DOUBLE,                               -- the same mean over every step
    diverge_margin DOUBLE,                       -- changed only: the unmutated model's top-1
                                                 -- minus top-2 logit at the diverging step
    PRIMARY KEY (screen_id, mutation_id, probe_id)
);

-- The noise floor of a screen's effect sizes (exact/effects.py): every teacher-forced pass carries
-- an unmutated control row, each mutant's effect sizes are taken against its pass's control, and
-- the controls' own distance from the traced baseline (a lone pass) is the floor. An effect size
-- below it is no effect. A screen whose effect sizes have no row here computed them before
-- controls existed (`mutatui effects --recompute` replaces them).
CREATE TABLE IF NOT EXISTS noise_floors (
    screen_id INTEGER PRIMARY KEY,
    controls BIGINT NOT NULL,                    -- control rows measured
    kl DOUBLE NOT NULL,                          -- largest KL(baseline || control) of any
                                                 -- control at any step, nats
    delta_nll DOUBLE NOT NULL                    -- largest |delta_nll| of any control, nats
                                                 -- per token
);

-- Where a screen ran (engine/machine.py): one row per machine that computed some of it (a
-- screen resumed elsewhere has two). Outcomes at near ties can differ between machines.
CREATE TABLE IF NOT EXISTS machines (
    screen_id INTEGER NOT NULL,
    digest VARCHAR NOT NULL,                     -- hash of processor, ISA, kernels and versions
    processor VARCHAR NOT NULL,                  -- 'AMD EPYC (x86_64, 2 cores)' | the GPU
    isa VARCHAR NOT NULL,                        -- kernel-picking flags: 'avx2 avx512f ...'
    kernels VARCHAR NOT NULL,                    -- 'ATen AVX512 (ONEDNN_MAX_CPU_ISA=AVX2)'
    versions VARCHAR NOT NULL,                   -- 'torch 2.13.0, oneDNN 3.12.0, MKL 2024.2'
    threads INTEGER NOT NULL,
    settings VARCHAR NOT NULL,                   -- reproducibility settings in effect
    first_seen TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (screen_id, digest)
);

-- Published screens (`mutatui import-paper`: Hu et al.'s Llama-2-7B and Zephyr screens). Their
-- tile NSMs are `mutations` and `results` like any screen's (value NaN: the tables give none);
-- what only the authors' tables hold is here. Counts are of 64x64 tiles, max, min and zero.
CREATE TABLE IF NOT EXISTS published_experiments (
    screen_id INTEGER NOT NULL,
    experiment VARCHAR NOT NULL,                 -- 'Python0', 'Drosophila', 'Mmlu21', ...
    type VARCHAR NOT NULL,                       -- 'coding' | 'description' | 'multiple choice
                                                 -- question'
    max_nsms BIGINT NOT NULL,                    -- non-silent mutations of each kind, in all
    min_nsms BIGINT NOT NULL,
    zero_nsms BIGINT NOT NULL,
    PRIMARY KEY (screen_id, experiment)
);

CREATE TABLE IF NOT EXISTS published_counts (
    screen_id INTEGER NOT NULL,
    experiment VARCHAR NOT NULL,
    layer SMALLINT NOT NULL,
    matrix VARCHAR NOT NULL,
    nsms BIGINT NOT NULL,                        -- the matrix's non-silent mutations
    distinct_phenotypes BIGINT,                  -- the distinct outputs among them
    PRIMARY KEY (screen_id, experiment, layer, matrix)
);

-- Writer mutations (Table 3, Document 2B) and the standard model, with the outputs the authors
-- published (the texts themselves only when imported from the files: none in the bundled file).
CREATE TABLE IF NOT EXISTS published_writers (
    screen_id INTEGER NOT NULL,
    writer VARCHAR NOT NULL,                     -- Table 3's row letter, Document 2B's
                                                 -- '1.down (0,38) minimum', or 'standard'
    source VARCHAR NOT NULL,                     -- 'table3' | 'document2b' | 'document2a'
    mutation_id BIGINT,                          -- the screen's mutation (NULL: the standard)
    rihf VARCHAR,                                -- Table 3: the rare initial word it produces
    cosine DOUBLE,                               -- Table 3: Drosophila cosine to the standard
    mmlu_right INTEGER,                          -- Table 3: right answers among the 14 / 7
    mmlu_wrong INTEGER,                          -- questions the standard gets right / wrong
    PRIMARY KEY (screen_id, writer, source)
);

CREATE TABLE IF NOT EXISTS published_outputs (
    screen_id INTEGER NOT NULL,
    writer VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    input_index INTEGER NOT NULL,                -- Table 3: its column; documents: the input
    prompt VARCHAR NOT NULL,
    first_word VARCHAR,                          -- the first word written after the input
    style VARCHAR,                               -- Table 3: the authors' label (poem, dialogue,
                                                 -- narrative, other)
    text VARCHAR,                                -- the output
    PRIMARY KEY (screen_id, writer, source, input_index)
);

-- The unmutated model's fragile steps: a text probe's margin at each baseline step.
CREATE TABLE IF NOT EXISTS probe_margins (
    screen_id INTEGER NOT NULL,
    probe_id INTEGER NOT NULL,
    margins DOUBLE[] NOT NULL,                   -- per step: top-1 minus top-2 logit
    PRIMARY KEY (screen_id, probe_id)
);

-- Triage notes from the explorer.
CREATE TABLE IF NOT EXISTS tags (
    screen_id INTEGER NOT NULL,
    mutation_id BIGINT NOT NULL,
    tag VARCHAR NOT NULL,                        -- writer / poetic / conversational / ...
    note VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (screen_id, mutation_id, tag)
);

-- Guided screens (docs/guide/guided.md). A prediction is a first-order
-- estimate, from one backward pass per probe, of how much each mutation would change the
-- log-likelihood of the baseline continuation: |grad * (target - w)|, averaged over probes.
-- Stored per matrix and kind as small tile maps plus the top sites, never one row per element.
CREATE TABLE IF NOT EXISTS predictions (
    prediction_id INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    model VARCHAR NOT NULL,                      -- the --model spec
    probes JSON NOT NULL,                        -- [{"prompt", "prompt_tokens", "continuation"}]
    decoding VARCHAR NOT NULL,                   -- how the baseline continuations were decoded
    max_new_tokens INTEGER NOT NULL,
    tile_size INTEGER NOT NULL,                  -- edge of the square tiles of prediction_maps
    top_k INTEGER NOT NULL,                      -- sites kept per matrix and kind
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    elapsed_seconds DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS prediction_maps (
    prediction_id INTEGER NOT NULL,
    layer SMALLINT NOT NULL,
    matrix VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,                       -- 'max' | 'min' | 'zero'
    rows INTEGER NOT NULL,                       -- the matrix's shape
    cols INTEGER NOT NULL,
    tile_rows INTEGER NOT NULL,                  -- ceil(rows / tile_size)
    tile_cols INTEGER NOT NULL,
    tile_block FLOAT[] NOT NULL,                 -- row-major per tile: |estimate| of mutating the whole tile
    tile_sum FLOAT[] NOT NULL,                   -- row-major per tile: sum of the elements' |estimate|
    tile_max FLOAT[] NOT NULL,                   -- row-major per tile: largest element |estimate|
    row_sum FLOAT[] NOT NULL,                    -- per matrix row: sum of the elements' |estimate|
    col_sum FLOAT[] NOT NULL,                    -- per matrix column: sum of the elements' |estimate|
    PRIMARY KEY (prediction_id, layer, matrix, kind)
);

CREATE TABLE IF NOT EXISTS prediction_sites (
    prediction_id INTEGER NOT NULL,
    layer SMALLINT NOT NULL,
    matrix VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    rank INTEGER NOT NULL,                       -- 0 = the matrix's most sensitive element
    row_index INTEGER NOT NULL,
    col_index INTEGER NOT NULL,
    score DOUBLE NOT NULL,                       -- the element's |estimate|
    PRIMARY KEY (prediction_id, layer, matrix, kind, rank)
);

-- Super weights (Yu et al. 2024): candidates from activation spikes at the down projection,
-- each verified by zeroing it.
CREATE TABLE IF NOT EXISTS superweight_runs (
    run_id INTEGER PRIMARY KEY,
    model VARCHAR NOT NULL,
    probe_text VARCHAR NOT NULL,                 -- text whose activations and perplexity are measured
    prompt VARCHAR NOT NULL,                     -- prompt whose continuation is compared
    decoding VARCHAR NOT NULL,
    max_new_tokens INTEGER NOT NULL,
    baseline_perplexity DOUBLE NOT NULL,
    baseline_text VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS superweights (
    run_id INTEGER NOT NULL,
    rank INTEGER NOT NULL,                       -- by spike ratio, 0 = strongest
    layer SMALLINT NOT NULL,
    matrix VARCHAR NOT NULL,                     -- the down projection's name ('down' for Llama)
    row_index INTEGER NOT NULL,                  -- the weight's storage coordinates
    col_index INTEGER NOT NULL,
    weight DOUBLE NOT NULL,                      -- its unmutated value
    output_activation DOUBLE NOT NULL,           -- the spike at the down projection's output
    input_activation DOUBLE NOT NULL,            -- the input at the spike's position and column
    spike_ratio DOUBLE NOT NULL,                 -- output spike / median of all layers' largest output
    position INTEGER NOT NULL,                   -- token position of the spike in the probe text
    perplexity DOUBLE NOT NULL,                  -- probe-text perplexity with the weight zeroed
    changed BOOLEAN NOT NULL,                    -- the prompt's continuation differs when zeroed
    diverge_at INTEGER,
    text VARCHAR NOT NULL,                       -- the continuation with the weight zeroed
    PRIMARY KEY (run_id, rank)
);

-- Live mode: every live run (completed, cancelled or failed) of a live screen (screens.kind =
-- 'live'). A completed run is also a graded row of mutations/results, so it shows in the grid;
-- this log keeps the rest (partial texts, timings) and points at that row when there is one.
CREATE TABLE IF NOT EXISTS live_runs (
    screen_id INTEGER NOT NULL,
    run_id BIGINT NOT NULL,                      -- 0, 1, 2... within the live screen
    layer SMALLINT NOT NULL,
    matrix VARCHAR NOT NULL,
    row0 INTEGER NOT NULL,
    row1 INTEGER NOT NULL,
    col0 INTEGER NOT NULL,
    col1 INTEGER NOT NULL,
    kind VARCHAR NOT NULL,                       -- 'max' | 'min' | 'zero' | 'value'
    value DOUBLE NOT NULL,                       -- the value written into the site
    prompt VARCHAR NOT NULL,
    status VARCHAR NOT NULL,                     -- 'completed' | 'cancelled' | 'failed'
    steps INTEGER NOT NULL,                      -- decoding steps streamed
    baseline_text VARCHAR NOT NULL,              -- as far as it got
    mutant_text VARCHAR NOT NULL,                -- as far as it got
    diverge_at INTEGER,
    first_token_seconds DOUBLE,                  -- from the start of the run to the first token
    tokens_per_second DOUBLE,                    -- streamed decoding steps per second
    elapsed_seconds DOUBLE NOT NULL,
    error VARCHAR,                               -- one line, for failed runs
    mutation_id BIGINT,                          -- the graded row (completed runs only)
    probe_id INTEGER,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (screen_id, run_id)
);

-- Screens run on Ray (docs/guide/ray.md): the spec split into parts K/N (plan.Shard),
-- written when the screen starts. A part's rows are committed in the same transaction that
-- marks it done, so a retried or resumed part is never written twice.
CREATE TABLE IF NOT EXISTS screen_parts (
    screen_id INTEGER NOT NULL,
    part INTEGER NOT NULL,                       -- K of K/N
    parts INTEGER NOT NULL,                      -- N
    mutations BIGINT NOT NULL,                   -- how many mutations the part holds
    done BOOLEAN NOT NULL DEFAULT false,
    worker VARCHAR,                              -- host, pid and device that computed it
    seconds DOUBLE,                              -- its compute time on that worker
    finished_at TIMESTAMP,
    PRIMARY KEY (screen_id, part)
);
"""


def phenotypic(alias: str = "") -> str:
    """The one SQL condition for a result with a phenotype: its output changed, or its choice
    score fell to destruction (`alias`: the results table's, as in `r`)."""
    prefix = f"{alias}." if alias else ""
    return f"({prefix}changed OR {prefix}destructive)"
