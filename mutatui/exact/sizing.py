"""How many mutations a batch and a teacher-forced pass hold: by the model's size and the
memory free on its device (a batch halves itself when the device runs out: `Screener.shrink_batch`)."""

from __future__ import annotations

import os

import torch

from mutatui.engine.architecture import text_config

SMALL_MODEL_PARAMETERS = 1_000_000_000

MEMORY_SHARE = 0.5
"""The share of the device's free memory (after loading the model) a batch may take."""

ROW_POSITIONS = 256
"""Positions a batch row is sized for (a probe's prompt and its continuation)."""

PASS_TOKENS = 2048
"""Tokens (rows x positions) per teacher-forced pass on a CPU. A pass's activations then stay
in the processor's cache between its elementwise steps (128 rows of an 83-token probe make 65 MB
per MLP activation); on SmolLM2 with a 2-core CPU, passes of 12-24 rows ran the same mutations
about 15% faster than one of 128. Onward decoding still gathers `batch_size` rows."""


def free_memory(device: torch.device) -> int | None:
    """Bytes free on `device` now: the GPU's free memory, or the machine's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu" and hasattr(os, "sysconf"):
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return None


def row_bytes(model: torch.nn.Module, positions: int = ROW_POSITIONS) -> int:
    """What one mutant row of a batch holds at most: its keys and values for every layer (kept
    from teacher forcing, copied when it diverges, grown while decoding on: three copies), and
    the widest activation of a pass (the MLP's), over `positions` positions."""
    config = text_config(model)
    element = next(model.parameters()).element_size()
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    keys_values = 2 * layers * kv_heads * head_dim * positions * element
    intermediate = getattr(config, "intermediate_size", None) or 4 * config.hidden_size
    activations = 3 * intermediate * positions * max(element, 4)
    return 3 * keys_values + activations


def batch_size_for(parameters: int, free: int | None, per_row: int) -> int:
    """Rows per batch: 128 for models under a billion parameters, where wider batches make
    onward decoding's matrix products efficient (SmolLM2 on a 2-core CPU: tiles screen ~1.3x
    faster than at 32), 32 for larger ones; fewer when `MEMORY_SHARE` of the `free` bytes does
    not hold that many rows of `per_row` bytes."""
    by_size = 128 if parameters < SMALL_MODEL_PARAMETERS else 32
    if free is None:
        return by_size
    return max(1, min(by_size, int(MEMORY_SHARE * free) // max(per_row, 1)))


def default_batch_size(model: torch.nn.Module) -> int:
    """Rows per batch when none is asked for (`batch_size_for`), on the model's device."""
    parameters = sum(parameter.numel() for parameter in model.parameters())
    device = next(model.parameters()).device
    return batch_size_for(parameters, free_memory(device), row_bytes(model))


def pass_rows(batch_size: int, device: torch.device, positions: int) -> int:
    """Mutations per teacher-forced pass over `positions` tokens (`PASS_TOKENS` on a CPU; a
    whole batch elsewhere)."""
    if device.type != "cpu":
        return batch_size
    return max(1, min(batch_size, PASS_TOKENS // positions))
