"""The DuckDB schema of a mutatui database (documented in README, section "Database schema").

One database holds many screens. Sites are stored as half-open blocks (row0:row1, col0:col1) so
elements and tiles share one table. Result rows hold a mutant's text only when it differs from
the baseline (the baseline text lives once, in `probes`), which keeps a million-result screen
small. Rows are appended in batches ordered by (layer, matrix), so DuckDB's zone maps make the
explorer's per-matrix reads cheap.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS screens (
    screen_id INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    kind VARCHAR NOT NULL DEFAULT 'screen',      -- 'screen' | 'live'
    model VARCHAR NOT NULL,                      -- the --model spec it was run with
    spec JSON NOT NULL,                          -- the full screen spec
    spec_hash VARCHAR NOT NULL,                  -- sha256 of the canonical spec
    decoding VARCHAR NOT NULL,                   -- 'greedy' | 'sample(T=0.7, seed=0)'
    max_new_tokens INTEGER NOT NULL,
    shard VARCHAR,                               -- 'K/N', or NULL for a whole spec
    planned_mutations BIGINT,                    -- how many mutations the spec (shard) holds
    status VARCHAR NOT NULL,                     -- 'running' | 'complete' | 'interrupted'
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    elapsed_seconds DOUBLE NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS probes (
    screen_id INTEGER NOT NULL,
    probe_id INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,                       -- 'text' | 'choice'
    style VARCHAR,                               -- describe / explain / instruct / code / ...
    prompt VARCHAR NOT NULL,                     -- the prompt, or the question set's name
    baseline_text VARCHAR,                       -- text probes
    baseline_tokens INTEGER[],                   -- text probes
    baseline_score INTEGER,                      -- choice probes: questions answered right
    questions INTEGER,                           -- choice probes: how many questions
    PRIMARY KEY (screen_id, probe_id)
);

CREATE TABLE IF NOT EXISTS matrices (
    screen_id INTEGER NOT NULL,
    layer SMALLINT NOT NULL,
    matrix VARCHAR NOT NULL,
    module_path VARCHAR NOT NULL,
    rows INTEGER NOT NULL,
    cols INTEGER NOT NULL,
    min DOUBLE NOT NULL,
    max DOUBLE NOT NULL,
    PRIMARY KEY (screen_id, layer, matrix)
);

CREATE TABLE IF NOT EXISTS mutations (
    screen_id INTEGER NOT NULL,
    mutation_id BIGINT NOT NULL,                 -- position in the spec's enumeration
    layer SMALLINT NOT NULL,
    matrix VARCHAR NOT NULL,
    row0 INTEGER NOT NULL,
    row1 INTEGER NOT NULL,
    col0 INTEGER NOT NULL,
    col1 INTEGER NOT NULL,
    kind VARCHAR NOT NULL,                       -- 'max' | 'min' | 'zero' | 'value'
    value DOUBLE NOT NULL,                       -- the value written into the site
    PRIMARY KEY (screen_id, mutation_id)
);

CREATE TABLE IF NOT EXISTS results (
    screen_id INTEGER NOT NULL,
    mutation_id BIGINT NOT NULL,
    probe_id INTEGER NOT NULL,
    changed BOOLEAN NOT NULL,                    -- non-silent: output differs from baseline
    diverge_at INTEGER,                          -- index of the first differing token
    edit_distance DOUBLE,                        -- normalized token edit distance, 0..1
    cosine DOUBLE,                               -- sentence-embedding cosine (changed only)
    text VARCHAR,                                -- mutant text, only when changed
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
    settled_naively BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (screen_id, mutation_id, probe_id)
);

CREATE TABLE IF NOT EXISTS tags (
    screen_id INTEGER NOT NULL,
    mutation_id BIGINT NOT NULL,
    tag VARCHAR NOT NULL,                        -- writer / poetic / conversational / ...
    note VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (screen_id, mutation_id, tag)
);
"""
