"""Probes, the phenotype assays of a screen: text prompts and a multiple-choice question set.

A text probe is a prompt with a style label (describe, explain, instruct, code, ...: the kind
of answer it asks for); a mutant's continuation is compared with the baseline's. The choice
probe is a JSONL question file (format and scoring in `mutatui.screening.choice`); `default`
names the question set shipped with mutatui.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mutatui.engine.forms import DROSOPHILA_PROMPT
from mutatui.engine.questions import ChoiceQuestion
from mutatui.errors import MutatuiError
from mutatui.screening.choice import SHIPPED_QUESTIONS, load_questions

DEFAULT_CHOICE = "default"
"""The `choice` setting that names the shipped question set."""

PROBE_FORMS = "STYLE=PROMPT, e.g. 'describe=The life cycle of Drosophila:'"

_STYLE_PATTERN = re.compile(r"^[A-Za-z][\w-]*$")


@dataclass(frozen=True)
class TextProbe:
    name: str
    prompt: str
    style: str | None = None

    def table(self) -> dict:
        return {"name": self.name, "prompt": self.prompt, "style": self.style}


DEFAULT_TEXT_PROBES = (
    TextProbe("drosophila", DROSOPHILA_PROMPT, "describe"),
    TextProbe("sky", "Explain why the sky is blue.", "explain"),
    TextProbe("reverse", "Write a Python function that reverses a string.", "code"),
)
"""The paper's kinds of prompt: a descriptive one (its own example), a science one, code."""


def _checked_style(style: object, where: str) -> str | None:
    if style is None:
        return None
    if not isinstance(style, str) or not _STYLE_PATTERN.match(style):
        raise MutatuiError(f"{where}: style {style!r} must be one word, e.g. describe, explain")
    return style.lower()


def probe_from_flag(text: str, position: int) -> TextProbe:
    """`--probe STYLE=PROMPT`; the probe is named after its position (p1, p2, ...)."""
    style, equals, prompt = text.partition("=")
    if not equals or not prompt.strip():
        raise MutatuiError(f"bad --probe {text!r}; valid: {PROBE_FORMS}")
    return TextProbe(f"p{position}", prompt, _checked_style(style.strip(), "--probe"))


def probe_from_table(table: object, position: int) -> TextProbe:
    """One `[[probes]]` entry of a TOML spec: prompt, optional style and name."""
    where = f"probes[{position}]"
    if not isinstance(table, Mapping):
        raise MutatuiError(f"{where} must be a table with prompt, style and name")
    extra = set(table) - {"prompt", "style", "name"}
    if extra:
        raise MutatuiError(
            f"{where}: unknown keys {', '.join(sorted(extra))}; valid: prompt, style, name"
        )
    prompt = table.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise MutatuiError(f"{where} needs a non-empty prompt")
    name = table.get("name", f"p{position}")
    if not isinstance(name, str) or not name.strip():
        raise MutatuiError(f"{where}: name must be a non-empty string")
    return TextProbe(name.strip(), prompt, _checked_style(table.get("style"), where))


def check_unique_names(probes: Sequence[TextProbe]) -> None:
    seen: set[str] = set()
    for probe in probes:
        if probe.name in seen:
            raise MutatuiError(f"two probes are named {probe.name!r}; give each a unique name")
        seen.add(probe.name)


@dataclass(frozen=True)
class ChoiceProbe:
    """A question set as a probe; `source` is `default` or the file it was read from."""

    source: str
    questions: tuple[ChoiceQuestion, ...]

    @property
    def name(self) -> str:
        return "choice" if self.source == DEFAULT_CHOICE else f"choice:{Path(self.source).name}"


def load_choice_probe(source: str) -> ChoiceProbe:
    """The shipped set for `default`, else the JSONL file at `source`."""
    path = SHIPPED_QUESTIONS if source == DEFAULT_CHOICE else Path(source).expanduser()
    return ChoiceProbe(source, tuple(load_questions(path)))
