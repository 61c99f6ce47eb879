"""The multiple-choice assay: questions, their prompts, and scoring by the top-ranked letter.

A question is shown with its choices lettered A, B, C, ... and the line `Which option is
correct?`; the prompt ends with the cue `The correct option is` (the start of the assistant's
turn when the model has a chat template), so the next token is the answer letter. The model's answer is the choice whose letter token has the highest logit at
that position, among the question's letters only (the paper's assay: one answer token each).
Non-finite logits give no answer (`NO_ANSWER`), which counts as wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from mutatui.engine.decoding import encode_prompt
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation, mutated
from mutatui.errors import MutatuiError

LETTERS = "ABCDEFGHIJ"
ANSWER_CUE = "The correct option is"
INSTRUCTION = "Which option is correct?"
NO_ANSWER = -1
"""The answer recorded when the letter logits are not all finite (NaN or inf)."""

SHIPPED_QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "questions.jsonl"
FORMAT_HINT = 'each line: {"question": str, "choices": [2-10 str], "answer": index or letter}'


@dataclass(frozen=True)
class ChoiceQuestion:
    """A multiple-choice question; `answer` is the index of the right choice."""

    question: str
    choices: tuple[str, ...]
    answer: int


def _parse_answer(value: object, count: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"answer must be an index or a letter, got {value!r}")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS:
        index = LETTERS.index(value.strip().upper())
    else:
        raise ValueError(f"answer must be an index or a letter, got {value!r}")
    if not 0 <= index < count:
        raise ValueError(f"answer {value!r} is out of range for {count} choices")
    return index


def parse_question(record: object) -> ChoiceQuestion:
    """One JSON record as a question; ValueError says what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in ("question", "choices", "answer") if key not in record]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    question, choices = record["question"], record["choices"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    if (
        not isinstance(choices, list)
        or not 2 <= len(choices) <= len(LETTERS)
        or not all(isinstance(c, str) and c.strip() for c in choices)
    ):
        raise ValueError(f"choices must be a list of 2 to {len(LETTERS)} non-empty strings")
    return ChoiceQuestion(
        question.strip(),
        tuple(c.strip() for c in choices),
        _parse_answer(record["answer"], len(choices)),
    )


def load_questions(path: str | Path | None = None) -> list[ChoiceQuestion]:
    """Questions from a JSONL file (blank lines skipped); None loads the shipped set."""
    source = SHIPPED_QUESTIONS if path is None else Path(path).expanduser()
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise MutatuiError(
            f"cannot read questions file {source}: {error.__class__.__name__}"
        ) from error
    questions: list[ChoiceQuestion] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            questions.append(parse_question(json.loads(line)))
        except json.JSONDecodeError as error:
            raise MutatuiError(
                f"{source}:{number}: not valid JSON ({error.msg}); {FORMAT_HINT}"
            ) from None
        except ValueError as error:
            raise MutatuiError(f"{source}:{number}: {error}; {FORMAT_HINT}") from None
    if not questions:
        raise MutatuiError(f"{source} holds no questions; {FORMAT_HINT}")
    return questions


def question_text(question: ChoiceQuestion) -> str:
    """The question as the user sees it: the question, lettered choices, the instruction."""
    lines = [question.question]
    lines += [f"{LETTERS[i]}. {choice}" for i, choice in enumerate(question.choices)]
    lines.append(INSTRUCTION)
    return "\n".join(lines)


def _cue_ids(lm: LoadedModel) -> list[int]:
    return list(lm.tokenizer(ANSWER_CUE, add_special_tokens=False).input_ids)


def render_question(lm: LoadedModel, question: ChoiceQuestion, *, chat: bool = True) -> list[int]:
    """Prompt token ids ending with the answer cue, so the next token is the answer letter."""
    body = question_text(question) if chat else question_text(question) + "\n"
    return encode_prompt(lm, body, chat=chat) + _cue_ids(lm)


def choice_token_ids(lm: LoadedModel, count: int) -> list[int]:
    """The token each answer letter is after the cue: `" A"` where the tokenizer spells a
    letter after the cue with its space (SmolLM2, Llama), else the bare letter."""
    if not 1 <= count <= len(LETTERS):
        raise MutatuiError(f"a question has 2 to {len(LETTERS)} choices, got {count}")
    cue = _cue_ids(lm)
    ids: list[int] = []
    for letter in LETTERS[:count]:
        for spelling in (f" {letter}", letter):
            full = list(lm.tokenizer(ANSWER_CUE + spelling, add_special_tokens=False).input_ids)
            if len(full) == len(cue) + 1 and full[: len(cue)] == cue:
                ids.append(full[-1])
                break
        else:
            raise MutatuiError(
                f"the tokenizer of {lm.name} has no single token for answer letter {letter!r}"
            )
    return ids


def pick_choice(logits: torch.Tensor, letter_ids: Sequence[int]) -> int:
    """The choice whose letter has the highest logit (first one on a tie); NO_ANSWER when the
    letter logits are not all finite."""
    scores = logits[list(letter_ids)].float()
    if not bool(torch.isfinite(scores).all()):
        return NO_ANSWER
    return int(scores.argmax())


def naive_choices(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    questions: Sequence[ChoiceQuestion],
    mutation: Mutation | None,
    *,
    chat: bool = True,
) -> list[int]:
    """The reference path: edit the weight, one forward pass per question, restore."""
    device = next(lm.model.parameters()).device
    answers: list[int] = []
    with mutated(catalog, mutation) if mutation else nullcontext(), torch.inference_mode():
        for question in questions:
            ids = torch.tensor([render_question(lm, question, chat=chat)], device=device)
            logits = lm.model(input_ids=ids).logits[0, -1]
            answers.append(pick_choice(logits, choice_token_ids(lm, len(question.choices))))
    return answers


def score(questions: Sequence[ChoiceQuestion], answers: Sequence[int]) -> int:
    """How many questions were answered right."""
    if len(questions) != len(answers):
        raise MutatuiError(f"{len(answers)} answers for {len(questions)} questions")
    return sum(q.answer == a for q, a in zip(questions, answers, strict=True))


def chance_score(questions: Sequence[ChoiceQuestion]) -> float:
    """The expected score of answering uniformly at random."""
    return math.fsum(1 / len(q.choices) for q in questions)
