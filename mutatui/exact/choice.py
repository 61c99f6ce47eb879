"""Choice questions on the layered engine: each question's prompt is traced once and each
layer's batch runs from its layer up; the prefix all the questions share (the chat template's
system turn) runs once per batch, and each question from there on. A near tie among the answer
letters settles that question naively."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mutatui.engine.decoding import too_close
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation
from mutatui.engine.questions import ChoiceQuestion, choice_token_ids, naive_choices, pick_choice
from mutatui.engine.questions import render_question as render_choice_question
from mutatui.exact.layers import KVStore, LayerRunner, layer_batches
from mutatui.exact.probes import ProbeTraces


class ChoicePath:
    """Answers choice questions for many mutants at once, as each would alone: `pass_rows`
    says how many mutants a pass over that many positions holds, `tolerance` a mutant's
    near-tie margin."""

    def __init__(
        self,
        lm: LoadedModel,
        catalog: MatrixCatalog,
        runner: LayerRunner | None,
        traces: ProbeTraces,
        pass_rows: Callable[[int], int],
        tolerance: Callable[[Mutation], float],
    ) -> None:
        self.lm = lm
        self.catalog = catalog
        self.runner = runner
        self.traces = traces
        self.pass_rows = pass_rows
        self.tolerance = tolerance

    def answers(
        self, questions: Sequence[ChoiceQuestion], mutations: Sequence[Mutation], *, chat: bool
    ) -> list[list[int]]:
        """The chosen choice index per question (`NO_ANSWER` when non-finite), per mutation."""
        if self.runner is None:
            return [
                naive_choices(self.lm, self.catalog, questions, m, chat=chat) for m in mutations
            ]
        answers = [[0] * len(questions) for _ in mutations]
        with torch.inference_mode():
            prompts = [render_choice_question(self.lm, q, chat=chat) for q in questions]
            traces = [self.traces.question(prompt) for prompt in prompts]
            shared = self.traces.shared_prefix(prompts)
            rows = self.pass_rows(max(len(prompt) for prompt in prompts))
            for batch in layer_batches(mutations, rows):
                batch_mutations = [m for _, m in batch]
                start, prefix_kv = 0, KVStore()
                if shared is not None:
                    start = shared.length
                    prefix_kv = self.runner.run_prefix(shared.trace, batch_mutations)
                for number, (question, trace) in enumerate(zip(questions, traces, strict=True)):
                    final = self.runner.run_after(trace, start, batch_mutations, prefix_kv)
                    decided = self._choose(question, batch, final, chat)
                    for index, chosen in decided.items():
                        answers[index][number] = chosen
        return answers

    def _choose(
        self,
        question: ChoiceQuestion,
        batch: Sequence[tuple[int, Mutation]],
        final: torch.Tensor,
        chat: bool,
    ) -> dict[int, int]:
        """Mutation index -> chosen choice for one question, from the final-norm outputs at its
        answer position (one row per mutation of `batch`); near ties are settled naively."""
        letters = choice_token_ids(self.lm, len(question.choices))
        scores = self.runner.token_logits(final, letters)
        top = scores.float().topk(2, dim=-1).values
        margins = (top[:, 0] - top[:, 1]) / (1.0 + top[:, 0].abs())
        finite = torch.isfinite(scores).all(dim=-1)
        chosen: dict[int, int] = {}
        for row, (index, mutation) in enumerate(batch):
            margin = float(margins[row])
            tie = too_close(margin, self.tolerance(mutation))
            if not bool(finite[row]) or tie:
                chosen[index] = naive_choices(
                    self.lm, self.catalog, [question], mutation, chat=chat
                )[0]
            else:
                chosen[index] = pick_choice(scores[row], range(len(letters)))
        return chosen
