"""Simulated plates written as OME-Zarr with ground truth.

:func:`simulate_plate` simulates every field; :func:`simulate_plate_from_shapes` renders the
reporters on the cell shapes of an annotated plate.
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import TYPE_CHECKING

import numpy as np

from ..config import TRUTH_TABLE, true_ratio_column
from .field import (
    DEFOCUS_COLUMNS,
    DEFOCUS_DTYPES,
    STAGE_COLUMNS,
    STAGE_DTYPES,
    TRUTH_DTYPES,
    TRUTH_KEYS,
    SimulatedField,
    simulate_field,
)
from .options import (
    TIME_INTERVAL_H,
    check_int,
    resolve_defocus_p,
    resolve_mode,
    resolve_motion_scale,
    resolve_preset,
    resolve_size,
    resolve_stage_jitter,
)
from .presets import CellLinePreset, ChannelSpec
from .screen import (
    CELL_SD,
    CONTROL_ONSET_STEPS,
    RAMP_STEPS,
    WellResponse,
    draw_compounds,
    translocation_channel,
    well_responses,
    well_truth,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

    from ..io import ImageInfo, Plate, PlateWriter

__all__ = ["SCREEN_TRUTH_TABLE", "SCREEN_TRUTH_WELLS_TABLE", "simulate_plate",
           "simulate_plate_from_shapes"]

#: The simulated screen's truth per compound: ``<plate>/tables/screen_truth``.
SCREEN_TRUTH_TABLE = "screen_truth"
#: The simulated screen's truth per well and timepoint: ``<plate>/tables/screen_truth_wells``.
SCREEN_TRUTH_WELLS_TABLE = "screen_truth_wells"
#: Spawn key of the compounds' draws (the fields' keys are (row, column, field)).
_COMPOUND_KEY = (7, 7, 7, 7)

#: The package's logger: records are named ``structfree_dask.simulate``, as before the split.
logger = logging.getLogger(__name__.rpartition(".")[0])


def _row_name(i: int) -> str:
    """Spreadsheet-style row name: 0 -> 'A', 25 -> 'Z', 26 -> 'AA'."""
    name = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


#: Keys in front of the plate-level dataset's rows and their types.
_PLATE_DTYPES = {"well": np.str_, "row": np.str_, "column": np.str_, "field": np.int32}


def _arrow(df: pd.DataFrame) -> pa.Table:
    """Return truth rows as an Arrow table with the full schema (also for zero rows)."""
    import pyarrow as pa

    types = {**_PLATE_DTYPES, **TRUTH_DTYPES, **STAGE_DTYPES, **DEFOCUS_DTYPES}
    schema = pa.schema(
        [(c, pa.from_numpy_dtype(np.dtype(types.get(c, np.float64)))) for c in df.columns]
    )
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False)


def _write_simulated(plate: PlateWriter, where: tuple[str, str, int], sim: SimulatedField,
                     progress: tuple[int, int]) -> None:
    """Write one simulated field, its ``gt_nuclei`` / ``gt_cyto`` labels and its truth.

    The truth's plate-level dataset goes where the writer writes (:attr:`PlateWriter.path`).
    """
    row, col, fi = where
    info = plate.write_field(
        row, col, fi, sim.image,
        axes="tcyx",
        channel_names=list(sim.channel_names),
        pixel_size_um=(sim.pixel_size_um, sim.pixel_size_um),
        time_interval_h=sim.time_interval_h,
        labels={"gt_nuclei": sim.nuclei, "gt_cyto": sim.cyto},
    )
    _write_truth(plate.path, info, where, sim.truth, sim.image.shape[0], _truth_attrs(sim))
    logger.info("simulated %s field %s%s/%d (%d/%d): %d cells at t=0", sim.cell_line, row, col,
                fi, *progress, int(np.count_nonzero(np.unique(sim.cyto[0]))))


def _truth_attrs(sim: SimulatedField) -> dict[str, object] | None:
    """Attributes of a field's truth table: how it was simulated, where not the default.

    Stage jitter: ``stage_jitter_px`` and the shifts ``stage_dy``, ``stage_dx`` of every
    timepoint; defocus: ``defocus_p`` and ``defocused_timepoints`` (the out-of-focus ones,
    ascending); ``motion_scale`` when not 1. None when all are the defaults.
    """
    attrs: dict[str, object] = {}
    if sim.stage_jitter_px:
        attrs["stage_jitter_px"] = sim.stage_jitter_px
        attrs.update({name: sim.stage_shift[:, k].tolist()
                      for k, name in enumerate(STAGE_COLUMNS)})
    if sim.defocus_p > 0:
        attrs["defocus_p"] = sim.defocus_p
        attrs["defocused_timepoints"] = np.flatnonzero(sim.defocused).tolist()
    if sim.motion_scale != 1.0:
        attrs["motion_scale"] = sim.motion_scale
    return attrs or None


def _write_truth(
    plate: str, info: ImageInfo, where: tuple[str, str, int], truth: pd.DataFrame, n_t: int,
    attrs: dict[str, object] | None = None,
) -> None:
    """Write a field's truth as its feature table and into the plate-level dataset.

    ``where`` is the field's ``(row, column, field index)``; every timepoint gets a part,
    also one without cells. ``attrs`` (how the field was simulated, see
    :func:`_truth_attrs`) goes into the table's attributes.
    """
    from structfree_dask.io import (
        create_feature_table,
        join,
        plate_dataset,
        plate_part_name,
        write_parquet,
        write_table_part,
    )

    row, col, fi = where
    extra = (*STAGE_COLUMNS, *DEFOCUS_COLUMNS)
    ratios = [c for c in truth.columns if c not in TRUTH_KEYS and c not in extra]
    flags = [c for c in extra if c in truth.columns]
    create_feature_table(
        info, TRUTH_TABLE, reference_label="gt_cyto", measurement_columns=ratios,
        metadata_columns=["t", "parent_label", *flags], attrs=attrs,
    )
    dataset = plate_dataset(plate, TRUTH_TABLE)
    keys = {"well": f"{row}{col}", "row": row, "column": col, "field": fi}
    for t in range(n_t):
        rows = truth[truth["t"] == t].reset_index(drop=True)
        write_table_part(info, TRUTH_TABLE, t, _arrow(rows))
        keyed = rows.assign(**keys)[[*keys, *rows.columns]]
        write_parquet(_arrow(keyed), join(dataset, plate_part_name(info.path, t)))


class _Screen:
    """A simulated screen's plan: the parsed plate map, the compounds, each well's response."""

    def __init__(self, plate_map: pd.DataFrame | str | os.PathLike[str], preset: CellLinePreset,
                 wells: list[str], timepoints: int, root: np.random.SeedSequence) -> None:
        import pandas as pd

        from ..io import parse_plate_map, read_plate_map_csv

        self.spec: ChannelSpec = translocation_channel(preset)
        if isinstance(plate_map, pd.DataFrame):
            data = plate_map.drop(columns=[c for c in ("row", "column") if c in plate_map])
            data = data.astype(object).where(data.notna(), "").astype(str)
            self.source = "DataFrame"
        elif isinstance(plate_map, (str, os.PathLike)):
            data = read_plate_map_csv(plate_map)
            self.source = os.path.basename(os.fspath(plate_map))
        else:
            raise TypeError(f"plate_map: expected a CSV path or a pandas DataFrame; got "
                            f"{type(plate_map).__name__}")
        self.plate_map = parse_plate_map(data, wells, source=self.source)
        rng = np.random.default_rng(np.random.SeedSequence(entropy=root.entropy,
                                                           spawn_key=_COMPOUND_KEY))
        self.compounds = draw_compounds(self.plate_map, rng, timepoints)
        self.responses: dict[str, WellResponse] = well_responses(self.plate_map,
                                                                 self.compounds)
        self.timepoints = timepoints
        self.ratios: dict[str, list[pd.DataFrame]] = {}

    def record(self, well: str, truth: pd.DataFrame) -> None:
        """Keep a field's true per-cell ratios for the well's truth."""
        column = true_ratio_column(self.spec.name)
        self.ratios.setdefault(well, []).append(truth[["t", column]])

    def write(self, plate: str, cell_line: str) -> None:
        """Write the screen's truth tables into the plate (see :func:`simulate_plate`)."""
        import pyarrow as pa

        from ..io import write_plate_table

        column = true_ratio_column(self.spec.name)
        wells = well_truth(self.plate_map, self.responses, self.spec, self.ratios,
                           self.timepoints, column)
        record = {
            "kind": "screen_truth", "cell_line": cell_line, "channel": self.spec.name,
            "truth_column": column, "baseline": self.spec.nc_ratio_start,
            "window": self.spec.nc_ratio_end - self.spec.nc_ratio_start,
            "control_onset_h": CONTROL_ONSET_STEPS * TIME_INTERVAL_H,
            "ramp_h": RAMP_STEPS * TIME_INTERVAL_H, "cell_sd": CELL_SD,
            "time_interval_h": TIME_INTERVAL_H, "timepoints": self.timepoints,
            "plate_map": self.source, "wells_table": SCREEN_TRUTH_WELLS_TABLE,
            "model": "ratio(t) = baseline + window * effect * ramp(t); ramp(t) = clip((t - "
                     "onset_h) / ramp_h, 0, 1); effect: 0 negative, 1 positive, "
                     "dose^hill / (dose^hill + ec50^hill) for a compound; each cell: "
                     "ratio(t) * exp(cell_sd * z)",
        }
        meta = {"type": "generic_table", "table_version": "1", "backend": "parquet"}
        for name, table in ((SCREEN_TRUTH_TABLE, self.compounds),
                            (SCREEN_TRUTH_WELLS_TABLE, wells)):
            write_plate_table(plate, name, pa.Table.from_pandas(table, preserve_index=False),
                              {**meta, "structfree_dask": {**record, "table": name}},
                              overwrite=True)


