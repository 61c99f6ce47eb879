"""The multiple-choice assay: question files and scores. How a model is asked and how it
answers is `engine.questions`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from mutatui.engine.questions import LETTERS, ChoiceQuestion
from mutatui.errors import MutatuiError

SHIPPED_QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "questions.jsonl"
FORMAT_HINT = 'each line: {"question": str, "choices": [2-10 str], "answer": index or letter}'


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


def score(questions: Sequence[ChoiceQuestion], answers: Sequence[int]) -> int:
    """How many questions were answered right."""
    if len(questions) != len(answers):
        raise MutatuiError(f"{len(answers)} answers for {len(questions)} questions")
    return sum(q.answer == a for q, a in zip(questions, answers, strict=True))


def chance_score(questions: Sequence[ChoiceQuestion]) -> float:
    """The expected score of answering uniformly at random."""
    return math.fsum(1 / len(q.choices) for q in questions)
