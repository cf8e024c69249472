"""What a run accepts: the vocabulary, the defaults and the settings schema.

This is the package's bottom layer (it imports only :mod:`~structfree_dask.limits`
and numpy). Each word of the vocabulary, each dtype and each default is written
here once; the command lines, job files and Python API read them from here.

:class:`SegmentationConfig` (segmenting), :class:`CellsSettings` (linking, measuring,
tracking, reports), :class:`ClusterSettings` (where the tasks run) and
:class:`TrainSettings` (fine-tuning) are the only definitions of their settings. Each
field carries its own check and help text (:func:`setting`), so that

* a Python call, a command line and a job file are checked by the same code and
  get the same messages, every bad field at once (:class:`SettingsError`);
* ``from_mapping`` builds the settings from a mapping (a job file's entry, the
  options given on a command line) and suggests the nearest name for an unknown
  key;
* the command-line options are generated from the fields
  (:func:`structfree_dask.cli.add_settings_options`), with the defaults written here.

Examples
--------
>>> SegmentationConfig(channels=(0, 2), diameter=20).label_name
'cyto'
>>> SegmentationConfig.from_mapping({"channels": [0], "flow_treshold": 0.6})
Traceback (most recent call last):
...
structfree_dask.config.SettingsError: flow_treshold: unknown setting (did you mean ...)
>>> SegmentationConfig(tile_size=32, fusion="vote")
Traceback (most recent call last):
...
structfree_dask.config.SettingsError: 2 problems: tile_size: expected a whole ...; got 32;
fusion: expected one of fa, voting, majority, staple, simple; got 'vote'
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import limits

__all__ = [
    "ORGANELLES",
    "STRATEGIES",
    "FUSION_BASELINES",
    "FUSIONS",
    "PRECISIONS",
    "LABEL_DTYPE",
    "DEFAULT_TILE_SIZE",
    "DEFAULT_FLOW_THRESHOLD",
    "DEFAULT_CELLPROB_THRESHOLD",
    "DEFAULT_MIN_SIZE",
    "MAX_NAME_LENGTH",
    "TRUTH_TABLE",
    "check_name",
    "true_ratio_column",
    "Setting",
    "setting",
    "SettingsError",
    "SegmentationConfig",
    "TrainSettings",
    "CellsSettings",
    "ClusterSettings",
    "CLUSTER_KINDS",
    "DEFAULT_SCHEDULER_TIMEOUT",
    "DEFAULT_CELLS_REGION",
    "DEFAULT_WELL_PAGES",
    "features_table",
    "linked_names",
    "tracked_name",
    "SCREEN_ROLES",
    "PLATE_MAP_TABLE",
    "ScreenSettings",
    "screen_folder",
]

# ---------------------------------------------------------------------------- vocabulary

#: What can be segmented (also the default label names).
ORGANELLES: tuple[str, ...] = ("cyto", "nuclei")
#: How a zoo's models see channels: channel-wise (one model per channel) or
#: multi-channel (one model for a subset, each channel its own sample).
STRATEGIES: tuple[str, ...] = ("cw", "mc")
#: Mask-fusion baselines: each channel integrated alone, then the masks fused.
FUSION_BASELINES: tuple[str, ...] = ("voting", "majority", "staple", "simple")
#: ``"fa"`` (Flow Averaging, the method) and the mask-fusion baselines.
FUSIONS: tuple[str, ...] = ("fa", *FUSION_BASELINES)
#: Network precisions. ``auto``: bf16 on CPUs that compute it natively (AMX or
#: AVX512-BF16), fp16 on CUDA GPUs, fp32 elsewhere (resolved by
#: :func:`structfree_dask.backbones.resolve_precision`).
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
#: Dtype of every label image written and returned.
LABEL_DTYPE = np.dtype("uint32")
#: Default task region side (and label chunk side) in original pixels. The network's
#: work does not depend on it (the lattice is the field's); smaller regions integrate
#: more halo (+25 % integration work at 512 px than at 1024 px) but a worker's peak
#: memory is lower on large fields and nearly the same for every field size (see
#: benchmarks/README.md).
DEFAULT_TILE_SIZE = 512
#: Cellpose's flow-error threshold: masks whose flows differ from the network's by more
#: (mean squared error) are removed; 0 keeps all.
DEFAULT_FLOW_THRESHOLD = 0.4
#: Cellpose's cell probability threshold, in logits.
DEFAULT_CELLPROB_THRESHOLD = 0.0
#: Smallest cell kept, in pixels (cellpose's ``min_size``).
DEFAULT_MIN_SIZE = 15
#: Seconds to wait for a running Dask scheduler to answer (``--scheduler-timeout``,
#: ``cluster.timeout`` in job files).
DEFAULT_SCHEDULER_TIMEOUT = 10.0
#: Side in pixels of the regions a linking, measuring or tracking task reads at a time
#: (a multiple of the label chunks): its memory follows the region, not the field.
DEFAULT_CELLS_REGION = 1024
#: Wells of a plate report with a page of their own (the first ones in plate order).
DEFAULT_WELL_PAGES = 96
#: Longest name accepted as one path component (the usual file-name limit).
MAX_NAME_LENGTH = 255
#: Ground-truth table the simulator writes next to its ``gt_cyto`` label image.
TRUTH_TABLE = "gt_truth"


def true_ratio_column(channel: str) -> str:
    """Column of a reporter's true nucleus / cytoplasm ratio in the simulator's truth.

    Examples
    --------
    >>> true_ratio_column("translocation-reporter")
    'translocation-reporter__true_nc_ratio'
    """
    return f"{channel}__true_nc_ratio"


def check_name(name: str, what: str) -> str:
    r"""Check that a name can be used as one path component inside a store.

    Parameters
    ----------
    name : str
        A label, well, row, column, field or model name.
    what : str
        What the name is, for the message.

    Returns
    -------
    str
        The name.

    Raises
    ------
    ValueError
        If the name is not a string, is empty, contains ``/`` or ``\``, contains
        ``..``, starts with a dot (hidden files and zarr metadata such as ``.zattrs``
        are reserved), contains control characters, or is longer than 255
        characters. The message says which.

    Examples
    --------
    >>> check_name("nuclei", "label name")
    'nuclei'
    >>> check_name("../x", "label name")
    Traceback (most recent call last):
    ...
    ValueError: label name must be one path component, without '/' or '\'; got '../x'
    >>> check_name(".zattrs", "label name")
    Traceback (most recent call last):
    ...
    ValueError: label name must not start with '.' (hidden files and zarr metadata
    such as .zattrs are reserved); got '.zattrs'
    >>> check_name("", "well path component")
    Traceback (most recent call last):
    ...
    ValueError: well path component must not be empty; got ''
    """
    if not isinstance(name, str):
        problem = f"must be a string; got {type(name).__name__} {name!r}"
    elif not name:
        problem = "must not be empty; got ''"
    elif "/" in name or "\\" in name:
        problem = f"must be one path component, without '/' or '\\'; got {name!r}"
    elif ".." in name:
        problem = f"must not contain '..'; got {name!r}"
    elif name.startswith("."):
        problem = ("must not start with '.' (hidden files and zarr metadata such as "
                   f".zattrs are reserved); got {name!r}")
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        problem = f"must not contain control characters; got {name!r}"
    elif len(name) > MAX_NAME_LENGTH:
        problem = (f"must be at most {MAX_NAME_LENGTH} characters long; got "
                   f"{len(name)} characters ({name[:40]!r}...)")
    else:
        return name
    raise ValueError(f"{what} {problem}")


# ------------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class Setting:
    """How one settings field is checked, converted and offered on a command line.

    ``kind`` is one of ``"number"`` (``bounds``, ``integer``, ``unit``), ``"choice"``
    (``choices``), ``"flag"`` (true or false), ``"text"`` (a non-empty string),
    ``"name"`` (one path component, :func:`check_name`), ``"channels"`` (indices or
    names, each once), ``"texts"`` (a list of non-empty strings) and ``"address"`` (a
    scheduler's ``tcp://HOST:PORT`` or ``tls://HOST:PORT``). ``cli``: offered as a
    command-line option (False: job files and Python only); ``option``: the option's
    name when it is not ``--`` and the field's name with dashes.
    """

    help: str
    kind: str = "number"
    bounds: tuple[float, float] | None = None
    integer: bool = False
    unit: str = ""
    choices: tuple[str, ...] | None = None
    cli: bool = True
    metavar: str | None = None
    default_text: str | None = None
    option: str | None = None
    #: What a ``"name"`` is, in messages.
    noun: str = "label name"

    def flag_name(self, field_name: str) -> str:
        """Return the command-line option of the field (``--tile-size`` for ``tile_size``)."""
        return self.option or "--" + field_name.replace("_", "-")


def setting(default: Any, help: str, **how: Any) -> Any:
    """Return a dataclass field whose check and help are a :class:`Setting`."""
    return dataclasses.field(default=default,
                             metadata={"setting": Setting(help=help, **how)})


class SettingsError(ValueError):
    """Settings with mistakes; ``problems`` lists ``(field, message)`` pairs.

    Its text is the one problem, or ``"N problems: ..."`` with all of them.
    """

    def __init__(self, problems: Iterable[tuple[str, str]], where: str = "") -> None:
        self.problems = [(f"{where}.{k}" if where else k, m) for k, m in problems]
        self.lines = [f"{k}: {m}" for k, m in self.problems]
        text = self.lines[0] if len(self.lines) == 1 else (
            f"{len(self.lines)} problems: " + "; ".join(self.lines))
        super().__init__(text)


def _short(v: Any, limit: int = 100) -> str:
    r = repr(v)
    return r if len(r) <= limit else f"{r[:limit]}... ({len(r)} characters)"


def distance(a: str, b: str) -> int:
    """Edit distance of two words (for "did you mean").

    Examples
    --------
    >>> distance("flow_treshold", "flow_threshold")
    1
    """
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def unknown_key(key: Any, allowed: Iterable[str], what: str = "setting") -> str:
    """Return the message for an unknown key, with the nearest allowed one."""
    choices = sorted(allowed)
    k = str(key)[:60]
    near = min(choices, key=lambda a: distance(k, a))
    return f"unknown {what} (did you mean {near!r}? allowed: {', '.join(choices)})"


#: A scheduler's address.
_ADDRESS = re.compile(r"(tcp|tls)://[^/\s]+:\d+")


def _check_value(s: Setting, value: Any) -> tuple[Any, str | None]:
    """Return ``(converted value, None)`` or ``(None, what is wrong)``."""
    if s.kind == "number":
        assert s.bounds is not None
        problem = limits.number_problem(value, s.bounds, integer=s.integer, unit=s.unit)
        if problem:
            return None, problem
        return (int(value) if s.integer else float(value)), None
    if s.kind == "choice":
        assert s.choices is not None
        if isinstance(value, str) and value in s.choices:
            return value, None
        return None, f"expected one of {', '.join(s.choices)}; got {_short(value)}"
    if s.kind == "flag":
        if isinstance(value, bool | np.bool_):
            return bool(value), None
        return None, f"expected true or false; got {_short(value)}"
    if s.kind == "text":
        if isinstance(value, str) and value:
            return value, None
        return None, f"expected a non-empty string; got {_short(value)}"
    if s.kind == "name":
        try:
            return check_name(value, s.noun), None
        except ValueError as err:
            return None, f"expected a {s.noun} that is one path component: {err}"
    if s.kind == "channels":
        return _channels(value)
    if s.kind == "address":
        if isinstance(value, str) and _ADDRESS.fullmatch(value):
            return value, None
        return None, f"expected tcp://HOST:PORT or tls://HOST:PORT; got {_short(value)}"
    if s.kind == "texts":
        items = value if isinstance(value, list | tuple) else None
        if not items or not all(isinstance(v, str) and v for v in items):
            return None, f"expected a list of non-empty strings; got {_short(value)}"
        return tuple(items), None
    raise AssertionError(f"unknown setting kind {s.kind!r}")  # pragma: no cover


def _channels(value: Any) -> tuple[Any, str | None]:
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        return None, "expected at least one channel (an index >= 0 or a name); got none"
    for c in items:
        if isinstance(c, bool) or not isinstance(c, int | np.integer | str) or c == "" or (
                not isinstance(c, str) and c < 0):
            return None, f"expected channel indices (>= 0) or names; got {_short(c)}"
    out = tuple(c if isinstance(c, str) else int(c) for c in items)
    twice = sorted(str(c) for c, n in Counter(out).items() if n > 1)
    if twice:
        return None, (f"expected each channel once; listed more than once: "
                      f"{', '.join(twice)} in {_short(list(out))}")
    return out, None


class _Settings:
    """What :class:`SegmentationConfig` and :class:`TrainSettings` share."""

    #: Keys a mapping may hold besides the fields (none here).
    @classmethod
    def settings_fields(cls) -> dict[str, dataclasses.Field]:
        """Return the fields that are settings, by name, in order."""
        return {f.name: f for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if "setting" in f.metadata}

    @classmethod
    def check_mapping(cls, data: Mapping[str, Any]
                      ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Check each key of ``data`` alone: ``(converted values, problems)``.

        Checks between fields happen when the settings are built.
        """
        fields = cls.settings_fields()
        values: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for key, value in data.items():
            f = fields.get(key) if isinstance(key, str) else None
            if f is None:
                problems.append((str(key)[:60], unknown_key(key, fields)))
                continue
            if value is None and f.default is None:
                values[key] = None
                continue
            converted, problem = _check_value(f.metadata["setting"], value)
            if problem:
                problems.append((key, problem))
            else:
                values[key] = converted
        return values, problems

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "") -> Any:
        """Build the settings from a mapping, reporting every bad key at once.

        Parameters
        ----------
        data : Mapping
            Field names and values (absent fields take their defaults).
        where : str
            Prefix of the names in the messages (e.g. ``"segment[0]"``).

        Raises
        ------
        SettingsError
            One ``(field, message)`` per problem.
        """
        values, problems = cls.check_mapping(data)
        if problems:
            raise SettingsError(problems, where)
        try:
            return cls(**values)
        except SettingsError as err:
            raise SettingsError(err.problems, where) from None

    @classmethod
    def check_value(cls, name: str, value: Any) -> Any:
        """Return one field's value checked and converted (for a Python API's own argument).

        Raises
        ------
        SettingsError
            The value is not one the field takes.

        Examples
        --------
        >>> CellsSettings.check_value("max_distance", 12)
        12.0
        >>> CellsSettings.check_value("max_distance", -1)
        Traceback (most recent call last):
        ...
        structfree_dask.config.SettingsError: max_distance: expected a finite number ...
        """
        f = cls.settings_fields()[name]
        if value is None and f.default is None:
            return None
        converted, problem = _check_value(f.metadata["setting"], value)
        if problem:
            raise SettingsError([(name, problem)])
        return converted

    def _check_fields(self) -> None:
        """Check and convert every field, then the relations; raise all problems at once."""
        problems: list[tuple[str, str]] = []
        for name, f in self.settings_fields().items():
            value = getattr(self, name)
            if value is None and f.default is None:
                continue
            converted, problem = _check_value(f.metadata["setting"], value)
            if problem:
                problems.append((name, problem))
            else:
                object.__setattr__(self, name, converted)
        if not problems:
            problems = self.relation_problems()
        if problems:
            raise SettingsError(problems)

    def relation_problems(self) -> list[tuple[str, str]]:
        """Problems between fields (each field alone is fine)."""
        return []

    def replace(self, **changes: Any) -> Any:
        """Return a copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def given(self) -> dict[str, Any]:
        """Return the fields that differ from their defaults (for records and logs)."""
        return {n: getattr(self, n) for n, f in self.settings_fields().items()
                if getattr(self, n) != f.default}


# ------------------------------------------------------------------------- segmentation


@dataclass(frozen=True)
class SegmentationConfig(_Settings):
    """What to segment and how: the settings of ``segment``, job files and ``segment_array``.

    Parameters
    ----------
    organelle : str
        ``"cyto"`` or ``"nuclei"``.
    channels : tuple of int or str
        Channels fed to the model one at a time, then flow-averaged.
    model : str, optional
        ``None`` (shipped generalist), a cellpose built-in name or a weights path.
    name : str, optional
        Label image name (default: the organelle).
    diameter : float, optional
        Cell diameter in pixels (default: the model's, i.e. no rescaling).
    tile_size : int
        Task region side in pixels; also the label chunk size.
    halo : int, optional
        Halo in pixels (default: 2 diameters + 8).
    batch_size : int, optional
        Network tiles per forward pass (default: 8 on a GPU, 2 on a CPU, where small
        passes are faster and lighter; see
        :func:`~structfree_dask.backbones.default_batch_size`).
    precision : str
        Network precision (:data:`~structfree_dask.backbones.PRECISIONS`): ``auto`` (bf16
        on CPUs with native bf16, fp16 on CUDA GPUs, else fp32; resolved on the run's
        workers, :func:`structfree_dask.engine.cluster_precision`), ``fp32``, ``bf16`` or
        ``fp16``.
    cellprob_threshold, flow_threshold : float
        Cellpose's thresholds.
    min_size : int
        Smallest cell kept, in pixels.
    overwrite : bool
        Redo labels that exist.
    fusion : str
        ``"fa"`` (Flow Averaging, the method) or a mask-fusion baseline: ``"voting"``,
        ``"majority"``, ``"staple"``, ``"simple"`` (each channel integrated alone, then
        the masks fused; see :mod:`structfree_dask.pipeline.fusion`).
    channel_models : tuple of str, optional
        One model per channel (weights paths or names), e.g. a zoo's channel-wise
        models; exclusive with ``model``.

    Raises
    ------
    SettingsError
        Every bad field at once.
    """

    organelle: str = setting(
        "cyto", "what to segment; also the default label name", kind="choice",
        choices=ORGANELLES)
    channels: tuple[int | str, ...] = setting(
        (0,), "channels by index or name, e.g. 0,2 or mito,ER (required unless --zoo)",
        kind="channels", metavar="CHANNELS", default_text="")
    model: str | None = setting(
        None, "shipped 'generalist', a cellpose built-in name, or a weights path",
        kind="text", default_text="generalist")
    name: str | None = setting(None, "label image name", kind="name",
                               default_text="the organelle")
    diameter: float | None = setting(
        None, "cell diameter in px", bounds=(1e-3, 1e5), unit="px",
        default_text="the model's, no rescaling")
    tile_size: int = setting(
        DEFAULT_TILE_SIZE, "task region and label chunk size in px", bounds=limits.TILE_SIZE,
        integer=True, unit="px")
    halo: int | None = setting(None, "halo in px around each region", bounds=limits.HALO,
                               integer=True, unit="px", default_text="2 diameters + 8")
    batch_size: int | None = setting(
        None, "network tiles per forward pass", bounds=limits.BATCH_SIZE, integer=True,
        default_text="8 on a GPU, 2 on a CPU")
    precision: str = setting(
        "auto", "network precision: bf16 and fp16 run under autocast in the channels-last "
        "layout; fp32 as cellpose runs it", kind="choice", choices=PRECISIONS,
        default_text="auto: bf16 on CPUs with AMX or AVX512-BF16, fp16 on CUDA GPUs, "
                     "else fp32")
    cellprob_threshold: float = setting(
        DEFAULT_CELLPROB_THRESHOLD, "cell probability threshold, in logits",
        bounds=limits.CELLPROB_THRESHOLD,
        default_text=f"{DEFAULT_CELLPROB_THRESHOLD}, or the one chosen with a zoo's selection")
    flow_threshold: float = setting(
        DEFAULT_FLOW_THRESHOLD, "cellpose's flow-error threshold: masks whose flows disagree "
        "more with the network's are removed; 0 keeps all", bounds=limits.FLOW_THRESHOLD,
        default_text=f"{DEFAULT_FLOW_THRESHOLD}, or the one chosen with a zoo's selection")
    min_size: int = setting(DEFAULT_MIN_SIZE, "smallest cell kept, in px",
                            bounds=limits.MIN_SIZE, integer=True, unit="px")
    overwrite: bool = setting(False, "redo existing labels", kind="flag")
    fusion: str = setting(
        "fa", "fa: Flow Averaging; or a mask-fusion baseline: each channel segmented "
        "alone, masks fused", kind="choice", choices=FUSIONS)
    channel_models: tuple[str, ...] | None = setting(
        None, "one model per channel (e.g. a zoo's channel-wise models)", kind="texts",
        cli=False)

    def __post_init__(self) -> None:
        self._check_fields()

    def relation_problems(self) -> list[tuple[str, str]]:
        """``model`` and ``channel_models`` exclude each other; one model per channel."""
        if self.channel_models is None:
            return []
        if self.model is not None:
            return [("channel_models", "give either model or channel_models, not both")]
        if len(self.channel_models) != len(self.channels):
            return [("channel_models", f"names {len(self.channel_models)} model(s) for "
                                       f"{len(self.channels)} channel(s); expected one per "
                                       "channel")]
        return []

    def model_names(self) -> list[str | None]:
        """Return the model of each channel (None: the shipped generalist)."""
        if self.channel_models is not None:
            return list(self.channel_models)
        return [self.model] * len(self.channels)

    @property
    def label_name(self) -> str:
        """Name of the label image written."""
        return self.name or self.organelle


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainSettings(_Settings):
    """How a zoo fine-tunes each model (``zoo build`` and the Python API).

    Parameters
    ----------
    max_epochs, patience : int
        At most ``max_epochs`` epochs; stop after ``patience`` without a lower
        validation loss.
    lr, weight_decay : float
        Learning rate and weight decay (AdamW).
    batch_size : int
        Tiles per optimisation step (and per inference batch when scoring).
    tile_size : int
        Training tile side (a multiple of 16).
    diameter : float, optional
        Cell diameter in px (default: measured on the training labels).
    overwrite : bool
        Retrain models already in the zoo (default: keep and reuse them).

    Examples
    --------
    >>> TrainSettings(max_epochs=2).tile_size
    224
    >>> TrainSettings(max_epochs=0)
    Traceback (most recent call last):
    ...
    structfree_dask.config.SettingsError: max_epochs: expected a whole number ...; got 0
    """

    max_epochs: int = setting(500, "at most N epochs", bounds=(1, 100_000), integer=True)
    patience: int = setting(50, "stop after N epochs without a lower validation loss",
                            bounds=(1, 100_000), integer=True)
    lr: float = setting(5e-4, "learning rate", bounds=(1e-12, 10.0))
    weight_decay: float = setting(1e-4, "weight decay", bounds=(0.0, 10.0))
    batch_size: int = setting(8, "tiles per step", bounds=limits.BATCH_SIZE, integer=True)
    tile_size: int = setting(224, "training tile side in px (a multiple of 16)",
                             bounds=(32, 4096), integer=True, unit="px")
    diameter: float | None = setting(None, "cell diameter in px", bounds=(1e-3, 1e5),
                                     unit="px", default_text="measured on the training labels")
    overwrite: bool = setting(False, "retrain models already in the zoo (default: reuse "
                                     "them)", kind="flag")

    def __post_init__(self) -> None:
        self._check_fields()

    def relation_problems(self) -> list[tuple[str, str]]:
        """Check that the tile side is a multiple of 16 (the network downsamples 4 times)."""
        if self.tile_size % 16:
            return [("tile_size", f"expected a multiple of 16; got {self.tile_size}")]
        return []


# -------------------------------------------------------------------------------- cells


def features_table(cells: str, table: str | None = None) -> str:
    """Return the table a measurement writes: ``table``, or ``<cells>_features``.

    Examples
    --------
    >>> features_table("cyto"), features_table("cyto", "mine")
    ('cyto_features', 'mine')
    """
    return table or f"{cells}_features"


def linked_names(cells: str) -> tuple[str, str]:
    """Return the label images linking writes for a cell label image: nuclei, cytoplasm.

    Examples
    --------
    >>> linked_names("cyto")
    ('cyto_nuclei', 'cyto_cytoplasm')
    """
    return f"{cells}_nuclei", f"{cells}_cytoplasm"


def tracked_name(cells: str) -> str:
    """Return the tracked label image's name for a cell label image.

    Examples
    --------
    >>> tracked_name("cyto")
    'cyto_tracked'
    """
    return f"{cells}_tracked"


#: Settings of the cells steps that only tracking uses, with their defaults.
_TRACK_ONLY = ("tracked_labels", "max_distance", "max_gap", "divisions")


@dataclass(frozen=True)
class CellsSettings(_Settings):
    """What to do with the cells of a segmented plate: link, measure, track, report.

    The settings of the workflow's steps after segmenting
    (:mod:`structfree_dask.workflow`): a job file's ``cells:`` section, the options of
    ``segment --with-nuclei ... --measure --track`` and of ``link``, ``measure`` and
    ``track``, and the arguments of their Python functions, checked by the same code.

    Parameters
    ----------
    cells : str
        Cell label image (required).
    nuclei : str, optional
        Nucleus label image linked to the cells.
    table : str, optional
        Table name (default ``<cells>_features``, :attr:`table_name`).
    channels : tuple of int or str, optional
        Channels measured (default all).
    link : bool, optional
        Also write the linked label images ``<cells>_nuclei`` and ``<cells>_cytoplasm``
        (default: true when ``nuclei`` is given).
    measure, track, tracked_labels, report : bool
        The steps: measure (the per-cell table), track, write ``<cells>_tracked``, write
        an HTML report.
    max_distance : float, optional
        Largest move of a cell between timepoints in pixels (default the median radius).
    max_gap : int
        Timepoints a track may skip where its cell was missed (0: no gap closing).
    divisions : bool
        Link daughters to their mother.
    region : int
        Side in pixels of the regions a task reads at a time (its memory follows it).
    readout : str, optional
        Channel of the report's nucleus/cytoplasm readout (default: a translocation one).
    well_pages : int
        Wells of the report with a page of their own (the first ones in plate order).

    Examples
    --------
    >>> steps = CellsSettings(cells="cyto", nuclei="nuclei", track=True)
    >>> steps.link, steps.table_name, steps.outputs()
    (True, 'cyto_features', ('cyto_nuclei', 'cyto_cytoplasm'))
    >>> CellsSettings(cells="cyto", max_gap=2, link=True)
    Traceback (most recent call last):
    ...
    structfree_dask.config.SettingsError: 2 problems: link: needs nuclei: ...; max_gap: ...
    """

    cells: str | None = setting(None, "cell label image", kind="name", cli=False)
    nuclei: str | None = setting(None, "nucleus label image linked to the cells",
                                 kind="name", cli=False)
    table: str | None = setting(None, "measurement table name", kind="name",
                                noun="table name", default_text="CELLS_features")
    channels: tuple[int | str, ...] | None = setting(
        None, "channels measured, by index or name", kind="channels",
        option="--measure-channels", default_text="all")
    link: bool | None = setting(
        None, "write the linked label images CELLS_nuclei and CELLS_cytoplasm", kind="flag",
        default_text="with nuclei")
    measure: bool = setting(True, "measure every cell (the per-cell table)", kind="flag",
                            cli=False)
    track: bool = setting(False, "track the cells over time", kind="flag")
    tracked_labels: bool = setting(False, "with tracking: also write labels/CELLS_tracked",
                                   kind="flag")
    max_distance: float | None = setting(
        None, "with tracking: largest move of a cell between timepoints",
        bounds=limits.MAX_DISTANCE, unit="px", metavar="PX",
        default_text="the median cell radius, or 2.5x the cells' median step if larger")
    max_gap: int = setting(1, "with tracking: timepoints a track may skip where its cell "
                              "was missed (0: no gap closing)", bounds=limits.MAX_GAP,
                           integer=True, metavar="N")
    divisions: bool = setting(True, "with tracking: link daughters to their mother",
                              kind="flag")
    region: int = setting(DEFAULT_CELLS_REGION, "side of the regions a linking, measuring "
                          "or tracking task reads at a time", bounds=limits.CELLS_REGION,
                          integer=True, unit="px", metavar="PX")
    readout: str | None = setting(None, "channel of the report's nucleus/cytoplasm readout",
                                  kind="text", metavar="CHANNEL",
                                  default_text="a translocation channel")
    report: bool = setting(True, "write an HTML report per plate", kind="flag", cli=False)
    well_pages: int = setting(DEFAULT_WELL_PAGES, "report: wells with a page of their own, "
                              "the first ones in plate order (0: none)",
                              bounds=limits.WELL_PAGES, integer=True, metavar="N")

    def __post_init__(self) -> None:
        self._check_fields()
        if self.link is None:
            object.__setattr__(self, "link", self.nuclei is not None)

    def relation_problems(self) -> list[tuple[str, str]]:
        """Problems between the steps and their settings."""
        problems: list[tuple[str, str]] = []
        if self.cells is None:
            problems.append(("cells", "missing: the cell label image"))
        elif self.cells == self.nuclei:
            problems.append(("nuclei", f"the same label image as cells ({self.cells!r})"))
        if self.link and self.nuclei is None:
            problems.append(("link", "needs nuclei: linking writes the nuclei of each cell"))
        if self.track and not self.measure:
            problems.append(("track", "needs measure: cells are tracked from their table"))
        fields = self.settings_fields()
        if not self.track:
            problems += [(n, "only used when tracking (track: true; --track)")
                         for n in _TRACK_ONLY if getattr(self, n) != fields[n].default]
        return problems

    @property
    def inputs(self) -> tuple[str, ...]:
        """Label images read: the cells, then the nuclei if any."""
        assert self.cells is not None
        return (self.cells, self.nuclei) if self.nuclei else (self.cells,)

    @property
    def table_name(self) -> str:
        """Name of the table written (``<cells>_features`` unless given)."""
        assert self.cells is not None
        return features_table(self.cells, self.table)

    def outputs(self) -> tuple[str, ...]:
        """Label images written (linked nuclei and cytoplasm, tracked cells)."""
        assert self.cells is not None
        out = linked_names(self.cells) if self.link else ()
        return out + ((tracked_name(self.cells),) if self.tracked_labels else ())


# ------------------------------------------------------------------------------- screen

#: Roles of a well in a plate map: negative and positive controls, and samples.
SCREEN_ROLES: tuple[str, ...] = ("negative", "positive", "sample")
#: Name of the plate map in a plate: ``<plate>/tables/plate_map`` (an ngio condition table).
PLATE_MAP_TABLE = "plate_map"


def screen_folder(table: str) -> str:
    """Return the name of the folder of a table's screen tables, beside its dataset.

    Examples
    --------
    >>> screen_folder("cyto_features")
    'cyto_features__screen'
    """
    return f"{table}__screen"


@dataclass(frozen=True)
class ScreenSettings(_Settings):
    """From cells to a screen: the plate map, and the screen tables of a measured plate.

    A job file's ``screen:`` section and the options of ``annotate`` and ``screen``,
    checked by the same code (:mod:`structfree_dask.screen`).

    Parameters
    ----------
    plate_map : str, optional
        The plate map CSV (``well``, ``condition``, optional ``compound``, ``dose``,
        ``dose_unit``, ``role``) stored in each plate.
    readouts : tuple of int or str, optional
        Channels whose nucleus / cytoplasm ratio is summarized, or columns of the table
        (default: every channel's ratio).
    tables : bool
        Compute the screen tables after measuring (a job's ``screen.tables``).
    overwrite : bool
        Replace another plate map stored in the plate (the same map is never written
        again).

    Examples
    --------
    >>> ScreenSettings(plate_map="map.csv").readouts is None
    True
    >>> ScreenSettings(readouts=())
    Traceback (most recent call last):
    ...
    structfree_dask.config.SettingsError: readouts: expected at least one channel ...
    """

    plate_map: str | None = setting(
        None, "plate map CSV: well, condition, and optional compound, dose, dose_unit, "
              "role (negative, positive or sample)", kind="text", metavar="CSV")
    readouts: tuple[int | str, ...] | None = setting(
        None, "readouts: channels (index or name) whose nucleus/cytoplasm ratio is "
              "summarized, or columns of the table", kind="channels", metavar="READOUTS",
        default_text="every channel's ratio")
    tables: bool = setting(True, "compute the screen tables after measuring", kind="flag",
                           cli=False)
    overwrite: bool = setting(False, "replace another plate map stored in the plate",
                              kind="flag")

    def __post_init__(self) -> None:
        self._check_fields()


# ------------------------------------------------------------------------------ cluster

#: Kinds of cluster: started here (``local``, ``cuda``), workers submitted to SLURM as jobs
#: (``slurm``, scheduler here) or a running ``scheduler``.
CLUSTER_KINDS: tuple[str, ...] = ("local", "cuda", "slurm", "scheduler")
#: SLURM time limit: ``[days-]hours:minutes:seconds`` or ``minutes`` (sbatch's forms).
_WALLTIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")
#: Memory of a SLURM worker job, e.g. ``4GB``, ``500MiB``.
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?)?B$", re.IGNORECASE)
#: The settings only a ``slurm`` cluster uses.
SLURM_SETTINGS = ("partition", "account", "memory", "walltime", "interface")


@dataclass(frozen=True)
class ClusterSettings(_Settings):
    """Where a run's tasks go: a job file's ``cluster:`` and every command's cluster options.

    Parameters
    ----------
    kind : str
        ``"local"`` (a LocalCluster on loopback), ``"cuda"`` (dask-cuda, one worker per
        GPU), ``"slurm"`` (dask-jobqueue: the scheduler here, each worker a SLURM job
        submitted with sbatch) or ``"scheduler"`` (a running one at ``address``).
    workers : int, optional
        Workers of a cluster started here (default one per core or GPU; ``slurm``: one
        job per worker, default 1).
    threads_per_worker : int
        Threads of each worker of a local cluster (``slurm``: CPUs of each job).
    partition, account : str, optional
        SLURM partition (``-p``) and account (``-A``) of the worker jobs.
    memory : str
        Memory of each SLURM worker job (``4GB``).
    walltime : str
        Time limit of each SLURM worker job (``01:00:00``).
    interface : str, optional
        Network interface the scheduler and the SLURM workers talk on (``ib0``; ``lo``
        for a one-node cluster).
    address : str, optional
        ``tcp://HOST:PORT`` or ``tls://HOST:PORT`` of a running scheduler.
    timeout : float
        Seconds to wait for the scheduler to answer.
    tls_ca, tls_cert, tls_key : str, optional
        PEM files of a ``tls://`` scheduler.

    Examples
    --------
    >>> ClusterSettings(address="tcp://127.0.0.1:8786").kind
    'scheduler'
    >>> ClusterSettings(kind="scheduler", workers=2)
    Traceback (most recent call last):
    ...
    structfree_dask.config.SettingsError: 2 problems: address: missing: ...; workers: ...
    """

    kind: str = setting("local", "cluster to start when no --scheduler", kind="choice",
                        choices=CLUSTER_KINDS, option="--cluster")
    workers: int | None = setting(None, "workers of the started cluster",
                                  bounds=limits.WORKERS, integer=True,
                                  default_text="one per core / GPU")
    threads_per_worker: int = setting(1, "threads per worker of a started local cluster",
                                      bounds=limits.THREADS, integer=True, metavar="N")
    address: str | None = setting(None, "address of a running Dask scheduler "
                                        "(tcp://HOST:PORT or tls://HOST:PORT)",
                                  kind="address", option="--scheduler", metavar="ADDRESS")
    timeout: float = setting(DEFAULT_SCHEDULER_TIMEOUT, "seconds to wait for the scheduler "
                             "to answer", bounds=limits.SCHEDULER_TIMEOUT, unit="s",
                             option="--scheduler-timeout", metavar="SECONDS")
    tls_ca: str | None = setting(None, "CA certificate (PEM) of a tls:// scheduler",
                                 kind="text", metavar="FILE")
    tls_cert: str | None = setting(None, "client certificate (PEM)", kind="text",
                                   metavar="FILE")
    tls_key: str | None = setting(None, "client key (PEM)", kind="text", metavar="FILE")
    partition: str | None = setting(None, "SLURM partition of the worker jobs (kind slurm)",
                                    kind="text", metavar="NAME",
                                    default_text="the default partition")
    account: str | None = setting(None, "SLURM account of the worker jobs (kind slurm)",
                                  kind="text", metavar="NAME")
    memory: str = setting("4GB", "memory of each SLURM worker job (kind slurm)", kind="text",
                          metavar="SIZE")
    walltime: str = setting("01:00:00", "time limit of each SLURM worker job (kind slurm)",
                            kind="text", metavar="TIME")
    interface: str | None = setting(None, "network interface of the scheduler and the SLURM "
                                    "workers, e.g. ib0 (kind slurm)", kind="text",
                                    metavar="NAME", default_text="Dask's choice")

    def __post_init__(self) -> None:
        if self.address is not None and self.kind == "local":
            object.__setattr__(self, "kind", "scheduler")  # an address names the cluster
        self._check_fields()

    @property
    def workers_here(self) -> bool:
        """Whether the workers run on this machine (a local or cuda cluster started here)."""
        return self.kind in ("local", "cuda")

    def relation_problems(self) -> list[tuple[str, str]]:
        """Check: an address with ``scheduler`` only, workers without it, TLS files together."""
        problems: list[tuple[str, str]] = []
        scheduler = self.kind == "scheduler"
        if scheduler and self.address is None:
            problems.append(("address", "missing: kind 'scheduler' needs the scheduler's "
                                        "address"))
        if self.address is not None and not scheduler:
            problems.append(("address", f"only used with kind 'scheduler' (kind is "
                                        f"{self.kind!r})"))
        if scheduler and self.workers is not None:
            problems.append(("workers", "only used for clusters started here (local, cuda, "
                                        "slurm)"))
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in SLURM_SETTINGS:
            if self.kind != "slurm" and getattr(self, name) != defaults[name]:
                problems.append((name, f"only used with kind 'slurm' (kind is {self.kind!r})"))
        if not _WALLTIME.match(self.walltime):
            problems.append(("walltime", f"expected [days-]hours:minutes:seconds, e.g. "
                                         f"01:00:00; got {self.walltime!r}"))
        if not _MEMORY.match(self.memory):
            problems.append(("memory", f"expected a size such as 4GB or 500MiB; got "
                                       f"{self.memory!r}"))
        tls = {"tls_ca": self.tls_ca, "tls_cert": self.tls_cert, "tls_key": self.tls_key}
        if any(tls.values()):
            problems += [(k, "missing: TLS needs ca, cert and key (PEM files)")
                         for k, v in tls.items() if v is None]
            if not scheduler:
                problems.append(("tls_ca", "only used with kind 'scheduler'"))
        elif self.address is not None and self.address.startswith("tls://"):
            problems.append(("tls_ca", "missing: a tls:// scheduler needs ca, cert and key"))
        return problems
