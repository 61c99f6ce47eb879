"""The multiple-choice assay: the question format, prompts, letter tokens and naive scoring."""

from __future__ import annotations

import json

import pytest
import torch

from mutatui.engine.decoding import encode_prompt
from mutatui.engine.mutations import make_mutation, mutated
from mutatui.engine.questions import (
    ANSWER_CUE,
    NO_ANSWER,
    ChoiceQuestion,
    choice_token_ids,
    naive_choices,
    pick_choice,
    question_text,
    render_question,
)
from mutatui.errors import MutatuiError
from mutatui.screening.choice import chance_score, load_questions, score

QUESTION = ChoiceQuestion("Which is a prime?", ("4", "6", "7", "9"), 2)


def write_lines(tmp_path, lines: list[str]):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_shipped_set_is_21_four_choice_questions():
    questions = load_questions()
    assert len(questions) == 21
    assert all(len(q.choices) == 4 and 0 <= q.answer < 4 for q in questions)
    assert len({q.question for q in questions}) == 21
    assert chance_score(questions) == pytest.approx(21 / 4)


def test_answers_as_index_or_letter_and_blank_lines_skipped(tmp_path):
    path = write_lines(
        tmp_path,
        [
            json.dumps({"question": "Q1", "choices": ["a", "b", "c"], "answer": 1}),
            "",
            json.dumps({"question": "Q2", "choices": ["a", "b"], "answer": "b"}),
            json.dumps({"question": " Q3 ", "choices": [" x ", "y"], "answer": " A"}),
        ],
    )
    questions = load_questions(path)
    assert questions == [
        ChoiceQuestion("Q1", ("a", "b", "c"), 1),
        ChoiceQuestion("Q2", ("a", "b"), 1),
        ChoiceQuestion("Q3", ("x", "y"), 0),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"question": "Q", "choices": ["a", "b"]}', "missing answer"),
        ('{"question": "", "choices": ["a", "b"], "answer": 0}', "question must be"),
        ('{"question": "Q", "choices": ["a"], "answer": 0}', "choices must be"),
        ('{"question": "Q", "choices": "ab", "answer": 0}', "choices must be"),
        ('{"question": "Q", "choices": ["a", "b"], "answer": 2}', "out of range"),
        ('{"question": "Q", "choices": ["a", "b"], "answer": "C"}', "out of range"),
        ('{"question": "Q", "choices": ["a", "b"], "answer": "yes"}', "index or a letter"),
        ('{"question": "Q", "choices": ["a", "b"], "answer": true}', "index or a letter"),
    ],
)
def test_a_bad_line_is_one_error_naming_the_line(tmp_path, line, expected):
    good = json.dumps({"question": "Q", "choices": ["a", "b"], "answer": 0})
    path = write_lines(tmp_path, [good, good, line])
    with pytest.raises(MutatuiError) as error:
        load_questions(path)
    message = str(error.value)
    assert f"{path}:3:" in message and expected in message
    assert "\n" not in message and '"question"' in message  # says what is valid


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(MutatuiError, match="cannot read questions file"):
        load_questions(tmp_path / "absent.jsonl")
    with pytest.raises(MutatuiError, match="holds no questions"):
        load_questions(write_lines(tmp_path, [""]))


def test_prompt_ends_with_the_cue_after_the_lettered_question(tiny):
    lm, _ = tiny
    ids = render_question(lm, QUESTION)
    text = lm.tokenizer.decode(ids)
    assert text.endswith(ANSWER_CUE)
    assert question_text(QUESTION) == (
        "Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9\nWhich option is correct?"
    )
    assert "A. 4" in text and "D. 9" in text  # the tiny tokenizer has no newline token
    assert ids[: len(encode_prompt(lm, question_text(QUESTION)))] == encode_prompt(
        lm, question_text(QUESTION)
    )
    plain = lm.tokenizer.decode(render_question(lm, QUESTION, chat=False))
    assert "<|user|>" not in plain and plain.endswith(ANSWER_CUE)


def test_letter_tokens_are_what_follows_the_cue(tiny):
    lm, _ = tiny
    ids = choice_token_ids(lm, 4)
    # The character-level tokenizer has no " A" token, so the bare letter follows the cue.
    assert [lm.tokenizer.decode([i]) for i in ids] == ["A", "B", "C", "D"]
    with pytest.raises(MutatuiError, match="2 to 10"):
        choice_token_ids(lm, 11)


def test_pick_choice_ranks_only_the_letters_and_refuses_nonfinite():
    logits = torch.tensor([9.0, 1.0, 3.0, 3.0, 2.0])
    assert pick_choice(logits, [1, 2, 3, 4]) == 1  # 3.0 twice: the first wins
    assert pick_choice(logits, [4, 1]) == 0
    assert pick_choice(torch.tensor([1.0, float("nan"), 0.0]), [0, 1, 2]) == NO_ANSWER
    assert pick_choice(torch.tensor([1.0, float("inf"), 0.0]), [0, 1, 2]) == NO_ANSWER
    assert pick_choice(torch.tensor([float("nan"), 1.0, 0.0]), [1, 2]) == 0


def test_score_counts_right_answers():
    questions = [QUESTION, ChoiceQuestion("Q", ("a", "b"), 0)]
    assert score(questions, [2, 0]) == 2
    assert score(questions, [2, NO_ANSWER]) == 1
    with pytest.raises(MutatuiError, match="1 answers for 2 questions"):
        score(questions, [2])


def _letter_argmax(lm, question: ChoiceQuestion) -> int:
    """Independent reference: the full next-token distribution from model.generate's scores."""
    ids = torch.tensor([render_question(lm, question)])
    with torch.inference_mode():
        out = lm.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=0,
        )
    scores = out.scores[0][0]
    letters = choice_token_ids(lm, len(question.choices))
    return max(range(len(letters)), key=lambda i: (scores[letters[i]].item(), -i))


def test_naive_choices_edits_restores_and_matches_generate(tiny):
    lm, catalog = tiny
    questions = [QUESTION, ChoiceQuestion("Colour of grass?", ("red", "green", "blue"), 1)]
    mutation = make_mutation("L1.down[0:32,0:64]", "max", catalog)
    before = {name: p.clone() for name, p in lm.model.named_parameters()}
    baseline = naive_choices(lm, catalog, questions, None)
    mutant = naive_choices(lm, catalog, questions, mutation)
    for name, parameter in lm.model.named_parameters():
        assert torch.equal(parameter, before[name]), name
    assert baseline == [_letter_argmax(lm, q) for q in questions]
    with mutated(catalog, mutation):
        assert mutant == [_letter_argmax(lm, q) for q in questions]


def test_a_nan_weight_gives_no_answers(tiny):
    lm, catalog = tiny
    mutation = make_mutation("L0.q[0:8,0:8]", "nan", catalog)
    answers = naive_choices(lm, catalog, [QUESTION] * 2, mutation)
    assert answers == [NO_ANSWER, NO_ANSWER]
    assert score([QUESTION] * 2, answers) == 0


@pytest.mark.smollm2
def test_smollm2_baseline_gets_14_of_the_shipped_21_right(smollm2):
    lm, catalog = smollm2
    questions = load_questions()
    answers = naive_choices(lm, catalog, questions, None)
    assert score(questions, answers) == 14
    assert NO_ANSWER not in answers