def simulate_plate(
    path: str | os.PathLike[str],
    *,
    cell_line: CellLinePreset | str = "CL1",
    rows: int = 1,
    cols: int = 1,
    fields: int = 1,
    timepoints: int = 1,
    size: int | tuple[int, int] = 512,
    seed: int = 0,
    ngff_version: str = "0.4",
    mode: str = "confocal",
    overwrite: bool = False,
    stage_jitter_px: int = 0,
    defocus_p: float = 0.0,
    motion_scale: float = 1.0,
    plate_map: pd.DataFrame | str | os.PathLike[str] | None = None,
) -> pathlib.Path | str:
    """Simulate a plate and write it as an OME-Zarr HCS plate with ground-truth labels.

    Every field is simulated with :func:`simulate_field` using its own seed derived from
    ``(seed, row, col, field)`` and written with :func:`structfree_dask.io.create_plate`;
    ground truth goes to the label images ``gt_nuclei`` and ``gt_cyto``, and the field's
    :attr:`SimulatedField.truth` to the feature table ``gt_truth``
    (:data:`structfree_dask.config.TRUTH_TABLE`, ``<field>/tables/gt_truth``, rows keyed by
    ``gt_cyto`` labels, one Parquet part per timepoint) and to the plate-level dataset
    ``<plate>/measurements/gt_truth/`` (the same rows with ``well``, ``row``, ``column`` and
    ``field`` in front; see :func:`structfree_dask.io.read_plate_dataset`).

    With ``stage_jitter_px`` > 0 every field moves under the camera between timepoints
    (see :func:`simulate_field`); its truth then also records the stage's shift from
    timepoint 0: the columns ``stage_dy`` and ``stage_dx`` (int32, pixels; the field's
    content seems to move by ``(-stage_dy, -stage_dx)``) of ``gt_truth``, in every row
    of that (field, timepoint), and the attributes ``stage_jitter_px`` and ``stage_dy``,
    ``stage_dx`` (one value per timepoint, also for a timepoint without cells) of the
    field's ``gt_truth`` table group. Without jitter neither is written.

    With ``defocus_p`` > 0 some timepoints after the first are out of focus, drawn per
    field and timepoint (see :func:`simulate_field`): ``gt_truth`` then has the column
    ``defocused`` (bool, after the stage's columns, in every row of that field and
    timepoint) and its table group the attributes ``defocus_p`` and
    ``defocused_timepoints`` (the field's out-of-focus timepoints, ascending; ``[]`` when
    none was drawn). With ``motion_scale`` other than 1 the cells' own motion is scaled
    (see :func:`simulate_field`) and the attribute ``motion_scale`` records it. At the
    defaults none of these is written and the plate is the same as without the arguments.

    With a ``plate_map`` the plate is a simulated screen
    (:mod:`structfree_dask.simulate.screen`): each well's cells get the translocation
    reporter's ratio from the well's treatment (negative controls at the baseline, positive
    controls at the baseline + window after their onset, each compound a Hill curve of its
    dose with an EC50, a slope and an onset drawn from ``seed``), and the screen's truth is
    written into the plate: ``<plate>/tables/screen_truth`` (one row per compound:
    ``compound``, ``dose_unit``, ``dose_min``, ``dose_max``, ``n_doses``, ``ec50``,
    ``log10_ec50``, ``hill``, ``onset_h``, ``ramp_h``) and
    ``<plate>/tables/screen_truth_wells`` (one row per well and timepoint: the plate map's
    columns, ``effect``, ``model_ratio`` and the ``n_cells``, ``median`` and ``mean`` of
    the cells' true ratios); both tables' attribute ``structfree_dask`` records the model
    (``baseline``, ``window``, ``control_onset_h``, ``ramp_h``, ``cell_sd``...). The
    per-cell true ratios are in ``gt_truth`` as always. The plate map is not stored: store
    it with ``structfree-dask annotate``.

    Parameters
    ----------
    path : str or os.PathLike
        Where to create the plate: a new local ``.zarr`` folder, or a URL such as
        ``s3://bucket/plate.zarr``.
    cell_line : CellLinePreset or str
        The cell line, or the key of one in :data:`PRESETS`.
    rows, cols : int
        Plate rows (named ``"A"``, ``"B"``, ...) and columns (named ``"1"``, ``"2"``, ...).
    fields : int
        Fields per well (indexed ``0 .. fields - 1``).
    timepoints : int
        Timepoints per field.
    size : int or tuple of int
        Field size in pixels (see :func:`simulate_field`).
    seed : int
        Plate seed (non-negative).
    ngff_version : str
        OME-NGFF version passed to the plate writer.
    mode : {"confocal", "widefield"}
        Imaging mode (see :func:`simulate_field`).
    overwrite : bool
        Replace an existing plate at ``path`` (with everything made on it since). Only an
        OME-Zarr plate is ever replaced: anything else there is refused.
    stage_jitter_px : int
        Largest stage shift in pixels, per field and timepoint (0, the default: none; at
        most half the field's smaller side; see :func:`simulate_field`).
    defocus_p : float
        Probability in ``[0, 1]`` that a timepoint after the first is out of focus, per
        field (0, the default: never; see :func:`simulate_field`).
    motion_scale : float
        Factor in ``[0, 100]`` on the cells' own motion (1, the default: the cell line's;
        see :func:`simulate_field`).
    plate_map : str, os.PathLike or pandas.DataFrame, optional
        A plate map CSV (the format of ``structfree-dask annotate``, one row per well;
        :func:`structfree_dask.io.parse_plate_map`), or its rows as a DataFrame (as read by
        :func:`structfree_dask.io.read_plate_map_csv` or parsed). The cell line needs a
        translocation reporter.

    Returns
    -------
    pathlib.Path or str
        The plate: a Path for a local plate, the URL for an object store.

    Raises
    ------
    ValueError
        For invalid counts, seeds, cell lines, modes, stage jitter, defocus probabilities or
        motion scales (see :func:`simulate_field`). Nothing is written then.
    structfree_dask.io.PlateMapError
        A plate map with mistakes, in one line (nothing is written).
    FileNotFoundError
        No such plate map file.
    TypeError
        Arguments of the wrong type.
    FileExistsError
        Something is at ``path`` and ``overwrite`` is False, or it is not a plate.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> out = simulate_plate(pathlib.Path(tmp) / "plate.zarr", rows=1, cols=2, size=64)
    >>> out.name
    'plate.zarr'
    >>> from structfree_dask.io import open_plate, read_feature_table, read_plate_dataset
    >>> truth = read_feature_table(open_plate(out).field("A/2/0"), "gt_truth")
    >>> list(truth.columns)
    ['label', 't', 'parent_label', 'translocation-reporter__true_nc_ratio']
    >>> read_plate_dataset(str(out), "gt_truth")["well"].unique().tolist()
    ['A1', 'A2']
    """
    preset = resolve_preset(cell_line)
    n_rows = check_int("rows", rows, 1)
    n_cols = check_int("cols", cols, 1)
    n_fields = check_int("fields", fields, 1)
    n_t = check_int("timepoints", timepoints, 1)
    jitter = resolve_stage_jitter(stage_jitter_px, resolve_size(size))
    p_defocus = resolve_defocus_p(defocus_p)
    motion = resolve_motion_scale(motion_scale)
    resolve_mode(mode)
    root = np.random.SeedSequence(check_int("seed", seed, 0))
    row_names = [_row_name(i) for i in range(n_rows)]
    col_names = [str(j + 1) for j in range(n_cols)]
    screen = None if plate_map is None else _Screen(
        plate_map, preset, [f"{r}/{c}" for r in row_names for c in col_names], n_t, root)

    from structfree_dask.io import as_location, create_plate, exists, open_plate

    out = as_location(path)
    if overwrite and exists(str(out)):
        try:
            open_plate(out)
        except (FileNotFoundError, ValueError, KeyError) as err:
            raise FileExistsError(f"{out} exists and is not an OME-Zarr plate ({err}); "
                                  "overwrite replaces only a plate") from None
    total = n_rows * n_cols * n_fields
    done = 0
    with create_plate(
        out, rows=row_names, columns=col_names, ngff_version=ngff_version,
        name=f"{preset.name} simulated", overwrite=overwrite,
    ) as plate:
        for ri, row in enumerate(row_names):
            for ci, col in enumerate(col_names):
                for fi in range(n_fields):
                    field_seed = np.random.SeedSequence(
                        entropy=root.entropy, spawn_key=(ri, ci, fi)
                    )
                    sim = simulate_field(
                        preset, size=size, timepoints=n_t, seed=field_seed, mode=mode,
                        stage_jitter_px=jitter, defocus_p=p_defocus, motion_scale=motion,
                        response=None if screen is None else screen.responses[f"{row}{col}"],
                    )
                    done += 1
                    _write_simulated(plate, (row, col, fi), sim, (done, total))
                    if screen is not None:
                        screen.record(f"{row}{col}", sim.truth)
    if screen is not None:
        screen.write(str(out), preset.name)
    return out


