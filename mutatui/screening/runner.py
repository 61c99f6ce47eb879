"""The screen loop: baselines, then the plan batch by batch, each graded and committed whole.

A run holds the database's writer lock from start to end (a second screen is refused), opens
the database only to append a batch, and marks the screen complete or interrupted when it
ends. A resumed run reads its spec back from the database, checks that the model still gives
the stored baselines, and continues after the last committed batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from mutatui.engine.decoding import decode_tokens
from mutatui.engine.machine import this_machine
from mutatui.engine.matrices import MatrixInfo
from mutatui.engine.models import LoadedModel, device_name
from mutatui.engine.mutations import Mutation
from mutatui.errors import MutatuiError
from mutatui.exact.noise import NoiseFloor
from mutatui.exact.screener import Screener
from mutatui.screening import grading
from mutatui.screening.plan import WHOLE, Plan, Shard, parse_shard
from mutatui.screening.prepare import Assays, prepare_screen
from mutatui.screening.progress import ScreenProgress, Silent
from mutatui.screening.spec import ScreenSpec, spec_from_json
from mutatui.store import screens as store
from mutatui.store.database import check_readable, check_writable, initialize, writer_lock
from mutatui.store.effects import add_margins
from mutatui.store.engines import engine_of, record_engine
from mutatui.store.machines import record_machine
from mutatui.store.parts import has_ledger

ModelLoader = Callable[[str], LoadedModel]


@dataclass(frozen=True)
class ScreenRun:
    """How to run a spec (none of it changes the results)."""

    db: Path
    shard: Shard = WHOLE
    resume: bool = False
    batch_size: int | None = None
    """Mutations per batch; None: the engine's default for the model (`default_batch_size`)."""
    arithmetic: str | None = None
    """The arithmetic the user pinned (`native`, `float32`); None: native, unless native half
    precision would run near the naive loop's speed here (`prepare_screen`)."""


@dataclass(frozen=True)
class ScreenReport:
    screen_id: int
    name: str
    status: str
    done: int
    planned: int
    phenotypes: int


def new_screen(spec: ScreenSpec, shard: str | None, planned: int) -> store.NewScreen:
    """The `screens` row of a spec (or of one shard of it) about to be run."""
    return store.NewScreen(
        name=spec.display_name,
        model=spec.model,
        spec=spec.to_json(),
        spec_hash=spec.digest,
        decoding=spec.decoding.describe(),
        max_new_tokens=spec.decoding.max_new_tokens,
        shard=shard,
        planned_mutations=planned,
    )


def matrix_rows(matrices: Sequence[MatrixInfo]) -> list[dict[str, object]]:
    return [
        {
            "layer": info.layer,
            "matrix": info.name,
            "module_path": info.path,
            "rows": info.rows,
            "cols": info.cols,
            "min": info.min,
            "max": info.max,
        }
        for info in matrices
    ]


def mutation_row(mutation_id: int, mutation: Mutation, info: MatrixInfo) -> list[object]:
    site = mutation.site
    return [
        mutation_id,
        site.layer,
        site.matrix,
        site.row0,
        site.row1,
        site.col0,
        site.col1,
        mutation.kind.value,
        mutation.target(info),
    ]


