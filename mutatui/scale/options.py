"""The `--ray` options of `mutatui screen` (cheap to import: no Ray, no torch)."""

from __future__ import annotations

import argparse


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
            from mutatui.errors import MutatuiError

            raise MutatuiError(f"{', '.join(given)} only apply with --ray")
        return False
    return True
