"""A screen's spec: model, probes, matrices, kinds, decoding and sites, from TOML and flags.

The spec has one canonical table form. A TOML spec file is that form (every key optional
except `model`); it is stored as JSON with the screen, and its hash identifies the screen's
mutations, so a resume or a merge can check that it continues the same screen:

    name = "drosophila-tiles"
    model = "smollm2"
    layers = "all"                 # or [0, 1, 2], or "0-5,9"
    matrices = "all"               # or ["q", "down"]
    kinds = ["max", "min"]
    max_new_tokens = 48
    chat = true
    effects = true                 # record effect sizes (the default)

    [decoding]
    mode = "greedy"                # or "sample", with temperature and seed

    [sites]
    sampler = "tiles"              # tiles | random | stride | lines | region | list | full
    size = [64, 64]

    [[probes]]
    name = "drosophila"
    style = "describe"
    prompt = "The life cycle of Drosophila:"

    [choice]
    questions = "default"          # the shipped set, a JSONL path, or "none"
    only_changed = false           # ask the questions only of mutations that changed a text probe
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mutatui.engine.decoding import DEFAULT_MAX_NEW_TOKENS, Decoding
from mutatui.engine.forms import LARGEST_LAYER, is_whole, parse_whole, quoted, shown
from mutatui.engine.matrices import MatrixCatalog, MatrixInfo
from mutatui.errors import MutatuiError
from mutatui.screening.plan import Plan
from mutatui.screening.probes import (
    DEFAULT_CHOICE,
    DEFAULT_TEXT_PROBES,
    TextProbe,
    check_unique_names,
    probe_from_table,
)
from mutatui.screening.samplers import Sampler, Tiles, sampler_from_table

SPEC_KEYS = (
    "name",
    "model",
    "probes",
    "choice",
    "layers",
    "matrices",
    "kinds",
    "decoding",
    "max_new_tokens",
    "chat",
    "sites",
    "effects",
)


@dataclass(frozen=True)
class ScreenSpec:
    """Everything that determines a screen's mutations and outcomes (and its name)."""

    model: str
    name: str | None = None
    probes: tuple[TextProbe, ...] = DEFAULT_TEXT_PROBES
    choice: str | None = DEFAULT_CHOICE
    choice_only_changed: bool = False
    layers: tuple[int, ...] | None = None
    matrices: tuple[str, ...] | None = None
    kinds: tuple[str, ...] = ("max", "min")
    decoding: Decoding = field(default_factory=Decoding)
    chat: bool = True
    sites: Sampler = field(default_factory=lambda: Tiles(64, 64))
    effects: bool | None = None
    """Record effect sizes (`exact.effects`); None: the default, which records them."""

    def table(self) -> dict:
        """The canonical table form (what a TOML spec says, with every default filled in)."""
        return {
            "name": self.name,
            "model": self.model,
            "probes": [probe.table() for probe in self.probes],
            "choice": {
                "questions": self.choice or "none",
                "only_changed": self.choice_only_changed,
            },
            "layers": "all" if self.layers is None else list(self.layers),
            "matrices": "all" if self.matrices is None else list(self.matrices),
            "kinds": list(self.kinds),
            "decoding": {
                "mode": self.decoding.mode,
                "temperature": self.decoding.temperature,
                "seed": self.decoding.seed,
            },
            "max_new_tokens": self.decoding.max_new_tokens,
            "chat": self.chat,
            "sites": self.sites.table(),
        } | ({} if self.effects is None else {"effects": self.effects})

    def to_json(self) -> str:
        return json.dumps(self.table(), sort_keys=True)

    @property
    def digest(self) -> str:
        """sha256 of everything but the name and what is recorded besides the outcomes (effect
        sizes): equal digests mean the same mutations and probes."""
        identity = {k: v for k, v in self.table().items() if k not in ("name", "effects")}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    @property
    def display_name(self) -> str:
        return self.name or f"screen-{self.digest[:8]}"

    def select_matrices(self, catalog: MatrixCatalog) -> list[MatrixInfo]:
        """The chosen matrices in catalog order; a one-line error for an unknown layer or name."""
        for layer in self.layers or ():
            if not 0 <= layer < catalog.num_layers:
                raise MutatuiError(
                    f"layer {layer} out of range; valid: 0..{catalog.num_layers - 1}"
                )
        for name in self.matrices or ():
            if name not in catalog.names:
                raise MutatuiError(f"unknown matrix {name!r}; valid: {', '.join(catalog.names)}")
        return [
            info
            for info in catalog
            if (self.layers is None or info.layer in self.layers)
            and (self.matrices is None or info.name in self.matrices)
        ]

    def plan(self, catalog: MatrixCatalog) -> Plan:
        return Plan(catalog, self.select_matrices(catalog), self.sites, self.kinds)