class BatchGrader:
    """Runs one batch of mutations through every probe and grades the outcomes into `results`
    rows (`grading.result_rows`: each row its probe's severity, the mutation's malignant flag
    on every row)."""

    def __init__(
        self,
        lm: LoadedModel,
        screener: Screener,
        spec: ScreenSpec,
        assays: Assays,
        embedder: grading.Embedder | None = None,
    ) -> None:
        self.lm = lm
        self.screener = screener
        self.spec = spec
        self.assays = assays
        self._embedder = embedder
        self.on_retry: Callable[[int], None] = lambda _rows: None
        """Called with the new batch size when a batch ran out of memory and is graded again."""

    def _cosines(self, baseline_text: str, texts: list[str]) -> list[float]:
        """Sentence-embedding cosines, batched; the embedding model loads on first need."""
        if not texts:
            return []
        if self._embedder is None:
            self._embedder = grading.Embedder()
        return list(self._embedder.cosines(baseline_text, texts))

    def _text_grades(self, mutations: Sequence[Mutation]) -> list[list[grading.TextGrade]]:
        """Per mutation, its grade on every text probe (in probe order)."""
        assays = self.assays
        grades: list[list[grading.TextGrade]] = [[] for _ in mutations]
        for prompt, baseline, baseline_text in zip(
            assays.prompts, assays.baselines, assays.baseline_texts, strict=True
        ):
            outcomes = self.screener.screen_text(prompt, baseline, mutations)
            changed = [i for i, o in enumerate(outcomes) if o.diverge_at is not None]
            texts = {i: decode_tokens(self.lm, outcomes[i].tokens) for i in changed}
            cosines = dict(
                zip(changed, self._cosines(baseline_text, [texts[i] for i in changed]), strict=True)
            )
            for index, outcome in enumerate(outcomes):
                grade = grading.grade_text(
                    baseline.tokens,
                    baseline_text,
                    outcome.tokens,
                    texts.get(index, baseline_text),
                    stopped=outcome.stopped,
                    nonfinite=outcome.nonfinite,
                    cosine=cosines.get(index),
                    settled_naively=outcome.settled_naively,
                )
                if outcome.effect is not None:
                    grade = replace(grade, **asdict(outcome.effect))
                grades[index].append(grade)
        return grades

    def _choice_grades(
        self, mutations: Sequence[Mutation], text_grades: Sequence[Sequence[grading.TextGrade]]
    ) -> list[grading.ChoiceGrade | None]:
        """The choice probe's grade per mutation (None when there is none or it was not asked)."""
        assays = self.assays
        grades: list[grading.ChoiceGrade | None] = [None] * len(mutations)
        if assays.choice is None or assays.baseline_answers is None:
            return grades
        asked = [
            index
            for index in range(len(mutations))
            if not self.spec.choice_only_changed or any(g.changed for g in text_grades[index])
        ]
        if not asked:
            return grades
        questions = list(assays.choice.questions)
        answers = self.screener.screen_choice(
            questions, [mutations[i] for i in asked], chat=self.spec.chat
        )
        for index, chosen in zip(asked, answers, strict=True):
            grades[index] = grading.grade_choice(assays.baseline_answers, chosen, questions)
        return grades

    def grade(self, mutations: Sequence[Mutation]) -> tuple[list[list[dict[str, object]]], int]:
        """Result rows per mutation (one per probe run), and how many mutations show a
        phenotype (changed a probe's output or its choice score)."""
        text_grades = self._text_grades(mutations)
        choice_grades = self._choice_grades(mutations, text_grades)
        per_mutation: list[list[dict[str, object]]] = []
        for texts, choice in zip(text_grades, choice_grades, strict=True):
            rows = grading.result_rows(texts, choice)
            for probe_id, row in enumerate(rows):
                row["probe_id"] = probe_id  # text probes 0..n-1, then the choice probe
            per_mutation.append(rows)
        phenotypes = sum(any(row["changed"] for row in rows) for rows in per_mutation)
        return per_mutation, phenotypes


@dataclass(frozen=True)
class GradedBatch:
    """A graded batch, ready to write: mutation rows in `MUTATION_COLUMNS` order, result rows
    as mappings of result columns, how many mutations show a phenotype, compute seconds, and
    the controls its effect sizes were measured against (None: it recorded none)."""

    mutations: list[list[object]]
    results: list[dict[str, object]]
    phenotypes: int
    seconds: float
    noise: NoiseFloor | None = None


