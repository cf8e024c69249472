"""Job files: what a scheduled (nightly) run segments, measures, and on which cluster.

A job file is YAML. Every wrong key or value is reported, all at once, with where
it is. Relative paths are relative to the job file's folder.

.. code-block:: yaml

    version: 1
    plates: ["plates/*.zarr"]          # paths or glob patterns
    segment:                           # one entry per label image to produce
      - organelle: nuclei              # cyto | nuclei
        channels: [0, 2]               # indices or names (omit with zoo)
        model: generalist              # or a cellpose built-in name, or a weights path
      - organelle: cyto
        zoo: /models/zoo               # selected models and channels of a zoo
        cell_line: CL5
        name: cyto_zoo
    cells:                             # optional: per plate, after segmenting
      cells: cyto_zoo                  # cell label image: an entry's name or the plate's
      nuclei: nuclei                   # linked to the cells (optional)
      track: true                      # track the cells over time (default false)
    screen:                            # optional: after the cells step
      plate_map: plate-map.csv         # stored in every plate (tables/plate_map)
    cluster:
      kind: local                      # local | cuda | slurm | scheduler
      workers: 2
    records: runs                      # run records and performance reports

A ``segment`` entry takes every setting of ``structfree-dask segment`` under the same
name (the fields of :class:`~structfree_dask.config.SegmentationConfig`, checked by the
same code): ``organelle`` (required), ``channels``, ``model``, ``name``, ``diameter``,
``tile_size``, ``halo``, ``batch_size``, ``precision``, ``cellprob_threshold``,
``flow_threshold``, ``min_size``, ``overwrite``, ``fusion`` (``fa``, ``voting``,
``majority``, ``staple``, ``simple``); and ``zoo`` with ``cell_line``, ``wells``,
``timepoints`` (``"0:5"``, ``"2:"`` or a list).
``cluster`` takes the fields of :class:`~structfree_dask.config.ClusterSettings` (the
command lines' ``--cluster``, ``--workers``, ``--scheduler`` ...): ``kind``, ``workers``,
``threads_per_worker`` (local), ``address`` (scheduler: ``tcp://`` or ``tls://``), ``timeout``
(seconds to wait for a ``scheduler`` to answer, default 10) and ``tls`` (``ca``, ``cert``,
``key``: the ``tls_*`` fields, paths relative to the job file).
Top level: ``records`` (default ``<job file name>-runs`` beside the job file) and
``performance_report`` (default true).

``cells`` (optional) links, measures, tracks and reports each plate once the job has
segmented it (:mod:`structfree_dask.workflow`). It takes the fields of
:class:`~structfree_dask.config.CellsSettings`, checked by the same code as the command
lines' options: ``cells`` (required: the cell label image, the label name of a
``segment`` entry or a label image the plates have), ``nuclei`` (optional, the same
kinds), ``table`` (default ``<cells>_features``), ``channels`` (indices or names; default
all), ``link`` (also write the label images ``<cells>_nuclei`` and ``<cells>_cytoplasm``;
needs ``nuclei``; default true when ``nuclei`` is given), ``measure`` (default true),
``track`` (default false), and with ``track``: ``tracked_labels`` (also write
``<cells>_tracked``), ``max_distance`` (largest move of a cell between timepoints, in
pixels; default the median cell radius or 2.5x the median step), ``max_gap`` (default 1)
and ``divisions`` (default true); ``region`` (px per side a task reads, default 1024),
``readout`` (the report's channel) and ``report`` (default true: an HTML report per plate in
``<records>/<run record stem>-report-<plate name>/``, named in the run record).

``screen`` (optional) stores a plate map in each plate and computes its screen tables
once the ``cells`` step has measured it (:mod:`structfree_dask.jobs.screen_step`,
docs/screen.md). It takes the fields of :class:`~structfree_dask.config.ScreenSettings`:
``plate_map`` (required: a local CSV file, relative to the job file, checked against
every plate before anything is written; one map for every plate of the job), ``readouts``
(channels or columns; default every channel's ratio: needs ``cells.nuclei``, a cell
without nucleus has no ratio), ``tables`` (default true: needs ``cells``; false: only
store the map) and ``overwrite`` (replace another plate map stored
in a plate; default false).

Numbers are checked against the bounds of :mod:`structfree_dask.limits` (inclusive).
NaN, infinity and booleans are never numbers; whole numbers may be written ``512``
or ``512.0``:

- ``segment[i].diameter``: 0.001 to 100000 px (the rescale bound, which depends on
  the model's own diameter, is checked later by the engine)
- ``segment[i].tile_size``: a whole number, 64 to 16384 px (``limits.TILE_SIZE``)
- ``segment[i].halo``: a whole number, 0 to 4096 px (``limits.HALO``)
- ``segment[i].batch_size``: a whole number, 1 to 4096 (``limits.BATCH_SIZE``)
- ``segment[i].precision``: ``auto``, ``fp32``, ``bf16`` or ``fp16``
- ``segment[i].flow_threshold``: 0 to 100 (``limits.FLOW_THRESHOLD``)
- ``segment[i].cellprob_threshold``: -100 to 100 (``limits.CELLPROB_THRESHOLD``)
- ``segment[i].min_size``: a whole number, 0 to 1000000 px (``limits.MIN_SIZE``)
- ``cluster.workers``: a whole number, 1 to 4096 (``limits.WORKERS``)
- ``cluster.threads_per_worker``: a whole number, 1 to 1024 (``limits.THREADS``)
- ``cluster.timeout``: 0.1 to 3600 s (``limits.SCHEDULER_TIMEOUT``)
- ``cells.max_distance``: 0.001 to 100000 px (``limits.MAX_DISTANCE``)
- ``cells.max_gap``: a whole number, 0 to 100 (``limits.MAX_GAP``)
- ``cells.region``: a whole number, 64 to 16384 px (``limits.CELLS_REGION``)

Selections must select something: ``wells`` is a non-empty list without repeats,
``timepoints`` a range whose stop is after its start (``"5:2"`` is refused) or a
list without repeats. A label ``name`` and ``cells.cells``, ``cells.nuclei`` and
``cells.table`` are one path component each (not empty, no ``/`` or backslash, no
leading ``.``); the label images ``cells`` writes must not be those of a ``segment``
entry.

The YAML is read safely (no Python tags), and a document whose anchors and aliases
expand to more than 100 000 items (an "alias bomb") is refused before it is
expanded.
"""

