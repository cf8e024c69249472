"""One simulated field: :func:`simulate_field` and its result :class:`SimulatedField`.

A field's population is advanced timepoint by timepoint, rasterised and rendered; the
per-cell ground truth (lineage and true translocation ratios) is collected alongside.
:data:`TRUTH_KEYS` are the key columns of the truth table, :data:`TRUTH_DTYPES` their
types; :data:`STAGE_COLUMNS` (types :data:`STAGE_DTYPES`) are the columns of the stage's
shift that a field simulated with stage jitter adds (:func:`stage_shifts`), and
:data:`DEFOCUS_COLUMNS` (types :data:`DEFOCUS_DTYPES`) the column of the out-of-focus
timepoints that a field simulated with ``defocus_p`` adds (:func:`defocused_timepoints`).
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
    resolve_defocus_p,
    resolve_mode,
    resolve_motion_scale,
    resolve_preset,
    resolve_seed,
    resolve_size,
    resolve_stage_jitter,
)
from .population import Cells, Population
from .presets import CellLinePreset, ChannelSpec, Localization
from .render import ResponseProgress, optics, progress, render_timepoint, translocation_ratio
from .screen import CellNoise, WellResponse, translocation_channel
from .textures import Textures, freq2

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "DEFOCUS_COLUMNS", "DEFOCUS_DTYPES", "DEFOCUS_SIGMA_UM", "STAGE_COLUMNS", "STAGE_DTYPES",
    "TRUTH_DTYPES", "TRUTH_KEYS", "SimulatedField", "defocused_timepoints", "rendered_field",
    "simulate_field", "stage_shifts", "truth_columns", "truth_frame", "truth_rows",
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
        and ``stage_dx`` (int32, the row's ``stage_shift``) follow ``parent_label``; with
        ``defocus_p`` > 0, ``defocused`` (bool, the row's timepoint is out of focus)
        follows them.
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
    defocus_p : float
        Probability that a timepoint after the first is out of focus (0: never).
    defocused : numpy.ndarray
        Shape ``(t,)``, bool: which timepoints are out of focus (the image blurred by
        :data:`DEFOCUS_SIGMA_UM`; the labels still the cells). ``None`` when constructing
        means none.
    motion_scale : float
        Factor on the cells' own motion the field was simulated with (1: the cell line's).

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
    defocus_p: float = 0.0
    defocused: npt.NDArray[np.bool_] = field(default=None)  # type: ignore[assignment]
    motion_scale: float = 1.0

    def __post_init__(self) -> None:
        """Fill in a zero ``stage_shift`` and no ``defocused`` timepoint when none is given."""
        if self.stage_shift is None:
            zeros = np.zeros((self.image.shape[0], 2), dtype=np.int64)
            object.__setattr__(self, "stage_shift", zeros)
        if self.defocused is None:
            object.__setattr__(self, "defocused", np.zeros(self.image.shape[0], dtype=bool))

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
#: Column of the out-of-focus timepoints (see :attr:`SimulatedField.defocused`) in the truth
#: table of a field simulated with ``defocus_p`` > 0.
DEFOCUS_DTYPES = {"defocused": np.bool_}
DEFOCUS_COLUMNS = tuple(DEFOCUS_DTYPES)
#: Standard deviation (micrometres) of the Gaussian blur of an out-of-focus timepoint: about
#: a nucleus' radius or more, so that nuclei and cell borders blur away.
DEFOCUS_SIGMA_UM: float = 8.0


def truth_columns(
    preset: CellLinePreset, *, stage: bool = False, defocus: bool = False
) -> list[str]:
    """Columns of a field's truth table, in order.

    ``stage``: with :data:`STAGE_COLUMNS`; ``defocus``: with :data:`DEFOCUS_COLUMNS`.
    """
    return [*TRUTH_KEYS, *(STAGE_COLUMNS if stage else ()), *(
        DEFOCUS_COLUMNS if defocus else ()), *(
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


def defocused_timepoints(
    seed: np.random.SeedSequence, timepoints: int, p: float
) -> npt.NDArray[np.bool_]:
    """Draw which timepoints are out of focus.

    Timepoint 0 is always in focus; every later one is out of focus with probability ``p``,
    drawn from its own child stream ``(6, t)`` of ``seed`` (so the other draws of a field,
    and those of earlier timepoints, do not depend on it or on the number of timepoints).

    Returns
    -------
    numpy.ndarray
        Shape ``(timepoints,)``, bool; all False when ``p`` is 0, all but the first True
        when ``p`` is 1.

    Examples
    --------
    >>> d = defocused_timepoints(np.random.SeedSequence(0), 6, 0.5)
    >>> d.shape, bool(d[0])
    ((6,), False)
    >>> defocused_timepoints(np.random.SeedSequence(0), 3, 1.0).tolist()
    [False, True, True]
    >>> defocused_timepoints(np.random.SeedSequence(0), 3, 0.0).tolist()
    [False, False, False]
    """
    out = np.zeros(timepoints, dtype=bool)
    if p > 0.0:
        for t in range(1, timepoints):
            out[t] = child_rng(seed, 6, t).random() < p
    return out


def truth_rows(
    cells: Cells, preset: CellLinePreset, parents: dict[int, int], cyto: npt.NDArray[np.uint32],
    t: int, t_h: float, stage_shift: tuple[int, int] | None = None,
    defocused: bool | None = None, treated: ResponseProgress | None = None,
) -> dict[str, np.ndarray]:
    """Truth of the cells in one timepoint's labels, ordered by label (columns -> values).

    ``parents`` maps a daughter's ID to its mother's (lineage so far); a ``stage_shift``
    ``(dy, dx)`` adds the columns :data:`STAGE_COLUMNS`, ``defocused`` (whether the
    timepoint is out of focus) the column :data:`DEFOCUS_COLUMNS`.
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
    if defocused is not None:
        (name,) = DEFOCUS_COLUMNS
        out[name] = np.full(len(labels), defocused, dtype=DEFOCUS_DTYPES[name])
    for j, spec in enumerate(preset.channels):
        if spec.localization is Localization.TRANSLOCATION:
            ratio = translocation_ratio(spec, progress(cells, j, t_h, spec, treated)[rows])
            out[true_ratio_column(spec.name)] = ratio.astype(np.float64)
    return out