def grade_batch(
    grader: BatchGrader, plan: Plan, batch: Sequence[tuple[int, Mutation]]
) -> GradedBatch:
    """Grade one batch of `plan.batches` (a screen writes it at once; a Ray worker collects a
    part's batches and returns them to the driver).

    When the device runs out of memory, the engine's batch is halved and the whole batch
    graded again, down to one row: nothing is written until it is graded, so nothing is lost or
    graded twice, and later batches keep the smaller size."""
    began = time.perf_counter()
    before = grader.screener.noise
    while True:
        try:
            per_mutation, found = grader.grade([mutation for _, mutation in batch])
            break
        except torch.OutOfMemoryError as error:
            screener = grader.screener
            if not screener.shrink_batch():
                raise MutatuiError(
                    f"out of memory on {device_name(grader.lm.device)} with one mutation per "
                    "batch: the model and one mutant do not fit; use a smaller --dtype, "
                    "--device balanced, or a larger device"
                ) from error
            _release_cached_memory()
            grader.on_retry(screener.batch_size)
    info = plan.matrix_of(batch[0][0])
    results = [
        {"mutation_id": mutation_id, **row}
        for (mutation_id, _), rows in zip(batch, per_mutation, strict=True)
        for row in rows
    ]
    after = grader.screener.noise
    noise = NoiseFloor(after.controls - before.controls, after.kl, after.nll)
    return GradedBatch(
        [mutation_row(i, m, info) for i, m in batch],
        results,
        found,
        time.perf_counter() - began,
        noise if grader.screener.effects else None,
    )


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def stored_spec(
    run: ScreenRun, spec: ScreenSpec | None, name: str | None
) -> tuple[ScreenSpec, store.ScreenRecord]:
    """The screen to resume: by the spec's name, by `name`, or the database's only screen."""
    if not run.db.exists():
        raise MutatuiError(f"nothing to resume: no database {run.db}")
    check_readable(run.db)  # a folder, a named pipe, a damaged file: said as such
    wanted = spec.display_name if spec is not None else name
    if wanted is not None:
        record = store.find_screen(run.db, wanted)
        if record is None:
            raise MutatuiError(f"nothing to resume: {run.db} has no screen {wanted!r}")
    else:
        records = [r for r in store.screen_records(run.db) if r.kind == "screen"]
        if len(records) != 1:
            names = ", ".join(r.name for r in records) or "none"
            raise MutatuiError(
                f"{run.db} holds {len(records)} screens ({names}); say which with --name"
            )
        record = records[0]
    stored = spec_from_json(record.spec)
    if spec is not None and spec.digest != stored.digest:
        raise MutatuiError(
            f"screen {record.name!r} was started with a different spec; resume it without "
            "spec flags, or start a new screen with --name"
        )
    return stored, record


def claim_screen(
    run: ScreenRun, spec: ScreenSpec | None, name: str | None, *, on_ray: bool
) -> tuple[ScreenSpec, store.ScreenRecord | None]:
    """Inside the writer's lock, before the model loads: a resumed screen's stored spec and
    record (refused when it was started the other way, with or without Ray), or the checked
    spec of a new screen (its record None; nothing is written yet). The local and the Ray
    runner both begin here."""
    if not run.resume:
        if spec is None:
            raise MutatuiError("give a spec (--spec FILE or --model and flags), or --resume")
        check_new_screen(run.db, spec)
        return spec, None
    if run.db.is_file():
        initialize(run.db)  # the schema check every writer makes (tables added since)
    spec, record = stored_spec(run, spec, name)
    started_on_ray = has_ledger(run.db, record.screen_id)
    if on_ray and record.shard is not None:
        raise MutatuiError(
            f"screen {record.name!r} is shard {record.shard}; resume it without --ray"
        )
    if on_ray and not started_on_ray and store.resume_point(run.db, record.screen_id):
        raise MutatuiError(
            f"screen {record.name!r} was started without --ray; resume it without --ray"
        )
    if not on_ray and started_on_ray:
        raise MutatuiError(f"screen {record.name!r} was started on Ray; resume it with --ray")
    return spec, record


def check_new_screen(db: Path, spec: ScreenSpec) -> None:
    """Refuse, reading only, a database a new screen could not go into: one mutatui cannot
    write, or one with a screen of the spec's name already."""
    check_writable(db)
    if db.is_file() and store.find_screen(db, spec.display_name) is not None:
        raise MutatuiError(
            f"{db} already has a screen named {spec.display_name!r}; "
            "use --resume to continue it, or --name for a new one"
        )


