"""Turning a live run into a graded database record, graded exactly like a screen's results.

Grading is `mutatui.screening.grading`'s (the same rules as screens); the sentence-embedding
model it needs loads once, on the first completed run that changed the output.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

from mutatui.engine.decoding import decode_tokens
from mutatui.live.session import LiveResult, LiveSession, RunStatus
from mutatui.store.live import LiveRunRecord, LiveScreenKey, MatrixRow, SavedLiveRun, save_live_run

_EMBEDDER_LOCK = threading.Lock()


@cache
def _embedder():
    from mutatui.screening.grading import Embedder

    return Embedder()


def graded_columns(session: LiveSession, result: LiveResult) -> dict[str, object]:
    """The `results` columns of a completed run, by the screens' own grading rules."""
    from mutatui.screening.grading import grade_text, result_rows
    from mutatui.store.effects import EFFECT_COLUMNS

    lm = session.lm
    baseline, mutant = result.baseline, result.mutant
    with _EMBEDDER_LOCK:  # one embedding model, shared by the save workers
        grade = grade_text(
            baseline.tokens,
            decode_tokens(lm, baseline.tokens),
            mutant.tokens,
            decode_tokens(lm, mutant.tokens),
            stopped=mutant.stopped,
            nonfinite=mutant.nonfinite,
            embedder=_embedder(),
            settled_naively=mutant.settled_naively,
        )
    row = result_rows([grade], None)[0]
    # a live run decodes one mutant; it measures no effect sizes (a screen's teacher forcing)
    return {column: value for column, value in row.items() if column not in EFFECT_COLUMNS}


def live_record(
    session: LiveSession, result: LiveResult, *, style: str | None = None
) -> LiveRunRecord:
    """Everything the store keeps of a run; graded only when it completed."""
    lm, catalog = session.lm, session.catalog
    request = result.request
    site = request.mutation.site
    info = catalog.get(site.layer, site.matrix)
    completed = result.status is RunStatus.COMPLETED
    return LiveRunRecord(
        key=LiveScreenKey(
            model=lm.name,
            decoding=request.decoding.describe(),
            max_new_tokens=request.decoding.max_new_tokens,
            chat=request.chat,
        ),
        matrices=tuple(
            MatrixRow(m.layer, m.name, m.path, m.rows, m.cols, m.min, m.max) for m in catalog
        ),
        site=site,
        kind=request.mutation.kind.value,
        value=request.mutation.target(info),
        prompt=request.prompt,
        status=result.status.value,
        steps=result.steps,
        baseline_text=decode_tokens(lm, result.baseline.tokens),
        mutant_text=decode_tokens(lm, result.mutant.tokens),
        diverge_at=result.diverge_at,
        first_token_seconds=result.first_token_seconds,
        tokens_per_second=result.tokens_per_second,
        elapsed_seconds=result.elapsed_seconds,
        error=result.error,
        style=style,
        baseline_tokens=list(result.baseline.tokens) if completed else None,
        graded=graded_columns(session, result) if completed else None,
    )


def grade_and_save(
    db_path: str | Path, session: LiveSession, result: LiveResult, *, style: str | None = None
) -> SavedLiveRun:
    """Grade a run and save it into its live screen of `db_path`."""
    return save_live_run(db_path, live_record(session, result, style=style))