from __future__ import annotations

import glob
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import limits
from ..config import (
    ORGANELLES,
    CellsSettings,
    ClusterSettings,
    ScreenSettings,
    SegmentationConfig,
    SettingsError,
    check_name,
    unknown_key,
)
from ..io import filesystem, is_url, redact

__all__ = ["JobError", "Job", "SegmentTask", "load_job", "parse_job", "JOB_VERSION"]

JOB_VERSION = 1
_TOP = {"version", "plates", "segment", "cells", "screen", "cluster", "records",
        "performance_report"}
#: Keys of a ``segment`` entry that are not segmentation settings.
_TASK_ONLY = {"zoo", "cell_line", "wells", "timepoints"}
#: Segmentation settings a job file may set: those of the command line.
_SETTINGS = {n for n, f in SegmentationConfig.settings_fields().items()
             if f.metadata["setting"].cli}
_TASK = _SETTINGS | _TASK_ONLY
#: Keys of ``cluster``: the cluster settings, the TLS files under ``tls``.
_CLUSTER = {n for n in ClusterSettings.settings_fields() if not n.startswith("tls_")} | {"tls"}
_TLS = {"ca", "cert", "key"}
_WELL = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$")
#: Most items that anchors and aliases may add to a document when it is expanded.
_MAX_ALIAS_ITEMS = 100_000
#: Wrong entries of a long list (plates) reported one by one; the rest are counted.
_MAX_LISTED = 5


