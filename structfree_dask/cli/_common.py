"""What the command lines share: their errors and argument types.

Used by the main command line (:mod:`structfree_dask.cli`) and ``structfree-dask zoo``
(:mod:`structfree_dask.cli.zoo`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..config import ClusterSettings, SettingsError

__all__ = ["UsageError", "Interrupted", "add_cluster_options", "add_settings_options",
           "given_settings", "checked_values", "check_cluster_options", "cluster_settings",
           "start_client", "ProgressBar", "channel_list"]


class UsageError(Exception):
    """Bad input detected by the CLI itself."""


class Interrupted(Exception):
    """Ctrl-C, with a line that says what was kept."""


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


def add_settings_options(p: Any, settings: Any, *, skip: tuple[str, ...] = (),
                         only: tuple[str, ...] | None = None,
                         groups: dict[str, Any] | None = None, prefix: str = "",
                         options: dict[str, str] | None = None) -> None:
    """Add one ``--option`` per command-line field of a settings class.

    The help and default come from the field (:func:`structfree_dask.config.setting`);
    an option not given is absent from the parsed arguments, so the class's own
    default applies, and the values are checked by the class (every problem at once).

    Parameters
    ----------
    p : argparse.ArgumentParser or argument group
    settings : type
        A settings class of :mod:`structfree_dask.config`.
    skip, only : tuple of str
        Fields left out; or the only fields offered.
    groups : dict, optional
        Field name -> the argument group (of ``--help``) it goes in.
    prefix : str
        Prefix of the parsed arguments' names, when two settings classes share a command
        (read back with :func:`given_settings` and the same prefix).
    options : dict, optional
        Field name -> option name, where this command names it otherwise.
    """
    for name, f in settings.settings_fields().items():
        s = f.metadata["setting"]
        if not s.cli or name in skip or (only is not None and name not in only):
            continue
        default = s.default_text if s.default_text is not None else f.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        if default is True:
            default = "on"
        shown = f" (default: {default})" if default not in ("", None) else ""
        kwargs: dict[str, Any] = {"dest": prefix + name, "default": argparse.SUPPRESS,
                                  "help": f"{s.help}{shown}"}
        if s.kind == "flag" and f.default is False:
            kwargs.update(action="store_true", help=s.help)
        elif s.kind == "flag":  # true or decided by other settings: --x / --no-x
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif s.kind == "choice":
            kwargs["choices"] = s.choices
        elif s.kind == "number":
            kwargs.update(type=_number(s.integer), metavar=s.metavar or name.upper())
        elif s.kind == "channels":
            kwargs.update(type=channel_list, metavar=s.metavar or "CHANNELS")
        else:
            kwargs["metavar"] = s.metavar or name.upper()
        flag = (options or {}).get(name) or s.flag_name(name)
        (groups or {}).get(name, p).add_argument(flag, **kwargs)


def given_settings(args: argparse.Namespace, settings: Any, prefix: str = "") -> dict[str, Any]:
    """Return the settings given on the command line (for ``settings.from_mapping``)."""
    return {n: getattr(args, prefix + n) for n in settings.settings_fields()
            if hasattr(args, prefix + n)}


def checked_values(settings: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Return given settings checked one by one, every problem at once.

    For a command that uses some fields of a settings class without building it.
    """
    values, problems = settings.check_mapping(given)
    if problems:
        raise SettingsError(problems)
    return values


#: Prefix of the cluster options' parsed names.
CLUSTER = "cluster_"


def add_cluster_options(p: Any) -> None:
    """Add the cluster options and ``--no-progress``.

    The options are :class:`~structfree_dask.config.ClusterSettings`'s: ``--cluster``,
    ``--workers``, ``--scheduler``, ``--scheduler-timeout``, the TLS files.
    """
    g = p.add_argument_group("cluster") if isinstance(p, argparse.ArgumentParser) else p
    add_settings_options(g, ClusterSettings, prefix=CLUSTER)
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def cluster_settings(args: argparse.Namespace) -> ClusterSettings:
    """Return the cluster the options name (checked: every bad option at once).

    Problems name the options (``--scheduler``), not the fields (``address``).
    """
    try:
        return ClusterSettings.from_mapping(given_settings(args, ClusterSettings, CLUSTER))
    except SettingsError as err:
        fields = ClusterSettings.settings_fields()
        raise SettingsError([(fields[k].metadata["setting"].flag_name(k), m)
                             for k, m in err.problems]) from None


def check_cluster_options(args: argparse.Namespace) -> None:
    """Refuse cluster options that are wrong or contradict each other (before any work)."""
    cluster_settings(args)


