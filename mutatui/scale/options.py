"""The `--ray` options of `mutatui screen` (cheap to import: no Ray, no torch)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mutatui.errors import MutatuiError

if TYPE_CHECKING:
    from mutatui.engine.models import ModelOptions
    from mutatui.scale.ray_runner import RayRun


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray (pip install 'mutatui[ray]')")
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run on Ray workers: a running cluster's address (as `ray start --head` prints "
        "it, or auto), or no address for a local cluster on this machine",
    )
    group.add_argument(
        "--ray-workers",
        type=int,
        metavar="N",
        help="workers (default: one per GPU of the cluster, else one per --ray-cpus CPUs)",
    )
    group.add_argument(
        "--ray-parts",
        type=int,
        metavar="N",
        help="parts to split the spec into (default: about 512 mutations each, at least 4 "
        "per worker; a resumed screen keeps its parts)",
    )
    group.add_argument(
        "--ray-cpus",
        type=int,
        metavar="N",
        help="CPUs per worker, and its torch threads when there is no GPU (default 1)",
    )


def ray_requested(args: argparse.Namespace) -> bool:
    """True with --ray; the other Ray options alone are an error, not silently ignored."""
    if args.ray is None:
        given = [
            flag
            for flag, value in (
                ("--ray-workers", args.ray_workers),
                ("--ray-parts", args.ray_parts),
                ("--ray-cpus", args.ray_cpus),
            )
            if value is not None
        ]
        if given:
            raise MutatuiError(f"{', '.join(given)} only apply with --ray")
        return False
    return True


def ray_run(args: argparse.Namespace, model: ModelOptions) -> RayRun:
    """Where and how wide `mutatui screen --ray` runs, its options checked; every worker loads
    the model with `model` (its device must be one a worker can have)."""
    from mutatui.scale.ray_runner import RayRun

    for flag, value in (("--ray-workers", args.ray_workers), ("--ray-parts", args.ray_parts)):
        if value is not None and value < 1:
            raise MutatuiError(f"{flag} must be at least 1, got {value}")
    if model.device not in ("auto", "cpu", "cuda"):
        raise MutatuiError(
            f"--device {model.device} does not apply with --ray: each worker uses the one GPU "
            "Ray gives it; valid: auto, cuda, cpu"
        )
    cpus = 1 if args.ray_cpus is None else args.ray_cpus
    if cpus < 1:
        raise MutatuiError(f"--ray-cpus must be at least 1, got {cpus}")
    return RayRun(
        address=args.ray or None,
        workers=args.ray_workers,
        parts=args.ray_parts,
        cpus_per_worker=cpus,
        model=model,
    )
