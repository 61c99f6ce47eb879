"""Effect sizes for a screen recorded without them: each stored text result's mutation is run
by teacher forcing over its probe's baseline (no decoding: the stored outcome says where it
diverged), and its effect sizes written beside it. Resumable: a result that has them is
skipped, and each batch is committed as it is done."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from mutatui.engine.decoding import Generation, encode_prompt
from mutatui.engine.machine import this_machine
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.errors import MutatuiError
from mutatui.exact.effects import Effect
from mutatui.exact.noise import NoiseFloor
from mutatui.exact.screener import Screener
from mutatui.screening.probes import TextProbe
from mutatui.screening.spec import ScreenSpec, spec_from_json
from mutatui.screening.verify import recorded_mutation
from mutatui.store import effects as stored_effects
from mutatui.store.database import initialize, writer_lock
from mutatui.store.machines import record_machine
from mutatui.store.screens import ScreenRecord, load_probes

CHUNK = 512
"""Results per committed batch (the engine batches them further by layer)."""


@dataclass(frozen=True)
class EffectsReport:
    screen: str
    added: int
    """Results given effect sizes now (those that had them are skipped)."""
    imported: int = 0
    """Of those, the ones whose rows came from a saved rows file (`rows`)."""


def add_effects(
    db: Path,
    record: ScreenRecord,
    lm: LoadedModel,
    *,
    batch_size: int | None = None,
    rows: Path | None = None,
    recompute: bool = False,
    progress: Callable[[str], None] = lambda _line: None,
) -> EffectsReport:
    """Add the missing effect sizes of `record`'s text results, with `lm` (the screen's model,
    which must still give the stored baselines): first those of a saved rows file (`rows`,
    from another copy of the screen), then the rest by teacher forcing, each pass against its
    control. Effect sizes computed before controls are refused unless `recompute`, which
    replaces them."""
    with writer_lock(db):
        initialize(db)  # the tables added since the file was made
        before = stored_effects.legacy_effects(db, record.screen_id)
        if before and not recompute:
            raise MutatuiError(
                f"screen {record.name!r}: its {before} effect sizes were computed before "
                "controls (against the traced baseline, in a KL that rounding can take below "
                "zero); --recompute replaces them"
            )
        if recompute:
            removed = stored_effects.clear_effects(db, record.screen_id)
            progress(f"{removed} effect sizes removed, to be computed again")
        imported = 0 if rows is None else stored_effects.add_rows(db, record.screen_id, rows)
        if rows is not None:
            progress(f"{imported} results' effect sizes added from {rows}")
        spec = spec_from_json(record.spec)
        screener = Screener(
            lm, MatrixCatalog(lm.model), spec.decoding, batch_size=batch_size, effects=True
        )
        probes = [row for row in load_probes(db, record.screen_id) if row["kind"] == "text"]
        baselines = [
            _baseline(screener, spec, probe, row, record)
            for probe, row in zip(spec.probes, probes, strict=True)
        ]
        stored_effects.add_margins(
            db,
            record.screen_id,
            [
                {**row, "margins": screener.baseline_margins(prompt, baseline)}
                for row, (prompt, baseline) in zip(probes, baselines, strict=True)
            ],
        )
        record_machine(db, record.screen_id, this_machine(lm.device))
        added = 0
        for probe, row, (prompt, baseline) in zip(spec.probes, probes, baselines, strict=True):
            pending = stored_effects.pending_results(db, record.screen_id, row["probe_id"])
            for start in range(0, len(pending), CHUNK):
                chunk = pending[start : start + CHUNK]
                noise = screener.noise
                effects = screener.effects_of(
                    prompt,
                    baseline,
                    [recorded_mutation(result) for result in chunk],
                    [result.diverge_at for result in chunk],
                )
                after = screener.noise
                stored_effects.write_effects(
                    db,
                    record.screen_id,
                    row["probe_id"],
                    [
                        (result.mutation_id, _values(e))
                        for result, e in zip(chunk, effects, strict=True)
                    ],
                    NoiseFloor(after.controls - noise.controls, after.kl, after.nll),
                )
                added += len(chunk)
                progress(f"{probe.name}: {start + len(chunk)} of {len(pending)} results")
        return EffectsReport(record.name, added + imported, imported)


def _baseline(
    screener: Screener, spec: ScreenSpec, probe: TextProbe, row: dict, record: ScreenRecord
) -> tuple[list[int], Generation]:
    """The probe's prompt and baseline, checked against the one the screen recorded."""
    prompt = encode_prompt(screener.lm, probe.prompt, chat=spec.chat)
    baseline = screener.baseline(prompt)
    if baseline.tokens != list(row["baseline_tokens"]):
        raise MutatuiError(
            f"screen {record.name!r}, probe {probe.name}: the model now gives another baseline "
            "than the screen recorded (another model, dtype or device?)"
        )
    return prompt, baseline


def _values(effect: Effect) -> list[object]:
    return [getattr(effect, field.name) for field in fields(effect)]