class JobError(ValueError):
    """A job file with mistakes; ``problems`` lists each one."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class SegmentTask:
    """One label image to produce on every plate of the job.

    ``settings`` holds the :class:`~structfree_dask.config.SegmentationConfig` fields the
    entry sets (checked and converted); the others keep their defaults, or come from
    the zoo's selection with ``zoo``.
    """

    settings: Mapping[str, Any]
    zoo: str | None = None
    cell_line: str | None = None
    wells: tuple[str, ...] | None = None
    timepoints: slice | tuple[int, ...] | None = None

    @property
    def organelle(self) -> str:
        """What the entry segments."""
        return str(self.settings["organelle"])

    @property
    def fusion(self) -> str:
        """``fa`` or a mask-fusion baseline."""
        return str(self.settings.get("fusion", "fa"))

    @property
    def label_name(self) -> str:
        """Name of the label image written."""
        return str(self.settings.get("name") or self.organelle)


@dataclass(frozen=True)
class Job:
    """A validated job file."""

    source: str
    plates: tuple[str, ...]
    tasks: tuple[SegmentTask, ...]
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    records: str = "runs"
    performance_report: bool = True
    #: Linking, measuring, tracking and reports after segmenting (None: segment only).
    cells: CellsSettings | None = None
    #: The plate map stored in each plate, and its screen tables (None: no screen step).
    screen: ScreenSettings | None = None

    def plate_paths(self) -> list[str]:
        """Return the plates the patterns match now, each once.

        In the order of the patterns; the matches of one glob pattern are sorted. A path
        without glob characters is returned as it is, whether or not it exists.

        Examples
        --------
        >>> Job("job", ("/d/b.zarr", "/d/a.zarr", "/d/b.zarr"), ()).plate_paths()
        ['/d/b.zarr', '/d/a.zarr']
        """
        seen: set[str] = set()
        out: list[str] = []
        for pattern in self.plates:
            if glob.has_magic(pattern):
                hits: Any = sorted(_glob(pattern))
            elif pattern in seen:
                continue
            else:
                hits = (pattern,)
            for h in hits:
                if h not in seen:
                    seen.add(h)
                    out.append(h)
        return out


def _glob(pattern: str) -> list[str]:
    """Return the matches of a glob pattern (local paths, or URLs listed by the store)."""
    if not is_url(pattern):
        return glob.glob(pattern)
    fs, path = filesystem(pattern)
    protocol = pattern.split("://", 1)[0]
    return [f"{protocol}://{hit}" for hit in fs.glob(path)]


# ------------------------------------------------------------------------------- YAML


class _AliasBomb(yaml.YAMLError):
    """Anchors and aliases that expand to too much, or into themselves."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_aliases(root: yaml.Node, limit: int) -> None:
    """Raise `_AliasBomb` when aliases add more than ``limit`` items to ``root``'s document.

    The composed document is a graph in which an alias is the anchored node itself. The
    expanded size of each sequence or mapping is computed once (memoized, iteratively),
    so a bomb costs no more than its text; what the aliases add is the expanded size of
    the document less its distinct sequences and mappings and their own items.
    """
    if not isinstance(root, yaml.CollectionNode):
        return
    size: dict[int, int] = {}  # id(collection node) -> items once expanded, itself included
    distinct = 0  # distinct collections and the scalars they hold themselves
    open_: set[int] = set()  # collections whose children are being sized
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    cap = 1 << 62  # sizes saturate instead of growing without end
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        kids = _children(node)
        if children_done:
            open_.discard(key)
            nested = [size[id(c)] for c in kids if id(c) in size]  # scalars are not in size
            scalars = len(kids) - len(nested)
            size[key] = min(cap, 1 + scalars + sum(nested))
            distinct += 1 + scalars
            continue
        if key in size:
            continue
        if key in open_:
            raise _AliasBomb("an anchor is used inside itself (a recursive structure); "
                             "write the job without recursive aliases")
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in kids
                     if isinstance(c, yaml.CollectionNode) and id(c) not in size)
    if size[id(root)] - distinct > limit:
        raise _AliasBomb(f"the YAML expands to more than {limit} items through "
                         "anchors/aliases (an alias bomb?); write the job without deep "
                         "aliases")


