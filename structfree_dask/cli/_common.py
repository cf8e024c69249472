"""What the command lines share: their errors and argument types.

Used by the main command line (:mod:`structfree_dask.cli`) and ``structfree-dask zoo``
(:mod:`structfree_dask.cli.zoo`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import limits
from ..config import DEFAULT_SCHEDULER_TIMEOUT

__all__ = ["UsageError", "Interrupted", "add_cluster_options", "add_settings_options",
           "given_settings", "check_cluster_options", "start_client", "ProgressBar",
           "channel_list"]


class UsageError(Exception):
    """Bad input detected by the CLI itself."""


class Interrupted(Exception):
    """Ctrl-C, with a line that says what was kept."""


def bounded_int(bounds: tuple[float, float], unit: str = "") -> Any:
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


def bounded_float(bounds: tuple[float, float], unit: str = "") -> Any:
    """Return an argparse type: a finite number within ``bounds`` (job files' check)."""
    def parse(text: str) -> float:
        try:
            value: Any = float(text)
        except ValueError:
            value = text
        problem = limits.number_problem(value, bounds, unit=unit)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return float(value)

    return parse


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 0,2; got {text!r}"
        ) from None


def str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_timepoints(text: str) -> slice | list[int]:
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


def _number(integer: bool) -> Any:
    def parse(text: str) -> int | float:
        try:
            return int(text) if integer and text.strip().lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if integer else 'a number'}; got {text!r}") from None

    return parse


def channel_list(text: str) -> list[int | str]:
    """``0,2`` or ``mito,ER``: indices become integers, names stay names."""
    return [int(c) if c.isdigit() else c for c in str_list(text)]


def add_settings_options(p: argparse.ArgumentParser, settings: Any,
                         skip: tuple[str, ...] = (),
                         groups: dict[str, Any] | None = None) -> None:
    """Add one ``--option`` per command-line field of a settings class.

    The help and default come from the field (:func:`structfree_dask.config.setting`);
    an option not given is absent from the parsed arguments, so the class's own
    default applies, and the values are checked by the class (every problem at once).
    ``groups`` maps a field name to the argument group (of ``--help``) it goes in.
    """
    for name, f in settings.settings_fields().items():
        s = f.metadata["setting"]
        if not s.cli or name in skip:
            continue
        default = s.default_text if s.default_text is not None else f.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        shown = f" (default: {default})" if default != "" else ""
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS,
                                  "help": f"{s.help}{shown}"}
        if s.kind == "flag":
            kwargs.update(action="store_true", help=s.help)
        elif s.kind == "choice":
            kwargs["choices"] = s.choices
        elif s.kind == "number":
            kwargs.update(type=_number(s.integer), metavar=s.metavar or name.upper())
        elif s.kind == "channels":
            kwargs.update(type=channel_list, metavar=s.metavar or "CHANNELS")
        (groups or {}).get(name, p).add_argument("--" + name.replace("_", "-"), **kwargs)


def given_settings(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    """Return the settings given on the command line (for ``settings.from_mapping``)."""
    return {n: getattr(args, n) for n in settings.settings_fields() if hasattr(args, n)}


def add_cluster_options(p: Any) -> None:
    """Add ``--scheduler``, ``--cluster``, ``--workers`` and ``--no-progress`` to a command."""
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler (tcp://... or tls://...)")
    p.add_argument("--cluster", choices=("local", "cuda"), default="local",
                   help="cluster to start when no --scheduler: local (default) or cuda")
    p.add_argument("--workers", type=bounded_int(limits.WORKERS), default=None,
                   help="workers of the started cluster (default: one per core / GPU)")
    p.add_argument("--scheduler-timeout", type=bounded_float(limits.SCHEDULER_TIMEOUT, "s"),
                   default=DEFAULT_SCHEDULER_TIMEOUT, metavar="SECONDS",
                   help="seconds to wait for --scheduler to answer (default "
                        f"{DEFAULT_SCHEDULER_TIMEOUT:g})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_cluster_options(args: argparse.Namespace) -> None:
    """Refuse cluster options that contradict each other (before any work starts)."""
    if args.scheduler and args.workers:
        raise UsageError("--workers applies to a cluster started here, not to --scheduler")


def start_client(args: argparse.Namespace, *, profile: bool = False) -> Any:
    """Start or connect the cluster the options name; print its dashboard link."""
    from ..engine.cluster import close_client, make_client
    from ..runtime.interrupts import raise_if_interrupted

    client = make_client(scheduler=args.scheduler, cluster=args.cluster, workers=args.workers,
                         profile=profile, timeout=args.scheduler_timeout)
    try:
        raise_if_interrupted()  # a Ctrl-C that the cluster's start swallowed
    except KeyboardInterrupt:
        close_client(client)
        raise
    print(f"dashboard: {client.dashboard_link}", file=sys.stderr)
    return client


class ProgressBar:
    """A progress bar on stderr, called as ``progress(done, total)``; keeps the last counts."""

    def __init__(self, args: argparse.Namespace, unit: str, desc: str | None = None) -> None:
        self.done = self.total = 0
        self._options = {"unit": f" {unit}", "desc": desc, "disable": args.no_progress,
                         "file": sys.stderr}
        self._bar: Any = None  # drawn at the first count (no empty first frame)

    def __call__(self, done: int, total: int) -> None:
        from ..runtime.interrupts import raise_if_interrupted

        raise_if_interrupted()  # a Ctrl-C swallowed while the cluster started stops here
        self.done, self.total = done, total
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, **self._options)
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()

