"""Multiple-choice questions as a model sees and answers them: the prompt, the answer letters'
tokens, the pick, and the naive path (edit the weight, one forward pass per question, restore).

A question is shown with its choices lettered A, B, C, ... and the line `Which option is
correct?`; the prompt ends with the cue `The correct option is` (the start of the assistant's
turn when the model has a chat template), so the next token is the answer letter. The model's
answer is the choice whose letter token has the highest logit at that position, among the
question's letters only (the paper's assay: one answer token each). Non-finite logits give no
answer (`NO_ANSWER`), which counts as wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

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


@dataclass(frozen=True)
class ChoiceQuestion:
    """A multiple-choice question; `answer` is the index of the right choice."""

    question: str
    choices: tuple[str, ...]
    answer: int


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