class _BoundedAliases:
    """Compose the whole document, check what its aliases expand to, then construct it."""

    max_alias_items = _MAX_ALIAS_ITEMS

    def get_single_data(self) -> Any:
        node = self.get_single_node()  # type: ignore[attr-defined]
        if node is None:
            return None
        _check_aliases(node, self.max_alias_items)
        return self.construct_document(node)  # type: ignore[attr-defined]


class _SafeLoader(_BoundedAliases, yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain YAML, no Python tags) that refuses alias bombs."""


_LOADERS: tuple[type, ...] = (_SafeLoader,)
if getattr(yaml, "__with_libyaml__", False):
    class _CSafeLoader(_BoundedAliases, yaml.CSafeLoader):
        """The same with libyaml's parser (about 5 times faster on long job files)."""

    _LOADERS = (_CSafeLoader, _SafeLoader)


def _read_yaml(text: bytes | str, source: str, loader: type | None = None) -> Any:
    """Parse one YAML document safely, with every failure as a `JobError`."""
    ld = None
    try:
        ld = (loader or _LOADERS[0])(text)  # the pure-Python reader decodes here
        return ld.get_single_data()
    except _AliasBomb as err:
        raise JobError(source, [str(err)]) from None
    except yaml.YAMLError as err:
        raise JobError(source, [f"not valid YAML: {err}"]) from None
    except RecursionError:
        raise JobError(source, ["not valid YAML: nested too deeply"]) from None
    except (ValueError, TypeError) as err:  # e.g. an integer of more than 4300 digits
        raise JobError(source, [f"not valid YAML: {err}"]) from None
    finally:
        if ld is not None:
            ld.dispose()


# ----------------------------------------------------------------------------- parsing