def _shape_sources(source: Plate, labels: str,
                   nuclei: str | None) -> list[tuple[ImageInfo, tuple[str, str, int]]]:
    """Return the source fields that have ``labels``, each with its (row, column, field)."""
    from ..io import open_labels

    if source.kind != "plate":
        raise ValueError(f"shapes: expected an HCS plate; {source.store} is a single image")
    found: list[tuple[ImageInfo, tuple[str, str, int]]] = []
    names: set[str] = set()
    for info in source.fields():
        names.update(info.labels)
        if labels not in info.labels:
            logger.info("shapes: %s has no label image %r; skipped", info.path, labels)
            continue
        if nuclei is not None and nuclei not in info.labels:
            raise ValueError(f"shapes: field {info.path} of {source.store} has {labels!r} but "
                             f"no nuclei {nuclei!r}; it has: {', '.join(info.labels)}")
        shape = open_labels(info, labels).shapes[0]
        yx = (shape[-2], shape[-1])
        if min(yx) < 64:
            raise ValueError(f"shapes: field {info.path} of {source.store} is {yx[0]} x "
                             f"{yx[1]} px; expected at least 64 x 64")
        row, col, fld = info.path.split("/")
        found.append((info, (row, col, int(fld) if fld.isdigit() else len(found))))
    if not found:
        raise ValueError(f"shapes: no field of {source.store} has a label image {labels!r}; "
                         f"label images there: {', '.join(sorted(names)) or 'none'}")
    return found