def check_baselines(run: ScreenRun, record: store.ScreenRecord, rows: list[dict]) -> None:
    stored = store.load_probes(run.db, record.screen_id)
    keys = ("probe_id", "name", "kind", "prompt", "baseline_tokens", "baseline_score", "questions")
    mine = [[row.get(k) for k in keys] for row in rows]
    theirs = [[row.get(k) for k in keys] for row in stored]
    if mine != theirs:
        raise MutatuiError(
            f"screen {record.name!r}: the model now gives other baselines than when the screen "
            "began (another model, dtype, device or mutatui version?); resume refused"
        )


def run_screen(
    spec: ScreenSpec | None,
    run: ScreenRun,
    load: ModelLoader,
    progress: ScreenProgress | None = None,
    *,
    name: str | None = None,
) -> ScreenReport:
    """Run (or resume) a screen into `run.db`. `spec` may be None only when resuming."""
    progress = progress or Silent()
    with writer_lock(run.db):
        spec, record = claim_screen(run, spec, name, on_ray=False)
        shard = run.shard
        if record is not None:
            shard = parse_shard(record.shard) if record.shard else WHOLE
        lm = load(spec.model)
        stored = engine_of(run.db, record.screen_id) if record is not None else None
        prepared = prepare_screen(
            lm,
            spec,
            shard,
            run.batch_size,
            arithmetic=run.arithmetic,
            stored=stored,
            note=progress.note,
            steps=progress.step,
        )
        plan, screener, assays, engine = (
            prepared.plan,
            prepared.screener,
            prepared.assays,
            prepared.engine,
        )
        probe_rows = assays.probe_rows(spec)
        if record is not None:
            check_baselines(run, record, probe_rows)
        if record is None:
            initialize(run.db)  # only now: every input was checked, the plan built, the model run
            check_new_screen(run.db, spec)
            screen_id = store.create_screen(
                run.db,
                new_screen(spec, None if shard == WHOLE else str(shard), shard.size(len(plan))),
                probe_rows,
                matrix_rows(plan.matrices),
            )
            start = 0
        else:
            screen_id = record.screen_id
            add_margins(run.db, screen_id, probe_rows)  # a screen begun before they were kept
            start = store.resume_point(run.db, screen_id)
            store.set_status(run.db, screen_id, "running")
        if engine != stored:
            record_engine(run.db, screen_id, engine)
        record_machine(run.db, screen_id, this_machine(lm.device))
        grader = BatchGrader(lm, screener, spec, assays)
        grader.on_retry = lambda rows: progress.note(
            f"out of memory: the batch is graded again with {rows} rows per batch"
        )
        run = replace(run, batch_size=screener.batch_size)
        return _loop(run, spec, plan, shard, screen_id, start, grader, progress)


def _mark(db: Path, screen_id: int, status: str) -> None:
    """Record how the loop ended. When the loop failed, a failure to record it (the disk that
    is full fails this write too) gives way to the loop's error, which names the cause."""
    try:
        store.set_status(db, screen_id, status)
    except MutatuiError:
        if status == "complete":
            raise


def _loop(
    run: ScreenRun,
    spec: ScreenSpec,
    plan: Plan,
    shard: Shard,
    screen_id: int,
    start: int,
    grader: BatchGrader,
    progress: ScreenProgress,
) -> ScreenReport:
    total = shard.size(len(plan))
    done = shard.size(start)
    phenotypes = store.phenotype_count(run.db, screen_id)
    work = (plan.work(shard.ids(len(plan))), plan.work(shard.ids(start)))
    progress.start(total, done, phenotypes, work)
    status = "interrupted"
    try:
        for batch in plan.batches(shard, start=start, size=run.batch_size):
            graded = grade_batch(grader, plan, batch)
            store.write_batch(
                run.db,
                screen_id,
                graded.mutations,
                graded.results,
                graded.seconds,
                graded.noise,
            )
            done += len(batch)
            phenotypes += graded.phenotypes
            progress.advance(len(batch), graded.phenotypes, plan.work(i for i, _ in batch))
        status = "complete"
    finally:
        _mark(run.db, screen_id, status)
        with suppress(OSError):  # a terminal that is gone
            progress.stop()
    return ScreenReport(screen_id, spec.display_name, status, done, total, phenotypes)