def _short(v: Any, limit: int = 100) -> str:
    """``repr(v)``, cut after ``limit`` characters (a value can be a whole document)."""
    r = repr(v)
    if len(r) <= limit:
        return r
    what = (f"a {type(v).__name__} of {len(v)} items" if isinstance(v, list | dict)
            else f"{len(r)} characters")
    return f"{r[:limit]}... ({what})"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, where: str, msg: str) -> None:
        self.problems.append(f"{where}: {msg}")

    def keys(self, data: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for k in data:
            if k not in allowed:
                key = str(k)[:60]
                self.bad(f"{where}.{key}" if where else key, unknown_key(k, allowed, "key"))

    def number(self, data: Mapping[str, Any], key: str, where: str,
               bounds: tuple[float, float], *, integer: bool = False, unit: str = "",
               default: Any = None) -> Any:
        """Return the number at ``key`` (int when ``integer``); ``default`` if absent/wrong."""
        v = data.get(key)
        if v is None:
            return default
        problem = limits.number_problem(v, bounds, integer=integer, unit=unit)
        if problem is not None:
            self.bad(f"{where}.{key}", problem)
            return default
        return int(v) if integer else float(v)

    def flag(self, data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        """Return the boolean at ``key``; ``default`` if absent or wrong."""
        v = data.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            self.bad(f"{where}.{key}" if where else key,
                     f"expected true or false; got {_short(v)}")
            return default
        return v

    def name(self, data: Mapping[str, Any], key: str, where: str, what: str) -> str | None:
        """Return the name at ``key`` if it is one path component (see ``check_name``)."""
        v = data.get(key)
        if v is None:
            return None
        try:
            return check_name(v, what)
        except ValueError as err:
            self.bad(f"{where}.{key}", f"expected a {what} that is one path component: {err}")
            return None

    def string(self, data: Mapping[str, Any], key: str, where: str,
               choices: tuple[str, ...] | None = None) -> str | None:
        v = data.get(key)
        if v is None:
            return None
        if not isinstance(v, str) or not v:
            self.bad(f"{where}.{key}", f"expected a non-empty string; got {_short(v)}")
            return None
        if choices is not None and v not in choices:
            self.bad(f"{where}.{key}",
                     f"expected one of {', '.join(choices)}; got {_short(v)}")
            return None
        return v


#: A POSIX path that ``Path`` would leave as it is: no ``~`` first, no empty or ``.`` part.
_PLAIN_PATH = re.compile(r"/?(?!\.(?:/|$))[^/]+(?:/(?!\.(?:/|$))[^/]+)*")


def _resolve(base: Path, value: str, ck: _Checker, where: str) -> str:
    if is_url(value):  # an object store: as written; its credentials come from elsewhere
        if redact(value) != value:
            ck.bad(where, f"expected a URL without credentials or query ({redact(value)}); "
                          "keys belong in the store's standard configuration (for S3 the "
                          "AWS_* environment or ~/.aws), never in a job file")
        return value
    p = Path(value)
    try:
        p = p.expanduser()
    except RuntimeError:  # ~user of no user, or no home folder
        ck.bad(where, f"cannot expand {value.split('/', 1)[0]!r} (no such user or no home "
                      f"folder); got {_short(value)}")
    return str(p if p.is_absolute() else base / p)


def _resolve_all(base: Path, values: list[str], ck: _Checker, where: str) -> list[str]:
    """``_resolve`` of each value, without a ``Path`` per value that needs none."""
    if os.sep != "/" or os.altsep:
        return [_resolve(base, v, ck, f"{where}[{i}]") for i, v in enumerate(values)]
    prefix = str(base / "x")[:-1]  # "" for ".", "/" for "/", "/d/" for "/d"
    plain = _PLAIN_PATH.fullmatch
    return [(v if v[0] == "/" else prefix + v) if v[0] != "~" and plain(v)
            else _resolve(base, v, ck, f"{where}[{i}]") for i, v in enumerate(values)]


def _is_index(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _repeated(items: list[Any]) -> list[Any]:
    return [v for v, n in Counter(items).items() if n > 1]


def _timepoints(v: Any, where: str, ck: _Checker) -> slice | tuple[int, ...] | None:
    if v is None:
        return None
    if _is_index(v):
        return (v,)
    if isinstance(v, list) and v and all(_is_index(t) for t in v):
        twice = _repeated(v)
        if twice:
            ck.bad(where, "expected each timepoint once; listed more than once: "
                          f"{_short(twice)}")
            return None
        return tuple(v)
    m = re.fullmatch(r"\s*([0-9]{0,18}):([0-9]{0,18})\s*", v) if isinstance(v, str) else None
    if m:
        start = int(m[1]) if m[1] else 0
        stop = int(m[2]) if m[2] else None
        if stop is not None and stop <= start:
            ck.bad(where, f"expected a range whose stop is after its start, like '0:5' or "
                          f"'2:'; got {v!r}, which selects no timepoint")
            return None
        return slice(start, stop)
    ck.bad(where, f"expected a timepoint, a list of them, or a range like '0:5' or '2:'; "
                  f"got {_short(v)}")
    return None


def _wells(v: Any, where: str, ck: _Checker) -> tuple[str, ...] | None:
    if v is None:
        return None
    if not isinstance(v, list) or not v:
        ck.bad(where, f"expected a list of wells like ['A/1', 'B/3']; got {_short(v)}")
        return None
    out = []
    for w in v:
        if not isinstance(w, str) or not _WELL.fullmatch(w):
            ck.bad(where, f"expected wells as ROW/COLUMN (letters, digits, _ or -), "
                          f"e.g. 'B/3'; got {_short(w)}")
        else:
            out.append(w)
    twice = _repeated(out)
    if twice:
        ck.bad(where, f"expected each well once; listed more than once: {_short(twice)}")
    return tuple(out)


def _task(data: Any, where: str, base: Path, ck: _Checker) -> SegmentTask | None:
    if not isinstance(data, Mapping):
        ck.bad(where, f"expected a mapping with at least 'organelle'; got {_short(data)}")
        return None
    ck.keys(data, _TASK, where)
    if "organelle" not in data:
        ck.bad(f"{where}.organelle", f"missing ({' or '.join(ORGANELLES)})")
    settings, problems = SegmentationConfig.check_mapping(
        {k: v for k, v in data.items() if k in _SETTINGS})
    for key, message in problems:
        ck.bad(f"{where}.{key}", message)
    zoo = ck.string(data, "zoo", where)
    cell_line = ck.string(data, "cell_line", where)
    if zoo and data.get("model") is not None:
        ck.bad(where, "give either 'model' or 'zoo', not both")
    if zoo and not cell_line:
        ck.bad(f"{where}.cell_line", "missing: a zoo needs the cell line to choose models")
    if cell_line and not zoo:
        ck.bad(f"{where}.cell_line", "only used with 'zoo'")
    if not zoo and "channels" not in data:
        ck.bad(f"{where}.channels", "missing: name the channels to segment (or use a zoo)")
    wells = _wells(data.get("wells"), f"{where}.wells", ck)
    timepoints = _timepoints(data.get("timepoints"), f"{where}.timepoints", ck)
    zoo = _resolve(base, zoo, ck, f"{where}.zoo") if zoo else None
    model = settings.get("model")
    if model and ("/" in model or model.endswith(".pth") or model.startswith(".")):
        settings["model"] = _resolve(base, model, ck, f"{where}.model")
    if "organelle" not in settings:
        return None
    if not zoo and not problems:
        try:  # the checks between settings
            SegmentationConfig(**settings)
        except SettingsError as err:
            for key, message in err.problems:
                ck.bad(f"{where}.{key}", message)
    return SegmentTask(settings=settings, zoo=zoo, cell_line=cell_line, wells=wells,
                       timepoints=timepoints)


def _cluster(data: Any, base: Path, ck: _Checker, check_files: bool) -> ClusterSettings:
    if data is None:
        return ClusterSettings()
    if not isinstance(data, Mapping):
        ck.bad("cluster", f"expected a mapping with 'kind'; got {_short(data)}")
        return ClusterSettings()
    ck.keys(data, _CLUSTER, "cluster")
    flat = {k: v for k, v in data.items() if k in _CLUSTER and k != "tls"}
    tls = data.get("tls")
    if tls is not None:
        if not isinstance(tls, Mapping):
            ck.bad("cluster.tls", f"expected a mapping with ca, cert, key; got {_short(tls)}")
        else:
            ck.keys(tls, _TLS, "cluster.tls")
            for k in sorted(_TLS):
                v = ck.string(tls, k, "cluster.tls")
                if v is None:
                    ck.bad(f"cluster.tls.{k}", "missing (a PEM file)")
                    continue
                path = _resolve(base, v, ck, f"cluster.tls.{k}")
                if check_files and not Path(path).is_file():
                    ck.bad(f"cluster.tls.{k}", f"file not found: {path}")
                flat[f"tls_{k}"] = path
    values, problems = ClusterSettings.check_mapping(flat)
    if not problems:
        try:  # the checks between settings
            return ClusterSettings(**values)
        except SettingsError as err:
            problems = err.problems
    for key, message in problems:
        if not (key.startswith("tls_") and tls is not None and "missing" in message):
            ck.bad(_cluster_key(key), message)
    return ClusterSettings()


def _cluster_key(key: str) -> str:
    """Return where a cluster setting is in a job file (``tls_ca`` is ``tls.ca``)."""
    return f"cluster.{key.replace('tls_', 'tls.', 1)}"


def _cells(data: Any, tasks: list[SegmentTask], ck: _Checker) -> CellsSettings | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        ck.bad("cells", f"expected a mapping with at least 'cells'; got {_short(data)}")
        return None
    known = set(CellsSettings.settings_fields())
    ck.keys(data, known, "cells")
    if "cells" not in data:
        ck.bad("cells.cells", "missing: the cell label image (a segment entry's label name or "
                              "a label image of the plates)")
    settings, problems = CellsSettings.check_mapping(
        {k: v for k, v in data.items() if k in known})
    if not problems:
        try:  # the checks between settings
            task = CellsSettings(**settings)
        except SettingsError as err:
            problems = err.problems
    for key, message in problems:
        if key != "cells" or "cells" in data:  # (missing: said above)
            ck.bad(f"cells.{key}", message)
    if problems or "cells" not in data:
        return None
    produced = {t.label_name: i for i, t in enumerate(tasks)}
    for name in task.outputs():
        if name in produced:
            ck.bad("cells", f"writes the label image {name!r}, which segment[{produced[name]}] "
                            "writes too; rename one")
    return task


def _screen(data: Any, cells: Any, base: Path, ck: _Checker, check_files: bool
            ) -> ScreenSettings | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        ck.bad("screen", f"expected a mapping with at least 'plate_map'; got {_short(data)}")
        return None
    before = len(ck.problems)
    known = set(ScreenSettings.settings_fields())
    ck.keys(data, known, "screen")
    settings, problems = ScreenSettings.check_mapping(
        {k: v for k, v in data.items() if k in known})
    for key, message in problems:
        ck.bad(f"screen.{key}", message)
    if "plate_map" not in data:
        ck.bad("screen.plate_map", "missing: the plate map CSV (well, condition, ...) stored "
                                   "in every plate")
    elif "plate_map" in settings:
        path = _resolve(base, settings["plate_map"], ck, "screen.plate_map")
        if is_url(path):
            ck.bad("screen.plate_map", f"expected a local CSV file; got {redact(path)}")
        elif check_files and not Path(path).is_file():
            ck.bad("screen.plate_map", f"file not found: {path}")
        settings["plate_map"] = path
    if settings.get("tables", True) and cells is None:
        ck.bad("screen.tables", "needs the 'cells' section (the screen tables summarize its "
                                "per-cell table); set tables: false to only store the plate map")
    elif settings.get("tables", True) and isinstance(cells, Mapping) and cells.get(
            "measure") is False:
        ck.bad("screen.tables", "needs cells.measure (the screen tables summarize the per-cell "
                                "table); set tables: false to only store the plate map")
    elif (settings.get("tables", True) and isinstance(cells, Mapping)
          and cells.get("nuclei") is None and _ratio_readouts(settings.get("readouts"))):
        ck.bad("screen.readouts", "the cells are measured without nuclei (no cells.nuclei), so "
                                  "they have no nucleus/cytoplasm ratio, which channel "
                                  "readouts (the default) summarize; give cells.nuclei, or name "
                                  "whole-cell columns (readouts: [area_um2, "
                                  "<channel>__cell_mean])")
    if len(ck.problems) > before:
        return None
    return ScreenSettings(**settings)


def _ratio_readouts(readouts: Any) -> bool:
    """Whether screen readouts surely name ratios: the default, or a channel index.

    A name may be a channel's (its ratio) or a column's: only the table can tell.
    """
    return readouts is None or any(isinstance(r, int) and not isinstance(r, bool)
                                   for r in readouts)


def _plates(plates: Any, base: Path, ck: _Checker) -> list[str]:
    if plates is None:
        ck.bad("plates", "missing: list the plates (paths or glob patterns)")
        return []
    if not isinstance(plates, list) or not plates:
        ck.bad("plates",
               f"expected a list of plate paths or glob patterns; got {_short(plates)}")
        return []
    wrong = [i for i, p in enumerate(plates) if not isinstance(p, str) or not p]
    for i in wrong[:_MAX_LISTED]:
        ck.bad(f"plates[{i}]",
               f"expected a plate path or glob pattern; got {_short(plates[i])}")
    if len(wrong) > _MAX_LISTED:
        ck.bad("plates", f"{len(wrong) - _MAX_LISTED} more entries are not plate paths "
                         "or glob patterns")
    if wrong:
        return []
    before = len(ck.problems)
    out = _resolve_all(base, plates, ck, "plates")
    more = len(ck.problems) - before - _MAX_LISTED
    if more > 0:
        del ck.problems[before + _MAX_LISTED:]
        ck.bad("plates", f"{more} more entries cannot be expanded")
    return out


def parse_job(data: Any, source: str = "job", base: str | Path = ".", *,
              check_files: bool = True) -> Job:
    """Validate a job's parsed YAML.

    Parameters
    ----------
    data : Any
        The parsed document.
    source : str
        Where it came from (for messages).
    base : str or Path
        Folder that relative paths are relative to.
    check_files : bool
        Check that the TLS files exist (False: to check a job file on another machine).

    Returns
    -------
    Job

    Raises
    ------
    JobError
        With one line per mistake.

    Examples
    --------
    >>> job = parse_job({"version": 1, "plates": ["p.zarr"],
    ...                  "segment": [{"organelle": "cyto", "channels": [0, 1]}]}, base="/d")
    >>> job.tasks[0].settings["channels"], job.plates
    ((0, 1), ('/d/p.zarr',))
    >>> parse_job({"plates": "p.zarr", "segment": [{"organele": "cyto"}]})
    Traceback (most recent call last):
    ...
    structfree_dask.jobs.schema.JobError: job: 5 problem(s):
      - version: missing (this program reads version 1)
      - plates: expected a list of plate paths or glob patterns; got 'p.zarr'
      - segment[0].organele: unknown key (did you mean 'organelle'? ...)
      - segment[0].organelle: missing (cyto or nuclei)
      - segment[0].channels: missing: name the channels to segment (or use a zoo)
    >>> parse_job({"version": 1, "plates": ["p.zarr"], "segment": [
    ...     {"organelle": "cyto", "channels": [0], "diameter": float("nan"),
    ...      "timepoints": "5:2"}]})
    Traceback (most recent call last):
    ...
    structfree_dask.jobs.schema.JobError: job: 2 problem(s):
      - segment[0].diameter: expected a finite number between 0.001 and 100000 px; got nan
      - segment[0].timepoints: expected a range whose stop is after its start, ...
    """
    ck = _Checker()
    base = Path(base)
    if not isinstance(data, Mapping):
        raise JobError(source, [f"expected a mapping at the top level; got {type(data).__name__}"])
    ck.keys(data, _TOP, "")
    version = data.get("version")
    if version is None:
        ck.bad("version", f"missing (this program reads version {JOB_VERSION})")
    elif isinstance(version, bool) or version != JOB_VERSION:
        ck.bad("version", f"this program reads version {JOB_VERSION}; got {_short(version)}")
    pats = _plates(data.get("plates"), base, ck)
    seg = data.get("segment")
    tasks: list[SegmentTask] = []
    if seg is None:
        ck.bad("segment", "missing: list what to segment (organelle, channels, model)")
    elif not isinstance(seg, list) or not seg:
        ck.bad("segment", f"expected a list of segmentations; got {_short(seg)}")
    else:
        for i, item in enumerate(seg):
            t = _task(item, f"segment[{i}]", base, ck)
            if t is not None:
                tasks.append(t)
        for n in sorted(_repeated([t.label_name for t in tasks])):
            ck.bad("segment", f"two entries write the same label image {n!r}; give one a "
                              "'name'")
    cells = _cells(data.get("cells"), tasks, ck)
    screen = _screen(data.get("screen"), data.get("cells"), base, ck, check_files)
    cluster = _cluster(data.get("cluster"), base, ck, check_files)
    records = data.get("records")
    if records is not None and (not isinstance(records, str) or not records):
        ck.bad("records", f"expected a folder path; got {_short(records)}")
        records = None
    perf = ck.flag(data, "performance_report", "", default=True)
    stem = Path(source).stem if source != "job" else "job"
    records = _resolve(base, records or f"{stem}-runs", ck, "records")
    if ck.problems:
        raise JobError(source, ck.problems)
    return Job(source=source, plates=tuple(pats), tasks=tuple(tasks), cluster=cluster,
               records=records, performance_report=perf, cells=cells, screen=screen)


def load_job(path: str | Path, *, check_files: bool = True) -> Job:
    """Read and validate a job file (YAML).

    The file is read with a safe loader (plain YAML, no Python tags) that refuses
    documents whose anchors and aliases expand to more than 100 000 items.

    Parameters
    ----------
    path : str or Path
    check_files : bool
        Check that the TLS files it names exist.

    Raises
    ------
    FileNotFoundError
        No such file.
    JobError
        YAML syntax errors, alias bombs and every wrong key or value, one line each.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"job file not found: {p}")
    data = _read_yaml(p.read_bytes(), str(p))
    return parse_job(data, source=str(p), base=p.resolve().parent, check_files=check_files)
