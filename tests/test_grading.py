"""Phenotype grading rules, on hand-made cases, hand-written style examples and real outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mutatui.engine.questions import NO_ANSWER, ChoiceQuestion
from mutatui.screening.grading import (
    ChoiceGrade,
    Embedder,
    TextGrade,
    finalize,
    grade_choice,
    grade_text,
    is_destructive,
    is_garbage,
    is_repetitive,
    result_rows,
    text_severity,
    token_edit_distance,
)
from mutatui.screening.style import first_word, style_label, writer_styles
from mutatui.store.effects import EFFECT_COLUMNS
from mutatui.store.screens import RESULT_COLUMNS

OUTPUTS = Path(__file__).parent / "fixtures" / "outputs"
STYLE_EXAMPLES = json.loads((OUTPUTS / "styles.json").read_text(encoding="utf-8"))["examples"]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ([], [], 0.0),
        ([1, 2, 3], [1, 2, 3], 0.0),
        ([1, 2, 3], [1, 3], 1 / 3),
        ([1, 2], [3, 4, 5, 6], 1.0),
        ([1, 2, 3, 4], [2, 3, 4, 5], 0.5),
        ([], [7, 7], 1.0),
    ],
)
def test_token_edit_distance(a, b, distance):
    assert token_edit_distance(a, b) == pytest.approx(distance)
    assert token_edit_distance(b, a) == pytest.approx(distance)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("**Hello,** world", "hello"),
        ("  — The sun", "the"),
        ("Don't stop", "don't"),
        ("\n\n1. Egg", "1"),
        ("", None),
        ("!!! ...", None),
    ],
)
def test_first_word(text, word):
    assert first_word(text) == word


def test_repetition_loops():
    prose = list(range(100, 140))
    assert is_repetitive([5] * 12)
    assert not is_repetitive([5] * 11)
    assert is_repetitive(prose[:20] + [1, 2, 3] * 4)  # a 3-token loop over 12 tokens
    assert not is_repetitive(prose[:20] + [1, 2, 3] * 3)  # 9 tokens: too short to call
    assert is_repetitive(prose[:10] + list(range(8)) * 3)  # period 8, three times
    assert is_repetitive(prose[:6] + list(range(14)) * 3)  # a sentence of 14 tokens, 3 times
    assert not is_repetitive(prose[:6] + list(range(14)) * 2)  # twice is not yet a loop
    assert not is_repetitive(prose[:6] + list(range(17)) * 3)  # blocks over 16 tokens
    assert not is_repetitive(prose)
    assert not is_repetitive([1, 2, 3] * 4 + prose[:20])  # a loop that ended is no loop
    assert not is_repetitive([])


@pytest.mark.parametrize(
    ("text", "garbage"),
    [
        ("The cat sat on the mat.", False),
        ("Short!", False),
        ("\ufffd\ufffd\ufffd abc \ufffd\ufffd\ufffd\ufffd", True),
        ("Photosynthesis \ufffd makes sugar from light and water", False),
        ("0.0.0.0.0.0.0.0.0.0 ////", True),
        ("Привет hello мир world ещё", True),
        ("Фотосинтез превращает свет в сахар", False),
        ("The sun is called 太陽 in Japanese.", False),
        ("Drosophila development is a biripe" + "mic" * 20, True),
        ("Pneumonoultramicroscopicsilicovolcanoconiosis is a word.", False),  # 45 letters
    ],
)
def test_garbage(text, garbage):
    assert is_garbage(text) is garbage


@pytest.mark.parametrize("example", STYLE_EXAMPLES, ids=lambda e: f"{e['style']}:{e['text'][:24]}")
def test_style_of_hand_written_examples(example):
    assert style_label(example["text"]) == example["style"]


# Real SmolLM2 tile mutants (the bundled tiles-64 screen) that `is_repetitive` lets through: no
# exactly periodic tail. Short lines once made them read as verse.
NEAR_LOOPS = {
    "repeated lines": "The life cycle of a creature named\n\nThe life cycle of a creature named\n\n"
    "The life cycle of a creature named\n\nThe life cycle of a creature named\n\n"
    "The life cycle of a creature\n\nThe life cycle of",
    "repeated sentence": "The life cycle of a human is a cycle of life.\n\nThe life cycle of a human "
    "is a cycle of life.\n\nThe life cycle of a human is a cycle of life.\n\nThe life cycle of a human",
    "few distinct words": "\nThe first of.\n\nThe. The. The. The. The. The.\n. The. The.\n"
    ". The. The. The. The.\n. The. The. The.\n. The. The",
}


@pytest.mark.parametrize("text", NEAR_LOOPS.values(), ids=NEAR_LOOPS.keys())
def test_near_loops_have_no_style(text):
    assert style_label(text) == "other"


def test_one_or_two_words_a_line_are_not_verse():
    fragments = "\n\n\n\n to\n\n\n\n,\n\n\nl\n\n\nl\n\nfor\n\nthe end"
    assert style_label(fragments) != "poetic"
    assert style_label("Tiny wings unfold\nin the warm fruit's heart\na life begins softly") == (
        "poetic"
    )


def test_severity_table():
    def grade(**overrides):
        flags = {
            "changed": True,
            "cosine": 0.9,
            "edit_distance": 0.4,
            "empty": False,
            "repetitive": False,
            "garbage": False,
            "nonfinite": False,
        }
        return text_severity(**{**flags, **overrides})

    assert grade(changed=False, cosine=None) == 0
    assert grade() == 1
    assert grade(cosine=0.8) == 1
    assert grade(cosine=0.79) == 2
    assert grade(cosine=0.51) == 2
    assert grade(cosine=0.5) == 3
    assert grade(repetitive=True) == 2
    assert grade(empty=True) == 3
    assert grade(garbage=True) == 3
    assert grade(nonfinite=True) == 3
    assert grade(cosine=None, edit_distance=0.1) == 1  # no embedder: 1 - edit distance
    assert grade(cosine=None, edit_distance=0.6) == 3


def test_unchanged_output_grades_as_silent():
    grade = grade_text([1, 2, 3], "abc", [1, 2, 3], "abc", stopped=True, nonfinite=False)
    assert grade == TextGrade(
        changed=False,
        diverge_at=None,
        edit_distance=0.0,
        cosine=None,
        text=None,
        first_word=None,
        empty=False,
        repetitive=False,
        garbage=False,
        nonfinite=False,
        style=None,
        severity=0,
    )


def test_embedder_is_used_for_changed_outputs_only(embedder):
    kept = grade_text([1, 2], "The egg.", [1, 2], "The egg.", stopped=True, nonfinite=False,
                      embedder=embedder)  # fmt: skip
    assert kept.cosine is None
    moved = grade_text([1, 2], "The egg.", [1, 3], "The larva.", stopped=True, nonfinite=False,
                       embedder=embedder)  # fmt: skip
    assert moved.cosine == pytest.approx(embedder.cosines("The egg.", ["The larva."])[0])
    given = grade_text([1, 2], "The egg.", [1, 3], "The larva.", stopped=True, nonfinite=False,
                       cosine=0.3, embedder=embedder)  # fmt: skip
    assert given.cosine == 0.3 and given.severity == 3


def test_immediate_eos_is_empty_and_severe(embedder):
    grade = grade_text(
        [1, 2, 3], "The egg hatches.", [], "", stopped=True, nonfinite=False, embedder=embedder
    )
    assert grade.changed and grade.diverge_at == 0 and grade.empty
    assert grade.cosine == 0.0 and grade.edit_distance == 1.0
    assert grade.severity == 3 and grade.style == "other" and grade.first_word is None


def test_early_stop_diverges_where_the_baseline_goes_on():
    grade = grade_text(
        [1, 2, 3, 4], "one two three four", [1, 2], "one two", stopped=True, nonfinite=False,
        cosine=0.85,
    )  # fmt: skip
    assert grade.changed and grade.diverge_at == 2 and grade.edit_distance == 0.5
    assert grade.severity == 1 and grade.first_word == "one"


def questions_with_baseline(right: int, total: int = 21):
    """`total` 4-choice questions with answer 0; baseline answers right on the first `right`."""
    questions = [ChoiceQuestion(f"Q{i}", ("a", "b", "c", "d"), 0) for i in range(total)]
    return questions, [0] * right + [1] * (total - right)


@pytest.mark.parametrize(
    ("mutant_right", "delta", "destructive", "severity"),
    [
        (15, 1, False, 0),
        (14, 0, False, 0),
        (13, -1, False, 1),
        (12, -2, False, 1),
        (11, -3, False, 2),
        (8, -6, False, 2),
        (7, -7, True, 3),  # half the baseline's 14
        (5, -9, True, 3),  # below chance (5.25)
        (0, -14, True, 3),
    ],
)
def test_choice_grades_against_a_baseline_of_14(mutant_right, delta, destructive, severity):
    questions, baseline = questions_with_baseline(14)
    answers = [0] * mutant_right + [NO_ANSWER] * (21 - mutant_right)
    assert grade_choice(baseline, answers, questions) == ChoiceGrade(
        mutant_right, delta, destructive, severity
    )


def test_destruction_needs_a_fall():
    assert not is_destructive(4, 4, chance=5.25)  # a weak baseline at chance is not destroyed
    assert is_destructive(4, 2, chance=5.25)
    assert not is_destructive(4, 5, chance=5.25)
    assert is_destructive(20, 10, chance=5.25) and not is_destructive(20, 11, chance=5.25)


def text_grade(cosine: float | None, severity: int, changed: bool = True) -> TextGrade:
    return TextGrade(
        changed=changed,
        diverge_at=0 if changed else None,
        edit_distance=0.5 if changed else 0.0,
        cosine=cosine,
        text="x" if changed else None,
        first_word="x" if changed else None,
        empty=False,
        repetitive=False,
        garbage=False,
        nonfinite=False,
        style="other" if changed else None,
        severity=severity,
    )


def test_finalize_worst_probe_and_malignant():
    destroyed = ChoiceGrade(score=3, delta=-11, destructive=True, severity=3)
    dented = ChoiceGrade(score=12, delta=-2, destructive=False, severity=1)
    silent, mild, lost = text_grade(None, 0, False), text_grade(0.9, 1), text_grade(0.4, 3)
    assert finalize([silent, mild], None) == (1, False)
    assert finalize([silent, mild], dented) == (1, False)
    assert finalize([silent, silent], destroyed) == (3, False)
    assert finalize([mild, lost], dented) == (3, False)
    assert finalize([mild, lost], None) == (3, False)
    assert finalize([mild, lost], destroyed) == (3, True)
    assert finalize([text_grade(0.5, 3)], destroyed) == (3, True)
    assert finalize([text_grade(0.51, 2)], destroyed) == (3, False)


def test_result_rows_are_results_columns_text_probes_then_choice():
    destroyed = ChoiceGrade(score=3, delta=-11, destructive=True, severity=3)
    rows = result_rows([text_grade(None, 0, False), text_grade(0.4, 3)], destroyed)
    assert len(rows) == 3
    for row in rows:
        assert set(row) <= {*RESULT_COLUMNS, *EFFECT_COLUMNS} and row["malignant"] is True
    assert rows[0]["changed"] is False and rows[0]["severity"] == 0
    assert rows[1]["cosine"] == 0.4 and rows[1]["severity"] == 3
    assert rows[2]["choice_score"] == 3 and rows[2]["choice_delta"] == -11
    assert rows[2]["destructive"] is True and rows[2]["changed"] is True
    assert len(result_rows([text_grade(0.9, 1)], None)) == 1


def test_embedder_cosines(embedder):
    baseline = "The life cycle of Drosophila has four stages: egg, larva, pupa and adult."
    texts = [
        baseline,
        "Fruit flies develop from eggs into larvae, then pupae, and finally adults.",
        "Stock prices fell sharply on Tuesday after the bank raised interest rates.",
        "   ",
    ]
    same, paraphrase, unrelated, blank = embedder.cosines(baseline, texts)
    assert same == pytest.approx(1.0, abs=1e-5)
    assert paraphrase > 0.5 > unrelated
    assert blank == 0.0
    alone = [embedder.cosines(baseline, [text])[0] for text in texts]
    assert alone == pytest.approx([same, paraphrase, unrelated, blank], abs=1e-5)
    assert embedder.cosines(baseline, []) == []


REAL_FIXTURES = sorted(p for p in OUTPUTS.glob("*.json") if p.name != "styles.json")


@pytest.mark.parametrize("path", REAL_FIXTURES, ids=lambda p: p.stem)
def test_real_smollm2_outputs(path, embedder):
    """Real baseline and mutant continuations of SmolLM2 (make_fixtures.py), graded; each
    mutant's `expect` holds the grades a reader gives it by eye."""
    record = json.loads(path.read_text(encoding="utf-8"))
    baseline = record["baseline"]
    mutants = record["mutants"]
    assert mutants, f"{path.name} holds no mutants"
    baseline_grade = grade_text(
        baseline["tokens"], baseline["text"], baseline["tokens"], baseline["text"],
        stopped=baseline["stopped"], nonfinite=False,
    )  # fmt: skip
    assert not baseline_grade.changed and baseline_grade.severity == 0
    assert style_label(baseline["text"]) == record["baseline_style"]
    cosines = embedder.cosines(baseline["text"], [m["text"] for m in mutants])
    for mutant, cosine in zip(mutants, cosines, strict=True):
        changed = mutant["tokens"] != baseline["tokens"]
        grade = grade_text(
            baseline["tokens"],
            baseline["text"],
            mutant["tokens"],
            mutant["text"],
            stopped=mutant["stopped"],
            nonfinite=mutant["nonfinite"],
            cosine=cosine if changed else None,
        )
        assert grade.changed is changed, mutant["mutation"]
        if grade.nonfinite or grade.empty or grade.garbage:
            assert grade.severity == 3, mutant["mutation"]
        observed = {key: getattr(grade, key) for key in mutant["expect"]}
        assert observed == mutant["expect"], mutant["mutation"]


def test_writer_styles_leave_out_the_baselines_own_style():
    assert writer_styles("The sky is blue because air scatters short waves most.") == (
        "conversational",
        "poetic",
    )
    email = "Dear Sam,\n\nI hope you are well. Would you like to join me for lunch?"
    assert style_label(email) == "conversational"
    assert writer_styles(email) == ("poetic",)
    assert writer_styles(None) == ("conversational", "poetic")
