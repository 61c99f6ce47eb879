"""What this machine's kernels allow, measured with torch alone (not with the code under test):
tests of behaviour that rests on it run where it holds and say why they skip elsewhere."""

from functools import cache

import pytest
import torch
import torch.nn.functional as F


@cache
def bfloat16_rows_compute_as_lone_rows(rows: int = 32) -> bool:
    """Whether bfloat16 products of 2..`rows` rows give every row as a product of that row
    alone does (oneDNN on an AVX-512 CPU: yes): the lockstep decoder's premise."""
    generator = torch.Generator().manual_seed(0)
    for inputs, outputs in ((32, 64), (576, 1536)):
        weight = torch.randn(outputs, inputs, generator=generator).bfloat16()
        batch = torch.randn(rows, inputs, generator=generator).bfloat16()
        lone = torch.cat([F.linear(batch[n : n + 1], weight) for n in range(rows)])
        if not all(torch.equal(F.linear(batch[:m], weight), lone[:m]) for m in range(2, rows + 1)):
            return False
    return True


lockstep_runs_here = pytest.mark.skipif(
    not bfloat16_rows_compute_as_lone_rows(),
    reason="this machine's bfloat16 products of a few rows do not compute as lone rows",
)