def start_client(args: argparse.Namespace, *, profile: bool = False) -> Any:
    """Start or connect the cluster the options name; print its dashboard link."""
    from ..runtime.cluster import close_client, make_client
    from ..runtime.interrupts import raise_if_interrupted

    client = make_client(cluster_settings(args), profile=profile)
    try:
        raise_if_interrupted()  # a Ctrl-C that the cluster's start swallowed
    except KeyboardInterrupt:
        close_client(client)
        raise
    print(f"dashboard: {client.dashboard_link}", file=sys.stderr)
    return client


#: Seconds between two progress lines when stderr is not a terminal (a log file).
LOG_PROGRESS_EVERY = 30.0


class ProgressBar:
    """Progress on stderr, called as ``progress(done, total)``; keeps the last counts.

    On a terminal, a bar (tqdm) whose rate and time left are averaged over the step since
    it began (not over the last update: units finish in bursts). Where stderr is not a
    terminal (a nightly job's log), plain lines instead: one every
    :data:`LOG_PROGRESS_EVERY` seconds at most, and the last one, no carriage returns.
    One object may follow several steps (segmenting, then measuring): a count after the
    last unit of a step, or lower than the last count, starts the next step, timed from the
    end of the one before; so does a count of another named step (:meth:`named`), whose
    name the bar and lines then show (``measure: 3/8 field-timepoint``).

    ``clock`` (seconds on ``time.time``'s scale, which tqdm's rate uses) and ``stream``
    (default: ``sys.stderr`` as it is when the bar is made) are the time the bar reads and
    where it writes.
    """

    def __init__(self, args: argparse.Namespace, unit: str, desc: str | None = None, *,
                 clock: Callable[[], float] = time.time, stream: TextIO | None = None) -> None:
        self.done = self.total = 0
        self._unit, self._desc = unit, desc
        self._units = unit  # what the steps count unless one says otherwise
        self._disabled = bool(args.no_progress)
        self._clock = clock
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._started = clock()  # of the step
        self._logged = self._started  # the last plain line (none before the first period)
        self._ended: float | None = None  # when the step's last unit was counted
        self._bar: Any = None  # drawn at the first count (no empty first frame)

    def __call__(self, done: int, total: int) -> None:
        from ..runtime.interrupts import raise_if_interrupted

        raise_if_interrupted()  # a Ctrl-C swallowed while the cluster started stops here
        now = self._clock()
        if self.total and (self.done >= self.total or done < self.done):  # the next step
            self._next_step(now)
        self.done, self.total = done, total
        if done >= total:
            self._ended = now
        if self._disabled:
            return
        if not self._tty:
            if done >= total or now - self._logged >= LOG_PROGRESS_EVERY:
                self._logged = now
                print(progress_line(self._desc, self._unit, done, total, now - self._started),
                      file=self._stream, flush=True)
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=f" {self._unit}", desc=self._desc,
                             file=self._stream, smoothing=0)
            self._bar.start_t = self._started  # the rate over the step, not since this count
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    @property
    def step(self) -> str | None:
        """The name of the step counted last (None: not named)."""
        return self._desc

    @property
    def unit(self) -> str:
        """What the step counted last counts (``field-timepoint``, ``field``)."""
        return self._unit

    def named(self, step: str, unit: str | None = None) -> Callable[[int, int], None]:
        """Return the ``progress(done, total)`` of one named step, shown with its name.

        ``unit`` is what the step counts where it is not the bar's (``field``).
        """
        def count(done: int, total: int) -> None:
            if step != self._desc:
                if self.total:  # the step before ends here
                    self._next_step(self._clock())
                self._desc, self._unit = step, unit or self._units
            self(done, total)

        return count

    def _next_step(self, now: float) -> None:
        self._started, self._ended = self._ended or now, None
        self.close()
        self.done = self.total = 0

    def close(self) -> None:
        """Close the bar (the next count, if any, draws a new one)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def progress_line(desc: str | None, unit: str, done: int, total: int, elapsed: float) -> str:
    """One plain progress line: counts, share, time so far and, once started, time left.

    Examples
    --------
    >>> progress_line(None, "field-timepoint", 30, 120, 90.0)
    'progress: 30/120 field-timepoint (25%), 1:30 elapsed, about 4:30 left'
    >>> progress_line("zoo build", "task", 0, 8, 5.0)
    'zoo build: 0/8 task (0%), 0:05 elapsed'
    """
    share = f"{100 * done // total}%" if total else "-"
    line = f"{desc or 'progress'}: {done}/{total} {unit} ({share}), {_clock(elapsed)} elapsed"
    if 0 < done < total:
        line += f", about {_clock(elapsed * (total - done) / done)} left"
    return line


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

