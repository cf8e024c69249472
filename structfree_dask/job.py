"""Job files: what a scheduled (nightly) run segments, and on which cluster.

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
    cluster:
      kind: local                      # local | cuda | scheduler
      workers: 2
    records: runs                      # run records and performance reports

Optional keys of a ``segment`` entry: ``name``, ``diameter``, ``tile_size``, ``halo``,
``batch_size``, ``wells``, ``timepoints`` (``"0:5"``, ``"2:"`` or a list),
``fusion`` (``fa``, ``voting``, ``majority``, ``staple``, ``simple``), ``overwrite``.
Optional keys of ``cluster``: ``workers``, ``threads_per_worker`` (local),
``address`` (scheduler: ``tcp://`` or ``tls://``), ``tls`` (``ca``, ``cert``, ``key``).
Top level: ``records`` (default ``<job file name>-runs`` beside the job file) and
``performance_report`` (default true).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import check_name
from .tiling import DEFAULT_TILE_SIZE

__all__ = ["JobError", "Job", "SegmentTask", "ClusterSpec", "load_job", "parse_job",
           "FUSIONS", "JOB_VERSION"]

JOB_VERSION = 1
FUSIONS = ("fa", "voting", "majority", "staple", "simple")
_ORGANELLES = ("cyto", "nuclei")
_TOP = {"version", "plates", "segment", "cluster", "records", "performance_report"}
_TASK = {"organelle", "channels", "model", "zoo", "cell_line", "name", "diameter",
         "tile_size", "halo", "batch_size", "wells", "timepoints", "fusion", "overwrite"}
_CLUSTER = {"kind", "workers", "threads_per_worker", "address", "tls"}
_TLS = {"ca", "cert", "key"}
_WELL = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$")


class JobError(ValueError):
    """A job file with mistakes; ``problems`` lists each one."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class SegmentTask:
    """One label image to produce on every plate of the job."""

    organelle: str
    channels: tuple[int | str, ...] = ()
    model: str | None = None
    zoo: str | None = None
    cell_line: str | None = None
    name: str | None = None
    diameter: float | None = None
    tile_size: int = DEFAULT_TILE_SIZE
    halo: int | None = None
    batch_size: int | None = None
    wells: tuple[str, ...] | None = None
    timepoints: slice | tuple[int, ...] | None = None
    fusion: str = "fa"
    overwrite: bool = False

    @property
    def label_name(self) -> str:
        """Name of the label image written."""
        return self.name or self.organelle


@dataclass(frozen=True)
class ClusterSpec:
    """Where a job runs."""

    kind: str = "local"
    workers: int | None = None
    threads_per_worker: int = 1
    address: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def security(self) -> Any:
        """Return a ``distributed.security.Security`` for the TLS files, or None."""
        if not self.tls_ca:
            return None
        from distributed.security import Security

        return Security(tls_ca_file=self.tls_ca, tls_client_cert=self.tls_cert,
                        tls_client_key=self.tls_key, require_encryption=True)


@dataclass(frozen=True)
class Job:
    """A validated job file."""

    source: str
    plates: tuple[str, ...]
    tasks: tuple[SegmentTask, ...]
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    records: str = "runs"
    performance_report: bool = True

    def plate_paths(self) -> list[str]:
        """Return the plates the patterns match now (sorted, each once)."""
        out: list[str] = []
        for pattern in self.plates:
            hits = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            for h in hits:
                if h not in out:
                    out.append(h)
        return out


# ----------------------------------------------------------------------------- parsing


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, where: str, msg: str) -> None:
        self.problems.append(f"{where}: {msg}")

    def keys(self, data: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for k in data:
            if k not in allowed:
                near = sorted(allowed, key=lambda a: _distance(str(k), a))[0]
                self.bad(f"{where}.{k}" if where else str(k),
                         f"unknown key (did you mean {near!r}? allowed: "
                         f"{', '.join(sorted(allowed))})")

    def integer(self, data: Mapping[str, Any], key: str, where: str, *, minimum: int,
                default: int | None) -> int | None:
        v = data.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            self.bad(f"{where}.{key}", f"expected an integer >= {minimum}; got {v!r}")
            return default
        if v < minimum:
            self.bad(f"{where}.{key}", f"expected an integer >= {minimum}; got {v}")
            return default
        return v

    def string(self, data: Mapping[str, Any], key: str, where: str,
               choices: tuple[str, ...] | None = None) -> str | None:
        v = data.get(key)
        if v is None:
            return None
        if not isinstance(v, str) or not v:
            self.bad(f"{where}.{key}", f"expected a non-empty string; got {v!r}")
            return None
        if choices is not None and v not in choices:
            self.bad(f"{where}.{key}", f"expected one of {', '.join(choices)}; got {v!r}")
            return None
        return v


def _distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


def _timepoints(v: Any, where: str, ck: _Checker) -> slice | tuple[int, ...] | None:
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return (v,)
    if isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool)
                                         and t >= 0 for t in v):
        return tuple(v)
    if isinstance(v, str) and re.fullmatch(r"\d*:\d*", v.strip()):
        a, _, b = v.strip().partition(":")
        return slice(int(a) if a else 0, int(b) if b else None)
    ck.bad(where, f"expected a timepoint, a list of them, or a range like '0:5' or '2:'; "
                  f"got {v!r}")
    return None