LAYER_FORMS = "all, 3, 0-5, 0-5,9 or a list"


def parse_layers(value: object) -> tuple[int, ...] | None:
    """`all`, a list of integers, or text like `0-5,9`."""
    if value is None or value == "all":
        return None
    if isinstance(value, str):
        layers: list[int] = []
        for part in value.split(","):
            first, dash, last = part.strip().partition("-")
            if not is_whole(first) or (dash and not is_whole(last)):
                raise MutatuiError(f"bad layers {quoted(value)}; valid: {LAYER_FORMS}")
            start = parse_whole(first, "a layer", maximum=LARGEST_LAYER)
            stop = parse_whole(last, "a layer", maximum=LARGEST_LAYER) if dash else start
            if stop < start:
                raise MutatuiError(f"bad layer range {quoted(part.strip())}: {stop} < {start}")
            layers.extend(range(start, stop + 1))
        return tuple(sorted(set(layers)))
    if (
        isinstance(value, Sequence)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        if not all(0 <= v <= LARGEST_LAYER for v in value):
            raise MutatuiError(f"layers must be between 0 and {LARGEST_LAYER}, got {value!r}")
        return tuple(sorted(set(value)))
    raise MutatuiError(f"bad layers {quoted(str(value))}; valid: {LAYER_FORMS}")


def _names(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise MutatuiError(f"bad {what} {value!r}; give a list of names or comma-separated text")
    items = [v for v in items if v]
    if not items:
        raise MutatuiError(f"{what} is empty")
    return tuple(dict.fromkeys(items))


def parse_matrices(value: object) -> tuple[str, ...] | None:
    if value is None or value == "all":
        return None
    return _names(value, "matrices")


def parse_kinds(value: object) -> tuple[str, ...]:
    from mutatui.engine.mutations import parse_kind

    kinds = _names(value, "kinds")
    for kind in kinds:
        parse_kind(kind)
    return tuple(k.lower() for k in kinds)


def _choice_source(value: object) -> str | None:
    if value is None or value == "none":
        return None
    if not isinstance(value, str) or not value.strip():
        raise MutatuiError(f"bad choice questions {value!r}; valid: default, none, or a JSONL path")
    if value == DEFAULT_CHOICE:
        return DEFAULT_CHOICE
    path = Path(value).expanduser()
    if not path.is_file():
        raise MutatuiError(
            f"no such questions file: {value}; valid: default, none, or a JSONL path"
        )
    return str(path.resolve())


def _expect(value: object, kind: type | tuple[type, ...], what: str) -> object:
    """`value` if it has the type `kind` (a bool is not taken for a number)."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise MutatuiError(f"{what} must be {names}, got {value!r}")
    return value


def spec_from_table(table: Mapping[str, object], where: str = "spec") -> ScreenSpec:
    """Build and check a spec from its table form (a TOML file, or JSON stored with a screen)."""
    unknown = set(table) - set(SPEC_KEYS)
    if unknown:
        raise MutatuiError(
            f"{where}: unknown keys {', '.join(sorted(unknown))}; valid: {', '.join(SPEC_KEYS)}"
        )
    if not isinstance(table.get("model"), str) or not str(table["model"]).strip():
        raise MutatuiError(f'{where}: model is required, e.g. model = "smollm2"')
    updates: dict[str, object] = {"model": str(table["model"]).strip()}
    if table.get("name") is not None:
        updates["name"] = str(_expect(table["name"], str, "name")).strip() or None
    if "probes" in table:
        probes = table["probes"]
        if not isinstance(probes, list) or not probes:
            raise MutatuiError(f"{where}: probes must be a non-empty list of [[probes]] tables")
        updates["probes"] = tuple(probe_from_table(p, i + 1) for i, p in enumerate(probes))
        check_unique_names(updates["probes"])  # type: ignore[arg-type]
    if "choice" in table:
        choice = table["choice"]
        if not isinstance(choice, Mapping) or set(choice) - {"questions", "only_changed"}:
            raise MutatuiError(f"{where}: choice is a table with questions and only_changed")
        updates["choice"] = _choice_source(choice.get("questions", DEFAULT_CHOICE))
        updates["choice_only_changed"] = bool(
            _expect(choice.get("only_changed", False), bool, "choice.only_changed")
        )
    if "layers" in table:
        updates["layers"] = parse_layers(table["layers"])
    if "matrices" in table:
        updates["matrices"] = parse_matrices(table["matrices"])
    if "kinds" in table:
        updates["kinds"] = parse_kinds(table["kinds"])
    decoding = table.get("decoding", {})
    if not isinstance(decoding, Mapping) or set(decoding) - {"mode", "temperature", "seed"}:
        raise MutatuiError(f"{where}: decoding is a table with mode, temperature and seed")
    max_new = _expect(table.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS), int, "max_new_tokens")
    updates["decoding"] = Decoding(
        mode=str(decoding.get("mode", "greedy")),
        temperature=float(_expect(decoding.get("temperature", 0.7), (int, float), "temperature")),
        seed=int(_expect(decoding.get("seed", 0), int, "seed")),  # type: ignore[arg-type]
        max_new_tokens=int(max_new),  # type: ignore[arg-type]
    )
    if "chat" in table:
        updates["chat"] = bool(_expect(table["chat"], bool, "chat"))
    if "effects" in table:
        updates["effects"] = bool(_expect(table["effects"], bool, "effects"))
    if "sites" in table:
        sites = table["sites"]
        if not isinstance(sites, Mapping):
            raise MutatuiError(f"{where}: sites must be a table with sampler = ...")
        updates["sites"] = sampler_from_table(sites)
    return ScreenSpec(**updates)  # type: ignore[arg-type]


LARGEST_SPEC_BYTES = 1_000_000
"""A spec is a page of TOML; a larger file is not one (and could be a device or a log)."""


def load_spec_file(path: str | Path) -> dict:
    """The table of a TOML spec file; one line for a missing or malformed file."""
    source = Path(path).expanduser()
    if source.exists() and not source.is_file() and not source.is_dir():
        raise MutatuiError(f"{shown(source)} is not a regular file; give a TOML spec file")
    try:
        if source.is_file() and source.stat().st_size > LARGEST_SPEC_BYTES:
            raise MutatuiError(
                f"{shown(source)} is {source.stat().st_size:,} bytes; a TOML spec is at most "
                f"{LARGEST_SPEC_BYTES:,}"
            )
        with source.open("rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise MutatuiError(f"no such spec file: {shown(source)}") from None
    except IsADirectoryError:
        raise MutatuiError(f"{shown(source)} is a folder; give a TOML spec file") from None
    except UnicodeDecodeError:
        raise MutatuiError(f"{shown(source)} is not a TOML spec (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as error:
        raise MutatuiError(f"{shown(source)}: not valid TOML ({error})") from None
    except RecursionError:
        raise MutatuiError(f"{shown(source)}: its tables nest too deeply for a spec") from None
    except OSError as error:
        raise MutatuiError(f"cannot read {shown(source)}: {error.strerror}") from None
    return table


def spec_from_json(text: str) -> ScreenSpec:
    """The spec stored with a screen."""
    return spec_from_table(stored_table(text), where="stored spec")


def stored_table(text: str) -> Mapping[str, object]:
    """The table of a spec stored with a screen, refused in one line when it is not one."""
    try:
        table = json.loads(text)
    except (json.JSONDecodeError, RecursionError, TypeError):
        table = None
    if not isinstance(table, Mapping):
        raise MutatuiError(
            "the screen's stored spec is not a spec table: the database was changed outside "
            "mutatui; nothing was written"
        )
    return table


def with_overrides(spec: ScreenSpec, **changes: object) -> ScreenSpec:
    """A copy of `spec` with the given fields replaced (flags given on the command line)."""
    given = {key: value for key, value in changes.items() if value is not None}
    return replace(spec, **given)  # type: ignore[arg-type]