def _first_plane(info: ImageInfo, name: str) -> np.ndarray:
    """Read level 0 of a label image at timepoint 0, z plane 0, as ``(y, x)``."""
    from ..io import open_labels

    return np.asarray(open_labels(info, name).open_array(0, mode="r")[info.plane_index(0, 0)])


def _check_outside(out: str | pathlib.Path, source: str) -> None:
    """Refuse a new plate inside its source plate (or the source inside the new plate)."""
    from ..io import is_inside

    if is_inside(out, source) or is_inside(source, out):
        raise ValueError(f"the new plate {out} and the source plate {source} overlap; write "
                         "the new plate outside the source plate")


def simulate_plate_from_shapes(
    path: str | os.PathLike[str],
    shapes_from: str | os.PathLike[str],
    *,
    labels: str = "gt_cyto",
    nuclei: str | None = None,
    cell_line: CellLinePreset | str = "CL1",
    timepoints: int = 1,
    seed: int = 0,
    ngff_version: str = "0.4",
    mode: str = "confocal",
) -> pathlib.Path | str:
    """Render a cell line's reporters on the cell shapes of an annotated plate.

    Every field of ``shapes_from`` that has the label image ``labels`` becomes the field at
    the same place in the new plate: :func:`~structfree_dask.simulate.shapes.simulate_on_shapes`
    renders the reporters on its cells (timepoint 0, z plane 0, full resolution) and, when
    ``nuclei`` is given, its nuclei (else nuclei are drawn per cell), with a seed derived from
    ``(seed, row, column, field)``. Ground truth is written as by :func:`simulate_plate`:
    ``gt_cyto`` (the given cells, moved over time), ``gt_nuclei`` (nuclei carrying their
    cell's ID) and the ``gt_truth`` table. The source plate is only read.

    Parameters
    ----------
    path : str or os.PathLike
        New plate: a local ``.zarr`` folder or a URL.
    shapes_from : str or os.PathLike
        Annotated HCS plate, e.g. one written by ``structfree-dask import``.
    labels : str
        Its cell label image (fields without it are skipped).
    nuclei : str, optional
        Its nucleus label image (then every field used must have it).
    cell_line : CellLinePreset or str
        The cell line whose reporters are rendered.
    timepoints : int
        Timepoints per field (the shapes drift and deform).
    seed : int
        Plate seed (non-negative).
    ngff_version : str
    mode : {"confocal", "widefield"}

    Returns
    -------
    pathlib.Path or str
        The new plate.

    Raises
    ------
    ValueError
        The source is not a plate, no field has ``labels``, a field lacks ``nuclei`` or is
        under 64 px; bad counts, seeds, cell lines or modes. Nothing is written then.

    Examples
    --------
    >>> import tempfile
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> src = simulate_plate(tmp / "src.zarr", cols=2, size=64, seed=3)
    >>> out = simulate_plate_from_shapes(tmp / "out.zarr", src, cell_line="CL5")
    >>> from structfree_dask.io import open_labels, open_plate
    >>> info = open_plate(out).field("A/2/0")
    >>> info.channel_names[:2], info.labels
    (('mito', 'ER'), ('gt_nuclei', 'gt_cyto'))
    >>> same = open_labels(open_plate(src).field("A/2/0"), "gt_cyto").open_array(0, mode="r")
    >>> bool(np.array_equal(open_labels(info, "gt_cyto").open_array(0, mode="r")[:], same[:]))
    True
    """
    from ..io import as_location, create_plate, open_plate
    from .shapes import simulate_on_shapes

    preset = resolve_preset(cell_line)
    n_t = check_int("timepoints", timepoints, 1)
    resolve_mode(mode)
    root = np.random.SeedSequence(check_int("seed", seed, 0))
    source = open_plate(shapes_from)
    _check_outside(path, source.store)
    if nuclei is not None and nuclei == labels:
        raise ValueError(f"nuclei: the nucleus label image is the cells' own ({labels!r}); "
                         "give the source plate's nucleus label image, or none")
    fields = _shape_sources(source, labels, nuclei)
    out = as_location(path)
    with create_plate(out, rows=list(source.rows), columns=list(source.columns),
                      ngff_version=ngff_version,
                      name=f"{preset.name} on the shapes of {source.name or 'a plate'}") as plate:
        for k, (info, where) in enumerate(fields):
            row, col, fi = where
            field_seed = np.random.SeedSequence(entropy=root.entropy, spawn_key=(
                source.rows.index(row), source.columns.index(col), fi))
            sim = simulate_on_shapes(
                _first_plane(info, labels), preset,
                nuclei=None if nuclei is None else _first_plane(info, nuclei),
                timepoints=n_t, seed=field_seed, mode=mode)
            _write_simulated(plate, where, sim, (k + 1, len(fields)))
    return out
