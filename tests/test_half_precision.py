"""Half precision on this CPU: the engine in bfloat16, native and in float32 arithmetic (the
weights upcast exactly), against the naive path in the same dtype and arithmetic; tolerances
measured at a screen's start and recorded with it; pinned matmul precision; a batch that runs
out of memory graded again smaller, nothing lost or duplicated."""

import pytest
import torch
from naive import naive_outcomes, sample_mutations
from test_screen_run import dump, loader
from tiny_models import FAMILY_CONFIGS, build_tiny_model, tiny_spec

from mutatui.cli import main
from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.machine import this_machine
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.engine.mutations import make_mutation, mutated
from mutatui.errors import MutatuiError
from mutatui.exact.screener import Screener
from mutatui.exact.tolerance import floor_tolerance
from mutatui.screening.runner import ScreenRun, run_screen
from mutatui.store.engines import engine_of

GREEDY = Decoding(max_new_tokens=16)
SAMPLED = Decoding(mode="sample", temperature=0.7, seed=5, max_new_tokens=16)
PROMPT = "the cat sat on the mat"
HALF_FAMILIES = ("llama", "qwen3", "gemma2", "gpt_neox")


@pytest.fixture(scope="module", params=HALF_FAMILIES)
def folder(request, tmp_path_factory):
    name = request.param
    return build_tiny_model(tmp_path_factory.mktemp(name) / name, FAMILY_CONFIGS[name], scale=8)


