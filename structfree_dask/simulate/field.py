"""One simulated field: :func:`simulate_field` and its result :class:`SimulatedField`.

A field's population is advanced timepoint by timepoint, rasterised and rendered; the
per-cell ground truth (lineage and true translocation ratios) is collected alongside.
:data:`TRUTH_KEYS` are the key columns of the truth table, :data:`TRUTH_DTYPES` their
types; :data:`STAGE_COLUMNS` (types :data:`STAGE_DTYPES`) are the columns of the stage's
shift that a field simulated with stage jitter adds (:func:`stage_shifts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..config import true_ratio_column
from .geometry import crop_geometry, make_tile, render_geometry
from .options import (
    TIME_INTERVAL_H,
    check_int,
    child_rng,
    resolve_mode,
    resolve_preset,
    resolve_seed,
    resolve_size,
    resolve_stage_jitter,
)
from .population import Cells, Population
from .presets import CellLinePreset, Localization
from .render import optics, progress, render_timepoint, translocation_ratio
from .textures import Textures, freq2

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "STAGE_COLUMNS", "STAGE_DTYPES", "TRUTH_DTYPES", "TRUTH_KEYS", "SimulatedField",
    "rendered_field", "simulate_field", "stage_shifts", "truth_columns", "truth_frame",
    "truth_rows",
]


@dataclass(frozen=True, eq=False)
class SimulatedField:
    """One simulated time-lapse field with ground truth.

    Parameters
    ----------
    image : numpy.ndarray
        Raw intensities, shape ``(t, c, y, x)``, ``uint16``.
    nuclei : numpy.ndarray
        Ground-truth nucleus labels, shape ``(t, y, x)``, ``uint32``, 0 = background.
    cyto : numpy.ndarray
        Ground-truth whole-cell labels (nucleus included), shape ``(t, y, x)``, ``uint32``.
        A nucleus and its cell share one ID and every nucleus lies inside its cell. Cells cut
        by the field border may have their nucleus outside the field. IDs are unique within a
        timepoint and kept across timepoints while a cell persists; daughters get new IDs.
    channel_names : tuple of str
        Channel names in channel order.
    pixel_size_um : float
        Pixel size in micrometres (same in y and x).
    time_interval_h : float
        Hours between consecutive timepoints.
    cell_line : str
        Name of the cell-line preset.
    mode : str
        Imaging mode (``"confocal"`` or ``"widefield"``).
    localizations : tuple of str
        Localisation of each channel (values of :class:`Localization`).
    truth : pandas.DataFrame
        Per-cell ground truth, one row per (``t``, ``label``) of every cell in ``cyto[t]``
        (cells rendered outside the field are not listed), ordered by ``t`` then ``label``.
        Columns: ``label`` (int64, the cell's ID in ``cyto``), ``t`` (int32),
        ``parent_label`` (int64, the mother's ID for a daughter, else 0; the same on every
        row of a cell; the mother need not appear in the labels) and, for each
        translocation channel, ``true_ratio_column(name)`` (float64, the nucleus /
        cytoplasm ratio the renderer used for that cell at ``t``; see
        :func:`structfree_dask.config.true_ratio_column`). With stage jitter, ``stage_dy``
        and ``stage_dx`` (int32, the row's ``stage_shift``) follow ``parent_label``.
    lineage : dict of int to int
        Daughter ID -> mother ID for every daughter that appears in ``cyto``.
    stage_jitter_px : int
        Largest stage shift the field was simulated with, in pixels (0: no stage jitter).
    stage_shift : numpy.ndarray
        Shape ``(t, 2)``, int64: the stage's shift ``(dy, dx)`` at every timepoint from its
        position at timepoint 0 (row 0 is ``(0, 0)``; all zeros without stage jitter).
        Pixel ``(y, x)`` at ``t`` shows the point of the sample that pixel
        ``(y + dy, x + dx)`` showed at timepoint 0: the field's content seems to move by
        ``(-dy, -dx)``. ``None`` when constructing means no shift.

    Examples
    --------
    >>> f = simulate_field("CL2", size=64, timepoints=1, seed=3)
    >>> f.channel_names
    ('nuc-cyto-reporter', 'translocation-reporter', 'membrane')
    >>> f.times_h.tolist()
    [0.0]
    >>> list(f.truth.columns)
    ['label', 't', 'parent_label', 'translocation-reporter__true_nc_ratio']
    >>> sorted(f.truth["label"]) == sorted(set(np.unique(f.cyto[0])) - {0})
    True
    """

    image: npt.NDArray[np.uint16]
    nuclei: npt.NDArray[np.uint32]
    cyto: npt.NDArray[np.uint32]
    channel_names: tuple[str, ...]
    pixel_size_um: float
    time_interval_h: float = TIME_INTERVAL_H
    cell_line: str = ""
    mode: str = "confocal"
    localizations: tuple[str, ...] = field(default=())
    truth: pd.DataFrame = field(default_factory=lambda: truth_frame([], TRUTH_KEYS))
    lineage: dict[int, int] = field(default_factory=dict)
    stage_jitter_px: int = 0
    stage_shift: npt.NDArray[np.int64] = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        """Fill in a zero ``stage_shift`` (one row per timepoint) when none is given."""
        if self.stage_shift is None:
            zeros = np.zeros((self.image.shape[0], 2), dtype=np.int64)
            object.__setattr__(self, "stage_shift", zeros)

    @property
    def times_h(self) -> npt.NDArray[np.float64]:
        """Acquisition time of each timepoint in hours."""
        return np.arange(self.image.shape[0], dtype=np.float64) * self.time_interval_h


#: Key columns of a field's truth table and their types (ratio columns are float64).
TRUTH_DTYPES = {"label": np.int64, "t": np.int32, "parent_label": np.int64}
TRUTH_KEYS = tuple(TRUTH_DTYPES)
#: Columns of the stage's shift from timepoint 0 (in pixels, see
#: :attr:`SimulatedField.stage_shift`) in the truth table of a field with stage jitter.
STAGE_DTYPES = {"stage_dy": np.int32, "stage_dx": np.int32}
STAGE_COLUMNS = tuple(STAGE_DTYPES)


def truth_columns(preset: CellLinePreset, *, stage: bool = False) -> list[str]:
    """Columns of a field's truth table, in order (``stage``: with :data:`STAGE_COLUMNS`)."""
    return [*TRUTH_KEYS, *(STAGE_COLUMNS if stage else ()), *(
        true_ratio_column(ch.name) for ch in preset.channels
        if ch.localization is Localization.TRANSLOCATION
    )]


def stage_shifts(
    seed: np.random.SeedSequence, timepoints: int, jitter: int
) -> npt.NDArray[np.int64]:
    """Draw the stage's shift ``(dy, dx)`` from timepoint 0 at every timepoint.

    Timepoint 0 is the reference ``(0, 0)``; every later one is drawn uniformly among the
    integers of ``[-jitter, jitter]`` in y and in x, from its own child stream ``(5, t)``
    of ``seed`` (so the other draws of a field, and the shifts of earlier timepoints, do
    not depend on it or on the number of timepoints).

    Returns
    -------
    numpy.ndarray
        Shape ``(timepoints, 2)``, int64; all zeros when ``jitter`` is 0.

    Examples
    --------
    >>> s = stage_shifts(np.random.SeedSequence(0), 4, 15)
    >>> s.shape, s[0].tolist(), bool(np.abs(s).max() <= 15)
    ((4, 2), [0, 0], True)
    >>> stage_shifts(np.random.SeedSequence(0), 2, 0).tolist()
    [[0, 0], [0, 0]]
    """
    out = np.zeros((timepoints, 2), dtype=np.int64)
    if jitter:
        for t in range(1, timepoints):
            out[t] = child_rng(seed, 5, t).integers(-jitter, jitter, size=2, endpoint=True)
    return out


def truth_rows(
    cells: Cells, preset: CellLinePreset, parents: dict[int, int], cyto: npt.NDArray[np.uint32],
    t: int, t_h: float, stage_shift: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """Truth of the cells in one timepoint's labels, ordered by label (columns -> values).

    ``parents`` maps a daughter's ID to its mother's (lineage so far); a ``stage_shift``
    ``(dy, dx)`` adds the columns :data:`STAGE_COLUMNS`.
    """
    labels = np.unique(cyto)
    labels = labels[labels > 0].astype(np.int64)
    index = np.full(int(cells["id"].max(initial=0)) + 1, -1, dtype=np.int64)
    index[cells["id"]] = np.arange(len(cells["id"]))
    rows = index[labels]  # every label is a live cell's ID
    out: dict[str, np.ndarray] = {
        "label": labels,
        "t": np.full(len(labels), t, dtype=np.int32),
        "parent_label": np.array(
            [parents.get(int(i), 0) for i in labels], dtype=np.int64
        ),
    }
    if stage_shift is not None:
        for name, value in zip(STAGE_COLUMNS, stage_shift, strict=True):
            out[name] = np.full(len(labels), value, dtype=STAGE_DTYPES[name])
    for j, spec in enumerate(preset.channels):
        if spec.localization is Localization.TRANSLOCATION:
            ratio = translocation_ratio(spec, progress(cells, j, t_h)[rows])
            out[true_ratio_column(spec.name)] = ratio.astype(np.float64)
    return out


def truth_frame(parts: list[dict[str, np.ndarray]], columns: Sequence[str]) -> pd.DataFrame:
    """Concatenate per-timepoint truth rows into one DataFrame (typed even when empty)."""
    import pandas as pd

    data = {
        c: np.concatenate([p[c] for p in parts]) if parts
        else np.empty(0, dtype={**TRUTH_DTYPES, **STAGE_DTYPES}.get(c, np.float64))
        for c in columns
    }
    return pd.DataFrame(data)


def simulate_field(
    preset: CellLinePreset | str,
    *,
    size: int | tuple[int, int] = 512,
    timepoints: int = 1,
    seed: int | np.random.SeedSequence = 0,
    mode: str = "confocal",
    stage_jitter_px: int = 0,
) -> SimulatedField:
    """Simulate one time-lapse field of a reporter cell line with ground-truth labels.

    Parameters
    ----------
    preset : CellLinePreset or str
        The cell line, or the key of one in :data:`PRESETS` (``"CL1"`` .. ``"CL5"``).
    size : int or tuple of int
        Field size in pixels, ``n`` for ``n x n`` or ``(y, x)``; each at least 64.
    timepoints : int
        Number of timepoints (at least 1), one every :data:`TIME_INTERVAL_H` hours.
    seed : int or numpy.random.SeedSequence
        Random seed; the same seed gives bitwise identical output.
    mode : {"confocal", "widefield"}
        Imaging mode. ``"confocal"``: 1.24 um/px, cells about 15-35 px across, bright.
        ``"widefield"``: 0.32 um/px (cells about 4x larger in pixels), fewer photons per pixel,
        out-of-focus haze and stronger vignetting, hence lower SNR.
    stage_jitter_px : int
        Stage jitter, as when the stage revisits every well of a plate between timepoints:
        at every timepoint after the first the whole field of view is shifted by an integer
        ``(dy, dx)`` drawn uniformly in ``[-stage_jitter_px, stage_jitter_px]`` (each axis)
        from its position at timepoint 0 (:func:`stage_shifts`). 0 (the default): no jitter,
        and the output is that of a call without this argument, bit for bit. At most half
        the field's smaller side. The cells live in a world larger than the field by
        ``stage_jitter_px`` on every side, and each timepoint is the field's window on it:
        cells keep their IDs and lineage, and enter and leave at the edges as the world
        moves under the camera; the labels are cut from the world's labels (a cell the
        window cuts into pieces keeps one, as at the field's edge), and the image is
        rendered from them with the camera's vignetting and noise, so the labels stay the
        truth of the image. The shifts are in ``stage_shift`` and in the columns
        ``stage_dy`` and ``stage_dx`` of ``truth``.

    Returns
    -------
    SimulatedField
        ``image`` ``(t, c, y, x)`` uint16, ``nuclei`` and ``cyto`` ``(t, y, x)`` uint32, the
        per-cell ground truth ``truth`` (lineage as ``parent_label``, true translocation
        ratios) and ``lineage``, the stage's shifts ``stage_shift``, plus metadata.

    Raises
    ------
    ValueError
        Unknown cell line or mode, ``size < 64``, ``timepoints < 1``, a negative seed, or
        ``stage_jitter_px`` negative or more than half the field's smaller side.
    TypeError
        Arguments of the wrong type.

    Examples
    --------
    >>> f = simulate_field("CL1", size=64, timepoints=2, seed=1)
    >>> f.image.shape, f.image.dtype, f.cyto.shape, f.cyto.dtype
    ((2, 4, 64, 64), dtype('uint16'), (2, 64, 64), dtype('uint32'))
    >>> bool(np.all((f.nuclei == 0) | (f.nuclei == f.cyto)))
    True
    >>> g = simulate_field("CL1", size=64, timepoints=2, seed=1)
    >>> bool(np.array_equal(f.image, g.image))
    True
    >>> list(f.truth.columns)
    ['label', 't', 'parent_label', 'translocation-reporter__true_nc_ratio']
    >>> len(f.truth) == sum(len(np.unique(c)) - 1 for c in f.cyto)
    True
    >>> j = simulate_field("CL1", size=64, timepoints=3, seed=1, stage_jitter_px=15)
    >>> j.stage_shift.shape, j.stage_shift[0].tolist(), bool(np.abs(j.stage_shift).max() <= 15)
    ((3, 2), [0, 0], True)
    >>> list(j.truth.columns)[:5]
    ['label', 't', 'parent_label', 'stage_dy', 'stage_dx']
    """
    cell_line = resolve_preset(preset)
    shape = resolve_size(size)
    n_t = check_int("timepoints", timepoints, 1)
    ss = resolve_seed(seed)
    imaging = resolve_mode(mode)
    jitter = resolve_stage_jitter(stage_jitter_px, shape)
    px = imaging.pixel_size_um
    # the world under the camera: the field plus the largest shift on every side
    world = (shape[0] + 2 * jitter, shape[1] + 2 * jitter)
    shifts = stage_shifts(ss, n_t, jitter)

    pop = Population(cell_line, world, px, child_rng(ss, 0))
    tile = make_tile(child_rng(ss, 1), pop.r_med)
    f2 = freq2(*shape)
    otf, vignette = optics(shape, imaging)

    n_c = len(cell_line.channels)
    image = np.empty((n_t, n_c, *shape), dtype=np.uint16)
    nuclei = np.empty((n_t, *shape), dtype=np.uint32)
    cyto = np.empty((n_t, *shape), dtype=np.uint32)
    truth_parts: list[dict[str, np.ndarray]] = []
    for t in range(n_t):
        if t > 0:
            pop.step(child_rng(ss, 2, t), TIME_INTERVAL_H)
        geo = render_geometry(pop.cells, world, tile)
        if jitter:
            dy, dx = (int(v) for v in shifts[t])
            geo = crop_geometry(geo, (jitter + dy, jitter + dx), shape)
        tex = Textures(child_rng(ss, 3, t), f2, px, shape)
        noise_rngs = [child_rng(ss, 4, t, j) for j in range(n_c)]
        image[t] = render_timepoint(
            pop.cells, cell_line, geo, t * TIME_INTERVAL_H, tex, imaging, otf, vignette, noise_rngs
        )
        nuclei[t] = geo.nuclei
        cyto[t] = geo.cyto
        truth_parts.append(truth_rows(
            pop.cells, cell_line, pop.parents, geo.cyto, t, t * TIME_INTERVAL_H,
            stage_shift=(int(shifts[t, 0]), int(shifts[t, 1])) if jitter else None,
        ))
    truth = truth_frame(truth_parts, truth_columns(cell_line, stage=jitter > 0))
    daughters = np.unique(truth["label"][truth["parent_label"] > 0]).tolist()
    return rendered_field(image, nuclei, cyto, cell_line, mode, truth,
                          {d: pop.parents[d] for d in daughters},
                          stage_jitter_px=jitter, stage_shift=shifts)


def rendered_field(image: np.ndarray, nuclei: np.ndarray, cyto: np.ndarray,
                   cell_line: CellLinePreset, mode: str, truth: pd.DataFrame,
                   lineage: dict[int, int], *, stage_jitter_px: int = 0,
                   stage_shift: np.ndarray | None = None) -> SimulatedField:
    """Wrap a rendered field and its truth with the cell line's and the mode's metadata."""
    return SimulatedField(
        image=image,
        nuclei=nuclei,
        cyto=cyto,
        channel_names=cell_line.channel_names,
        pixel_size_um=resolve_mode(mode).pixel_size_um,
        time_interval_h=TIME_INTERVAL_H,
        cell_line=cell_line.name,
        mode=mode,
        localizations=tuple(loc.value for loc in cell_line.localizations),
        truth=truth,
        lineage=lineage,
        stage_jitter_px=stage_jitter_px,
        stage_shift=stage_shift,  # type: ignore[arg-type]
    )
