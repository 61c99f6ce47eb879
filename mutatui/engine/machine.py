"""Where a computation ran: the processor (or GPU) and what picks its kernels.

Matrix products round differently on different processors (an Intel CPU with AMX tiles, an
AVX-512 CPU without them, an AVX2 one, each GPU generation), so a decision that is a near tie
of the unmutated model can go either way on another machine, while every other outcome is the
same. A screen records the machine it ran on (`store.machines`), and `mutatui verify` says
whether it is verifying on the same one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

KERNEL_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "avx_vnni",
    "asimd",
    "sve",
)
"""Processor flags that decide which kernels the math libraries pick (x86 and Arm)."""

REPRODUCIBILITY_VARIABLES = (
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "OMP_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
)
"""Environment variables that change which kernel runs or how it rounds."""


@dataclass(frozen=True)
class Machine:
    """A machine as the kernels see it. Two computations on machines with the same `digest`
    pick the same kernels and round alike."""

    processor: str
    """`AMD EPYC (x86_64, 2 cores)`, or the GPU: `NVIDIA H100 80GB HBM3 (sm_90)`."""
    isa: str
    """The kernel-picking flags the processor has (`KERNEL_FLAGS`), space-separated."""
    kernels: str
    """What the libraries dispatch to: `ATen AVX512`, with any cap set in the environment."""
    versions: str
    """`torch 2.13.0, oneDNN 3.12.0, MKL 2024.2` (and CUDA, cuDNN on a GPU)."""
    threads: int
    settings: str
    """The reproducibility settings in effect: environment variables, deterministic
    algorithms, the matmul precision."""

    @property
    def digest(self) -> str:
        """A short hash of everything but the thread count and the settings' wording."""
        identity = "|".join((self.processor, self.isa, self.kernels, self.versions))
        return hashlib.sha256(identity.encode()).hexdigest()[:12]

    def describe(self) -> str:
        """One line: processor, kernels, versions, threads."""
        return f"{self.processor}; {self.kernels}; {self.versions}; {self.threads} threads"

    def differences(self, other: Machine) -> list[str]:
        """What differs from `other`, field by field in words (none: the same machine)."""
        named = ("processor", "instruction set", "kernels", "versions", "threads")
        return [
            f"{name}: {mine or '-'} here, {theirs or '-'} there"
            for name, mine, theirs in zip(named, astuple(self)[:5], astuple(other)[:5], strict=True)
            if mine != theirs
        ]


MACHINE_FIELDS = tuple(field.name for field in fields(Machine))


def this_machine(device: torch.device | str = "cpu") -> Machine:
    """The machine this process computes on, for `device`."""
    import torch

    device = torch.device(device)
    versions = [f"torch {torch.__version__}", *_library_versions()]
    if device.type == "cuda" and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(device)
        processor = f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})"
        versions += [f"CUDA {torch.version.cuda}", f"cuDNN {torch.backends.cudnn.version()}"]
        isa = f"sm_{major}{minor}"
        kernels = "cuBLAS"
    else:
        processor = f"{_processor_name()} ({platform.machine()}, {os.cpu_count()} cores)"
        isa = " ".join(flag for flag in KERNEL_FLAGS if flag in _cpu_flags())
        kernels = f"ATen {torch.backends.cpu.get_cpu_capability()}"
    caps = [
        f"{name}={os.environ[name]}" for name in REPRODUCIBILITY_VARIABLES if name in os.environ
    ]
    if caps:
        kernels += f" ({', '.join(caps)})"
    settings = ", ".join(
        [
            *(caps or ["no kernel or reproducibility variables set"]),
            "deterministic algorithms "
            + ("on" if torch.are_deterministic_algorithms_enabled() else "off"),
            f"float32 matmul precision {torch.get_float32_matmul_precision()}",
        ]
    )
    return Machine(
        processor=processor,
        isa=isa,
        kernels=kernels,
        versions=", ".join(versions),
        threads=torch.get_num_threads(),
        settings=settings,
    )


HALF_TILES = {"bfloat16": "amx_bf16", "float16": "amx_fp16"}
"""The processor flag of the matrix tiles that make a batch of half-precision products faster
than lone ones on a CPU (Intel AMX)."""


def half_tiles_here(dtype: str) -> bool:
    """Whether this CPU has matrix tiles for `dtype` products (AMX) that the math library may
    use: the flag is there and no cap in the environment (`ONEDNN_MAX_CPU_ISA`) hides them.
    Without them a batch of half-precision products is no faster than lone ones."""
    flag = HALF_TILES.get(dtype)
    if flag is None or flag not in _cpu_flags():
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap is None or "AMX" in cap.upper() or cap.upper() == "ALL"


def _library_versions() -> list[str]:
    """oneDNN and MKL as torch was built with them."""
    import torch

    shown = torch.__config__.show()
    found = []
    for name, pattern in (
        ("oneDNN", r"MKL-DNN v([\d.]+)"),
        ("MKL", r"Math Kernel Library Version ([\d.]+)"),
    ):
        match = re.search(pattern, shown)
        if match:
            found.append(f"{name} {match.group(1)}")
    return found


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _processor_name() -> str:
    match = re.search(r"^(?:model name|Model|Hardware)\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    return match.group(1).strip() if match else (platform.processor() or "unknown processor")


def _cpu_flags() -> set[str]:
    match = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    return set(match.group(1).split()) if match else set()