def _channels(v: Any, where: str, ck: _Checker) -> tuple[int | str, ...]:
    if v is None:
        return ()
    items = v if isinstance(v, list) else [v]
    out: list[int | str] = []
    for c in items:
        if isinstance(c, bool) or not isinstance(c, int | str) or c == "" or (
                isinstance(c, int) and c < 0):
            ck.bad(where, f"expected channel indices (>= 0) or names; got {c!r}")
            continue
        out.append(c)
    if len(set(out)) != len(out):
        ck.bad(where, f"a channel is listed twice: {items}")
    return tuple(out)


def _wells(v: Any, where: str, ck: _Checker) -> tuple[str, ...] | None:
    if v is None:
        return None
    if not isinstance(v, list) or not v:
        ck.bad(where, f"expected a list of wells like ['A/1', 'B/3']; got {v!r}")
        return None
    out = []
    for w in v:
        if not isinstance(w, str) or not _WELL.match(w):
            ck.bad(where, f"expected wells as ROW/COLUMN (letters, digits, _ or -), "
                          f"e.g. 'B/3'; got {w!r}")
        else:
            out.append(w)
    return tuple(out)


def _task(data: Any, where: str, base: Path, ck: _Checker) -> SegmentTask | None:
    if not isinstance(data, Mapping):
        ck.bad(where, f"expected a mapping with at least 'organelle'; got {data!r}")
        return None
    ck.keys(data, _TASK, where)
    organelle = ck.string(data, "organelle", where, _ORGANELLES)
    if "organelle" not in data:
        ck.bad(f"{where}.organelle", "missing (cyto or nuclei)")
    channels = _channels(data.get("channels"), f"{where}.channels", ck)
    model = ck.string(data, "model", where)
    zoo = ck.string(data, "zoo", where)
    cell_line = ck.string(data, "cell_line", where)
    if zoo and model:
        ck.bad(where, "give either 'model' or 'zoo', not both")
    if zoo and not cell_line:
        ck.bad(f"{where}.cell_line", "missing: a zoo needs the cell line to choose models")
    if cell_line and not zoo:
        ck.bad(f"{where}.cell_line", "only used with 'zoo'")
    if not zoo and not channels:
        ck.bad(f"{where}.channels", "missing: name the channels to segment (or use a zoo)")
    name = ck.string(data, "name", where)
    if name is not None:
        try:
            check_name(name, "label name")
        except ValueError as err:
            ck.bad(f"{where}.name", str(err))
            name = None
    diameter = data.get("diameter")
    if diameter is not None and (isinstance(diameter, bool)
                                 or not isinstance(diameter, int | float) or diameter <= 0):
        ck.bad(f"{where}.diameter", f"expected a number > 0 (pixels); got {diameter!r}")
        diameter = None
    tile = ck.integer(data, "tile_size", where, minimum=64, default=DEFAULT_TILE_SIZE)
    halo = ck.integer(data, "halo", where, minimum=0, default=None)
    batch = ck.integer(data, "batch_size", where, minimum=1, default=None)
    fusion = ck.string(data, "fusion", where, FUSIONS) or "fa"
    overwrite = data.get("overwrite", False)
    if not isinstance(overwrite, bool):
        ck.bad(f"{where}.overwrite", f"expected true or false; got {overwrite!r}")
        overwrite = False
    if organelle is None:
        return None
    if model and ("/" in model or model.endswith(".pth") or model.startswith(".")):
        model = _resolve(base, model)
    return SegmentTask(
        organelle=organelle, channels=channels, model=model,
        zoo=_resolve(base, zoo) if zoo else None, cell_line=cell_line, name=name,
        diameter=float(diameter) if diameter is not None else None,
        tile_size=tile or DEFAULT_TILE_SIZE,
        halo=halo, batch_size=batch, wells=_wells(data.get("wells"), f"{where}.wells", ck),
        timepoints=_timepoints(data.get("timepoints"), f"{where}.timepoints", ck),
        fusion=fusion, overwrite=overwrite)