@pytest.mark.parametrize(
    ("dtype", "arithmetic"),
    [("bfloat16", "native"), ("bfloat16", "float32"), ("float16", "native")],
)
@pytest.mark.parametrize("decoding", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_half_precision_screens_equal_the_naive_path(folder, dtype, arithmetic, decoding):
    lm = load_model(str(folder), dtype=dtype, arithmetic=arithmetic)
    catalog = MatrixCatalog(lm.model)
    assert lm.dtype == getattr(torch, dtype)
    assert lm.compute_dtype == (torch.float32 if arithmetic == "float32" else lm.dtype)
    assert next(lm.model.parameters()).dtype == lm.compute_dtype
    prompt = encode_prompt(lm, PROMPT)
    mutations = sample_mutations(catalog)
    screener = Screener(lm, catalog, decoding, batch_size=16)
    baseline = screener.baseline(prompt)
    screener.calibrate(prompt, baseline, mutations[::7])
    outcomes = screener.screen_text(prompt, baseline, mutations)
    references = naive_outcomes(lm, catalog, prompt, mutations, decoding)
    for mutation, outcome, reference in zip(mutations, outcomes, references, strict=True):
        assert (outcome.tokens, outcome.stopped) == (reference.tokens, reference.stopped), str(
            mutation
        )
    assert 5 <= sum(o.diverge_at is not None for o in outcomes) < len(mutations)


def test_float32_arithmetic_keeps_every_weight_a_bfloat16_value(folder):
    lm = load_model(str(folder), dtype="bfloat16", arithmetic="float32")
    catalog = MatrixCatalog(lm.model)
    for parameter in lm.model.parameters():
        assert torch.equal(parameter, parameter.bfloat16().float())
    mutation = make_mutation("L1.up[0,0]", "0.1", catalog)
    screener = Screener(lm, catalog, GREEDY)
    prompt = encode_prompt(lm, PROMPT)
    with mutated(catalog, mutation):
        written = float(catalog.weight(1, "up")[0, 0])
    assert written == float(torch.tensor(0.1).bfloat16()) != 0.1
    outcome = screener.screen_text(prompt, screener.baseline(prompt), [mutation])[0]
    assert outcome.tokens == naive_generate(lm, catalog, prompt, mutation, GREEDY).tokens


def test_calibration_measures_and_never_goes_under_the_floor(tiny):
    lm, catalog = tiny
    screener = Screener(lm, catalog, GREEDY)
    prompt = encode_prompt(lm, PROMPT)
    baseline = screener.baseline(prompt)
    floor = floor_tolerance(torch.float32)
    assert screener.tolerances == floor
    tolerance = screener.calibrate(prompt, baseline, sample_mutations(catalog)[::5])
    assert tolerance.mutations > 5 and tolerance.measured_element is not None
    assert tolerance.measured_block is not None
    assert 0 <= tolerance.measured_element < floor.element
    assert tolerance.element >= floor.element and tolerance.block >= floor.block
    assert screener.tolerance(sample_mutations(catalog)[0]) == tolerance.element


def _lockstep_runs(folder) -> bool:
    """Whether this machine's kernels let the lockstep decoder run on the model (the code's own
    measurement: `invariance.row_chunk` on its shapes)."""
    from mutatui.engine.architecture import Architecture
    from mutatui.exact.lockstep import LockstepDecoder

    lm = load_model(str(folder), dtype="bfloat16")
    return LockstepDecoder.chunk_for(Architecture(lm.model)) > 1


@pytest.mark.parametrize(
    ("family", "pinned"), [("llama", None), ("mistral", None), ("mistral", "native")]
)
def test_native_bfloat16_near_ties_are_counted_and_said(tmp_path, capsys, family, pinned):
    """Native bfloat16 logits tie often; the screen says so and how it will settle them: the
    lockstep decoder where it runs, else (a sliding window shorter than the probe, or kernels
    that round a batch unlike a lone row) it says why in one line and computes the same
    weights in float32 arithmetic, unless native was pinned, which keeps native and names the
    float32 arithmetic."""
    folder = build_tiny_model(tmp_path / family, FAMILY_CONFIGS[family], scale=1.0)
    db = str(tmp_path / "bf16.db")
    args = ["screen", "--model", str(folder), "--db", db, "--dtype", "bfloat16", "--layers", "0"]
    args += ["--sites", "random:2", "--choice", "none", "--probe", f"p={PROMPT}"]
    args += ["--arithmetic", pinned] if pinned else []
    assert main([*args, "--max-new-tokens", "24"]) == 0
    engine = engine_of(db, 1)
    said = capsys.readouterr().err
    switched = [line for line in said.splitlines() if "would run near the naive loop" in line]
    if pinned or engine.arithmetic == "native":
        assert (engine.dtype, engine.arithmetic) == ("bfloat16", "native") and not switched
        assert engine.calibration_mutations >= 2 and engine.baseline_near_ties is not None
        assert engine.baseline_near_ties > 0.1 * (24 + 1)
        assert "--arithmetic float32" in said
        settled = (
            "cannot run here (a sliding window shorter than the probe)"
            if family == "mistral"
            else "Greedy text probes decode in lockstep batches"  # native only where it runs
        )
        assert settled in said
        return
    assert family == "mistral" or not _lockstep_runs(folder) or "are near ties" in said
    assert (engine.dtype, engine.arithmetic) == ("bfloat16", "float32")
    assert len(switched) == 1, said
    reasons = (
        "a sliding window shorter than the probe",
        "are near ties",
        "no batched product",
        "no bfloat16 matrix tiles (AMX)",
    )
    assert any(reason in switched[0] for reason in reasons), switched[0]
    assert "computed in float32 arithmetic instead" in switched[0]
    assert "--arithmetic native keeps native" in switched[0]


def test_the_engine_is_recorded_shown_and_kept_on_resume(
    tiny, tiny_model_dir, questions_file, tmp_path, capsys
):
    db = tmp_path / "engine.db"
    spec = tiny_spec(tiny_model_dir, questions_file, choice=None)
    run_screen(spec, ScreenRun(db, batch_size=8), loader(tiny))
    engine = engine_of(db, 1)
    assert engine.path == "the fast path (Llama)"
    assert (engine.dtype, engine.arithmetic, engine.device) == ("float32", "native", "cpu")
    assert engine.precision == "no TF32, no reduced-precision reductions; sdpa attention"
    assert engine.calibration_mutations >= 3 and engine.measured_element is not None
    assert engine.element_tolerance >= floor_tolerance(torch.float32).element
    assert "torch " in engine.versions
    assert main(["info", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "the fast path (Llama), float32 on cpu" in shown and "measured on" in shown
    assert run_screen(None, ScreenRun(db, resume=True), loader(tiny)).status == "complete"
    assert engine_of(db, 1) == engine


def test_resuming_in_another_arithmetic_is_refused(tiny, tiny_model_dir, questions_file, tmp_path):
    db = tmp_path / "arith.db"
    spec = tiny_spec(tiny_model_dir, questions_file, choice=None)
    run_screen(spec, ScreenRun(db, batch_size=8), loader(tiny))
    half = load_model(str(tiny_model_dir), dtype="bfloat16", arithmetic="float32")
    with pytest.raises(MutatuiError, match="resume it with the same --dtype float32"):
        run_screen(None, ScreenRun(db, resume=True), lambda _model: half)


def test_loading_pins_the_matmul_precision(tiny_model_dir):
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    torch.set_float32_matmul_precision("medium")
    load_model(str(tiny_model_dir))
    assert not torch.backends.cuda.matmul.allow_tf32
    assert not torch.backends.cudnn.allow_tf32
    assert not torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
    assert torch.get_float32_matmul_precision() == "highest"


def test_a_batch_out_of_memory_is_graded_again_smaller(
    tiny, tiny_model_dir, questions_file, tmp_path, monkeypatch
):
    """The device runs out of memory whenever the engine's batch has more than 2 rows: every
    batch is graded again at 4, then 2 rows, and the screen equals an uninterrupted one."""
    spec = tiny_spec(tiny_model_dir, questions_file, choice=None)
    whole = tmp_path / "whole.db"
    run_screen(spec, ScreenRun(whole, batch_size=8), loader(tiny))
    screen_text = Screener.screen_text
    sizes = []

    def small_memory(self, prompt, baseline, mutations):
        sizes.append(self.batch_size)
        if self.batch_size > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (forced by the test)")
        return screen_text(self, prompt, baseline, mutations)

    monkeypatch.setattr(Screener, "screen_text", small_memory)
    retried = tmp_path / "retried.db"

    class Notes:
        def __init__(self):
            self.said = []

        def start(self, *args, **kwargs):
            pass

        def advance(self, *args, **kwargs):
            pass

        def stop(self):
            pass

        def note(self, message):
            self.said.append(message)

        def step(self, what, done, total):
            pass

    notes = Notes()
    report = run_screen(spec, ScreenRun(retried, batch_size=8), loader(tiny), notes)
    assert report.status == "complete"
    assert dump(retried) == dump(whole)
    assert sizes[:3] == [8, 4, 2] and set(sizes[3:]) == {2}
    assert [n for n in notes.said if "out of memory" in n] == [
        "out of memory: the batch is graded again with 4 rows per batch",
        "out of memory: the batch is graded again with 2 rows per batch",
    ]


def test_out_of_memory_with_one_row_is_one_line(tiny, tiny_model_dir, questions_file, tmp_path):
    spec = tiny_spec(tiny_model_dir, questions_file, choice=None)

    def no_memory(self, prompt, baseline, mutations):
        raise torch.OutOfMemoryError("CUDA out of memory (forced by the test)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Screener, "screen_text", no_memory)
        with pytest.raises(MutatuiError, match="out of memory on cpu with one mutation per batch"):
            run_screen(spec, ScreenRun(tmp_path / "oom.db", batch_size=2), loader(tiny))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_explorer_shows_what_a_screen_computed_in(
    anyio_backend, tiny_model_dir, questions_file, tmp_path
):
    from test_tui_app import settle

    from mutatui.tui.app import ExplorerApp
    from mutatui.tui.screens.overview import OverviewScreen

    db = tmp_path / "numbers.db"
    spec = tiny_spec(tiny_model_dir, questions_file, choice=None)
    half = load_model(str(tiny_model_dir), dtype="bfloat16", arithmetic="float32")
    run_screen(spec, ScreenRun(db, batch_size=8), lambda _model: half)
    app = ExplorerApp(db)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#screen-table")
        labels = [str(column.label) for column in table.columns.values()]
        row = {label: str(cell) for label, cell in zip(labels, table.get_row_at(0), strict=True)}
        assert row["computed in"] == "bfloat16 weights in float32 arithmetic"
        assert row["ran on"].startswith(this_machine().processor)
        assert row["noise floor"].startswith("KL ")  # effect sizes against controls
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        assert app.data.summary.numbers == "bfloat16 weights in float32 arithmetic"
