"""What the command lines share: their errors and argument types.

Used by the main command line (:mod:`structfree_dask.cli`) and ``structfree-dask zoo``
(:mod:`structfree_dask.cli.zoo`).
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import limits

__all__ = ["UsageError", "Interrupted", "add_cluster_options"]


class UsageError(Exception):
    """Bad input detected by the CLI itself."""


class Interrupted(Exception):
    """Ctrl-C, with a line that says what was kept."""


def _bounded_int(bounds: tuple[float, float], unit: str = "") -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = text  # type: ignore[assignment]
        problem = limits.number_problem(value, bounds, integer=True, unit=unit)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return int(value)

    return parse


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 0,2; got {text!r}"
        ) from None


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _timepoints(text: str) -> slice | list[int]:
    """Parse ``3``, ``0:5`` (stop excluded), ``2:`` or ``0,4,8``."""
    try:
        if ":" in text:
            start, _, stop = text.partition(":")
            return slice(int(start) if start else 0, int(stop) if stop else None)
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected timepoints like 3, 0:5, 2: or 0,4,8; got {text!r}"
        ) from None


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    """Add ``--scheduler``, ``--cluster``, ``--workers`` and ``--no-progress`` to a command."""
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler (tcp://... or tls://...)")
    p.add_argument("--cluster", choices=("local", "cuda"), default="local",
                   help="cluster to start when no --scheduler: local (default) or cuda")
    p.add_argument("--workers", type=_bounded_int(limits.WORKERS), default=None,
                   help="workers of the started cluster (default: one per core / GPU)")
    p.add_argument("--scheduler-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="seconds to wait for --scheduler to answer (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