def truth_frame(parts: list[dict[str, np.ndarray]], columns: Sequence[str]) -> pd.DataFrame:
    """Concatenate per-timepoint truth rows into one DataFrame (typed even when empty)."""
    import pandas as pd

    data = {
        c: np.concatenate([p[c] for p in parts]) if parts
        else np.empty(0, dtype={**TRUTH_DTYPES, **STAGE_DTYPES, **DEFOCUS_DTYPES}.get(
            c, np.float64))
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
    defocus_p: float = 0.0,
    motion_scale: float = 1.0,
    response: WellResponse | None = None,
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
    defocus_p : float
        Probability in ``[0, 1]`` that a timepoint after the first is out of focus, as when
        the autofocus misses: drawn per timepoint from its own child stream
        (:func:`defocused_timepoints`), so the same seed gives the same timepoints and the
        rest of the field does not change. An out-of-focus timepoint is rendered with the
        signal blurred by a Gaussian of :data:`DEFOCUS_SIGMA_UM` micrometres (about a
        nucleus' radius; mirrored at the field's edges) before the PSF and the camera's
        noise, so that segmentation and registration are meant to fail there. The cells
        are still there: the labels and the truth rows are those of the field in focus, and
        every other timepoint is exactly the one of the field simulated without defocus.
        Which timepoints are out of focus is in ``defocused`` and in the column
        ``defocused`` of ``truth``. 0 (the default): never, and the output is that of a
        call without this argument, bit for bit.
    motion_scale : float
        Factor in ``[0, 100]`` on the cells' own motion (the persistent random walk at the
        cell line's ``motility_um_per_h``; the push of touching cells apart and the offset of
        daughters at division are not scaled). 1 (the default): the cell line's motion, bit
        for bit; 0: cells do not walk. At about 10 (``"CL3"``, the smallest cells) most cells
        move further than their radius between timepoints: small fast cells for tracking.
    response : WellResponse, optional
        The well's treatment in a simulated screen (:mod:`structfree_dask.simulate.screen`):
        the translocation reporter's ratio of every cell follows it (the model ratio times
        a per-cell factor drawn from the field's own child stream 7) instead of the cell
        line's own response. None (the default): the output is that of a call without
        this argument, bit for bit.

    Returns
    -------
    SimulatedField
        ``image`` ``(t, c, y, x)`` uint16, ``nuclei`` and ``cyto`` ``(t, y, x)`` uint32, the
        per-cell ground truth ``truth`` (lineage as ``parent_label``, true translocation
        ratios) and ``lineage``, the stage's shifts ``stage_shift``, the out-of-focus
        timepoints ``defocused``, plus metadata.

    Raises
    ------
    ValueError
        Unknown cell line or mode, ``size < 64``, ``timepoints < 1``, a negative seed,
        ``stage_jitter_px`` negative or more than half the field's smaller side,
        ``defocus_p`` outside ``[0, 1]`` or ``motion_scale`` outside ``[0, 100]``.
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
    >>> d = simulate_field("CL1", size=64, timepoints=3, seed=1, defocus_p=1.0)
    >>> d.defocused.tolist(), list(d.truth.columns)[:4]
    ([False, True, True], ['label', 't', 'parent_label', 'defocused'])
    >>> e = simulate_field("CL1", size=64, timepoints=3, seed=1)  # the same field in focus
    >>> bool(np.array_equal(d.cyto, e.cyto)), bool(np.array_equal(d.image[0], e.image[0]))
    (True, True)
    """
    cell_line = resolve_preset(preset)
    shape = resolve_size(size)
    n_t = check_int("timepoints", timepoints, 1)
    ss = resolve_seed(seed)
    imaging = resolve_mode(mode)
    jitter = resolve_stage_jitter(stage_jitter_px, shape)
    p_defocus = resolve_defocus_p(defocus_p)
    motion = resolve_motion_scale(motion_scale)
    px = imaging.pixel_size_um
    # the world under the camera: the field plus the largest shift on every side
    world = (shape[0] + 2 * jitter, shape[1] + 2 * jitter)
    shifts = stage_shifts(ss, n_t, jitter)
    defocused = defocused_timepoints(ss, n_t, p_defocus)
    defocus_px = DEFOCUS_SIGMA_UM / px
    treated = None
    if response is not None:
        translocation_channel(cell_line)  # refuses a cell line without one
        treated = _treated(response, CellNoise(child_rng(ss, 7)))

    pop = Population(cell_line, world, px, child_rng(ss, 0), motion_scale=motion)
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
            pop.cells, cell_line, geo, t * TIME_INTERVAL_H, tex, imaging, otf, vignette,
            noise_rngs, defocus_px=defocus_px if defocused[t] else 0.0, treated=treated,
        )
        nuclei[t] = geo.nuclei
        cyto[t] = geo.cyto
        truth_parts.append(truth_rows(
            pop.cells, cell_line, pop.parents, geo.cyto, t, t * TIME_INTERVAL_H,
            stage_shift=(int(shifts[t, 0]), int(shifts[t, 1])) if jitter else None,
            defocused=bool(defocused[t]) if p_defocus > 0 else None, treated=treated,
        ))
    truth = truth_frame(truth_parts, truth_columns(
        cell_line, stage=jitter > 0, defocus=p_defocus > 0))
    daughters = np.unique(truth["label"][truth["parent_label"] > 0]).tolist()
    return rendered_field(image, nuclei, cyto, cell_line, mode, truth,
                          {d: pop.parents[d] for d in daughters},
                          stage_jitter_px=jitter, stage_shift=shifts,
                          defocus_p=p_defocus, defocused=defocused, motion_scale=motion)


def _treated(response: WellResponse, noise: CellNoise) -> ResponseProgress:
    """Return the response progress of cells under ``response``, each with its own draw."""
    def treated(spec: ChannelSpec, ids: npt.NDArray[np.int64], t_h: float
                ) -> npt.NDArray[np.float32]:
        return response.progress(spec, noise.z(ids), t_h)
    return treated


def rendered_field(image: np.ndarray, nuclei: np.ndarray, cyto: np.ndarray,
                   cell_line: CellLinePreset, mode: str, truth: pd.DataFrame,
                   lineage: dict[int, int], *, stage_jitter_px: int = 0,
                   stage_shift: np.ndarray | None = None, defocus_p: float = 0.0,
                   defocused: np.ndarray | None = None,
                   motion_scale: float = 1.0) -> SimulatedField:
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
        defocus_p=defocus_p,
        defocused=defocused,  # type: ignore[arg-type]
        motion_scale=motion_scale,
    )