def _cluster(data: Any, base: Path, ck: _Checker, check_files: bool) -> ClusterSpec:
    if data is None:
        return ClusterSpec()
    if not isinstance(data, Mapping):
        ck.bad("cluster", f"expected a mapping with 'kind'; got {data!r}")
        return ClusterSpec()
    ck.keys(data, _CLUSTER, "cluster")
    kind = ck.string(data, "kind", "cluster", ("local", "cuda", "scheduler")) or "local"
    workers = ck.integer(data, "workers", "cluster", minimum=1, default=None)
    threads = ck.integer(data, "threads_per_worker", "cluster", minimum=1, default=1)
    address = ck.string(data, "address", "cluster")
    if kind == "scheduler" and not address:
        ck.bad("cluster.address", "missing: kind 'scheduler' needs the scheduler's address")
    if address and kind != "scheduler":
        ck.bad("cluster.address", f"only used with kind 'scheduler' (kind is {kind!r})")
    if address and not re.match(r"^(tcp|tls)://[^/\s]+:\d+$", address):
        ck.bad("cluster.address", f"expected tcp://HOST:PORT or tls://HOST:PORT; got {address!r}")
    if kind == "scheduler" and workers is not None:
        ck.bad("cluster.workers", "only used for clusters started by the job (local, cuda)")
    tls = data.get("tls")
    files: dict[str, str | None] = {"ca": None, "cert": None, "key": None}
    if tls is not None:
        if not isinstance(tls, Mapping):
            ck.bad("cluster.tls", f"expected a mapping with ca, cert, key; got {tls!r}")
        else:
            ck.keys(tls, _TLS, "cluster.tls")
            for k in _TLS:
                v = ck.string(tls, k, "cluster.tls")
                if v is None:
                    ck.bad(f"cluster.tls.{k}", "missing (a PEM file)")
                    continue
                path = _resolve(base, v)
                if check_files and not Path(path).is_file():
                    ck.bad(f"cluster.tls.{k}", f"file not found: {path}")
                files[k] = path
        if kind != "scheduler":
            ck.bad("cluster.tls", "only used with kind 'scheduler'")
    if address and address.startswith("tls://") and tls is None:
        ck.bad("cluster.tls", "missing: a tls:// scheduler needs ca, cert and key")
    return ClusterSpec(kind=kind, workers=workers, threads_per_worker=threads or 1,
                       address=address, tls_ca=files["ca"], tls_cert=files["cert"],
                       tls_key=files["key"])


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
    >>> job.tasks[0].channels, job.plates
    ((0, 1), ('/d/p.zarr',))
    >>> parse_job({"plates": "p.zarr", "segment": [{"organele": "cyto"}]})
    Traceback (most recent call last):
    ...
    structfree_dask.job.JobError: job: 5 problem(s):
      - version: missing (this program reads version 1)
      - plates: expected a list of plate paths or glob patterns; got 'p.zarr'
      - segment[0].organele: unknown key (did you mean 'organelle'? ...)
      - segment[0].organelle: missing (cyto or nuclei)
      - segment[0].channels: missing: name the channels to segment (or use a zoo)
    """
    ck = _Checker()
    base = Path(base)
    if not isinstance(data, Mapping):
        raise JobError(source, [f"expected a mapping at the top level; got {type(data).__name__}"])
    ck.keys(data, _TOP, "")
    version = data.get("version")
    if version is None:
        ck.bad("version", f"missing (this program reads version {JOB_VERSION})")
    elif version != JOB_VERSION:
        ck.bad("version", f"this program reads version {JOB_VERSION}; got {version!r}")
    plates = data.get("plates")
    pats: list[str] = []
    if plates is None:
        ck.bad("plates", "missing: list the plates (paths or glob patterns)")
    elif not isinstance(plates, list) or not plates or not all(
            isinstance(p, str) and p for p in plates):
        ck.bad("plates", f"expected a list of plate paths or glob patterns; got {plates!r}")
    else:
        pats = [_resolve(base, p) for p in plates]
    seg = data.get("segment")
    tasks: list[SegmentTask] = []
    if seg is None:
        ck.bad("segment", "missing: list what to segment (organelle, channels, model)")
    elif not isinstance(seg, list) or not seg:
        ck.bad("segment", f"expected a list of segmentations; got {seg!r}")
    else:
        for i, item in enumerate(seg):
            t = _task(item, f"segment[{i}]", base, ck)
            if t is not None:
                tasks.append(t)
        names = [t.label_name for t in tasks]
        for n in sorted({n for n in names if names.count(n) > 1}):
            ck.bad("segment", f"two entries write the same label image {n!r}; give one a "
                              "'name'")
    cluster = _cluster(data.get("cluster"), base, ck, check_files)
    records = data.get("records")
    if records is not None and (not isinstance(records, str) or not records):
        ck.bad("records", f"expected a folder path; got {records!r}")
        records = None
    perf = data.get("performance_report", True)
    if not isinstance(perf, bool):
        ck.bad("performance_report", f"expected true or false; got {perf!r}")
        perf = True
    if ck.problems:
        raise JobError(source, ck.problems)
    stem = Path(source).stem if source != "job" else "job"
    return Job(source=source, plates=tuple(pats), tasks=tuple(tasks), cluster=cluster,
               records=_resolve(base, records or f"{stem}-runs"), performance_report=perf)


def load_job(path: str | Path, *, check_files: bool = True) -> Job:
    """Read and validate a job file (YAML).

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
        YAML syntax errors and every wrong key or value, one line each.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"job file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise JobError(str(p), [f"not valid YAML: {err}"]) from None
    return parse_job(data, source=str(p), base=p.resolve().parent, check_files=check_files)
