"""The simulated cell population: seeding, shapes, expression and dynamics.

:class:`Population` seeds cells in colonies plus a scattered population, relaxes them so
that neighbours touch and advances them in time (growth, motion, division, death). Cells
are held as :data:`Cells`, a dict of per-cell arrays; :data:`NORMAL`, :data:`MITOTIC` and
:data:`DYING` are the cell states, :data:`HARMONICS` the angular shape harmonics.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from .presets import CellLinePreset

__all__ = [
    "DYING", "HARMONICS", "MITOTIC", "NORMAL", "Cells", "Population", "draw_expression",
    "draw_shape",
]


HARMONICS = np.array([2, 3, 4, 5])
_HARMONIC_WEIGHTS = np.array([1.0, 0.55, 0.35, 0.25])
NORMAL, MITOTIC, DYING = 0, 1, 2
Cells = dict[str, np.ndarray]


def draw_shape(rng: np.random.Generator, n: int, preset: CellLinePreset) -> Cells:
    """Shape and nucleus parameters of ``n`` new cells (sizes excluded)."""
    k = len(HARMONICS)
    amp = preset.irregularity * _HARMONIC_WEIGHTS * rng.uniform(0.3, 1.0, size=(n, k))
    # keep the shape star-convex and not too spiky
    total = amp.sum(axis=1, keepdims=True)
    amp *= np.minimum(1.0, 0.45 / np.maximum(total, 1e-9))
    a = preset.nucleus_ratio * rng.lognormal(0.0, 0.08, size=n)
    a = np.clip(a, 0.15, 0.6)
    elong = rng.uniform(1.0, 1.5, size=n)
    off = rng.uniform(0.0, 0.12, size=n)
    ang = rng.uniform(0, 2 * np.pi, size=n)
    return {
        "harm_a": amp,
        "harm_phi": rng.uniform(0, 2 * np.pi, size=(n, k)),
        "nuc_a": a * np.sqrt(elong),
        "nuc_b": a / np.sqrt(elong),
        "nuc_theta": rng.uniform(0, np.pi, size=n),
        "nuc_dy": off * np.sin(ang),
        "nuc_dx": off * np.cos(ang),
        "tile_oy": rng.integers(0, 1 << 20, size=n),
        "tile_ox": rng.integers(0, 1 << 20, size=n),
    }


def draw_expression(
    rng: np.random.Generator, n: int, preset: CellLinePreset
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell expression, response onset (h), response time scale (h) and responder flag."""
    c = len(preset.channels)
    expr = np.empty((n, c))
    onset = np.empty((n, c))
    tau = rng.uniform(3.0, 9.0, size=(n, c))
    responder = np.empty((n, c))
    for j, ch in enumerate(preset.channels):
        e = rng.lognormal(0.0, ch.heterogeneity, size=n)
        dark = rng.random(n) < ch.dark_fraction
        e[dark] = rng.uniform(0.0, 0.05, size=int(dark.sum()))
        expr[:, j] = e
        onset[:, j] = rng.normal(ch.onset_h, ch.onset_spread_h, size=n)
        responder[:, j] = rng.random(n) < ch.responder_fraction
    return expr, onset, tau, responder


def _take(cells: Cells, idx: np.ndarray) -> Cells:
    return {k: v[idx] for k, v in cells.items()}


def _concat(a: Cells, b: Cells) -> Cells:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _relax(
    y: np.ndarray, x: np.ndarray, r: np.ndarray, *, iters: int, overlap: float,
    bounds: tuple[float, float, float, float],
) -> None:
    """Push apart cells whose centres are closer than ``overlap * (r_i + r_j)`` (in place)."""
    n = len(y)
    if n < 2:
        return
    reach = 2.0 * overlap * float(r.max())
    for _ in range(iters):
        tree = cKDTree(np.column_stack([y, x]))
        pairs = tree.query_pairs(reach, output_type="ndarray")
        if len(pairs) == 0:
            break
        i, j = pairs[:, 0], pairs[:, 1]
        dy = y[j] - y[i]
        dx = x[j] - x[i]
        dist = np.hypot(dy, dx)
        push = np.clip(overlap * (r[i] + r[j]) - dist, 0.0, None) * 0.5
        moving = push > 0
        if not moving.any():
            break
        i, j, dy, dx, dist, push = i[moving], j[moving], dy[moving], dx[moving], dist[moving], push[
            moving
        ]
        safe = np.maximum(dist, 1e-6)
        uy = np.where(dist > 1e-6, dy / safe, 1.0)
        ux = np.where(dist > 1e-6, dx / safe, 0.0)
        fy = np.bincount(j, push * uy, n) - np.bincount(i, push * uy, n)
        fx = np.bincount(j, push * ux, n) - np.bincount(i, push * ux, n)
        y += 0.8 * fy
        x += 0.8 * fx
        np.clip(y, bounds[0], bounds[1], out=y)
        np.clip(x, bounds[2], bounds[3], out=x)


class Population:
    """Cell population state and its dynamics (positions and radii in pixels).

    ``motion_scale`` multiplies the cells' own motion, the persistent random walk at the
    cell line's ``motility_um_per_h`` (1: as the cell line; 0: cells do not walk). The
    offsets of daughters at division and the pushes between touching cells are not scaled.
    """

    def __init__(
        self, preset: CellLinePreset, shape: tuple[int, int], px_um: float,
        rng: np.random.Generator, *, motion_scale: float = 1.0,
    ) -> None:
        self.preset = preset
        self.px = px_um
        self.motion_scale = float(motion_scale)
        h, w = shape
        self.r_med = preset.cell_diameter_um / 2.0 / px_um
        m = 1.2 * self.r_med
        self.bounds = (-m, h - 1 + m, -m, w - 1 + m)
        self.area = (h + 2 * m) * (w + 2 * m)
        mean_r2 = self.r_med**2 * math.exp(2 * preset.diameter_cv**2)
        n = max(1, round(preset.confluence * self.area / (math.pi * mean_r2)))

        n_clustered = round(n * preset.clustering)
        per_colony = 12
        n_col = max(1, round(n_clustered / per_colony))
        centres = np.column_stack([
            rng.uniform(self.bounds[0], self.bounds[1], n_col),
            rng.uniform(self.bounds[2], self.bounds[3], n_col),
        ])
        which = rng.integers(0, n_col, n_clustered)
        spread = self.r_med * math.sqrt(per_colony) * 0.9
        clustered = centres[which] + rng.normal(0.0, spread, size=(n_clustered, 2))
        scattered = np.column_stack([
            rng.uniform(self.bounds[0], self.bounds[1], n - n_clustered),
            rng.uniform(self.bounds[2], self.bounds[3], n - n_clustered),
        ])
        pos = np.concatenate([clustered, scattered])
        y = np.clip(pos[:, 0], self.bounds[0], self.bounds[1])
        x = np.clip(pos[:, 1], self.bounds[2], self.bounds[3])
        r = self._draw_radius(rng, n)
        _relax(y, x, r, iters=30, overlap=0.82, bounds=self.bounds)

        expr, onset, tau, responder = draw_expression(rng, n, preset)
        cells: Cells = {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "y": y,
            "x": x,
            "vy": np.zeros(n),
            "vx": np.zeros(n),
            "r": r,
            "r_target": r.copy(),
            "expr": expr,
            "onset": onset,
            "tau": tau,
            "responder": responder,
            "state": np.zeros(n, dtype=np.int8),
            "state_age": np.zeros(n, dtype=np.int16),
            # cells start at a random point of their cycle
            "age_h": rng.uniform(0.0, preset.doubling_time_h, size=n),
        }
        cells.update(draw_shape(rng, n, preset))
        self.cells = cells
        self.next_id = n + 1
        #: Lineage of every division so far: daughter ID -> mother ID.
        self.parents: dict[int, int] = {}

    def _draw_radius(self, rng: np.random.Generator, n: int) -> np.ndarray:
        r = self.r_med * rng.lognormal(0.0, self.preset.diameter_cv, size=n)
        return np.clip(r, 0.5 * self.r_med, 2.0 * self.r_med)

    def step(self, rng: np.random.Generator, dt_h: float) -> None:
        """Advance the population by ``dt_h`` hours."""
        c = self.cells
        preset = self.preset
        # 1. mitotic cells divide into two daughters with new IDs
        mitotic = c["state"] == MITOTIC
        if mitotic.any():
            mothers = _take(c, np.flatnonzero(mitotic))
            c = _take(c, np.flatnonzero(~mitotic))
            c = _concat(c, self._daughters(rng, mothers))
        # 2. dying cells shrink for two timepoints, then disappear
        dying = c["state"] == DYING
        c["state_age"][dying] += 1
        gone = dying & (c["state_age"] >= 3)
        if gone.any():
            c = _take(c, np.flatnonzero(~gone))
        # 3. new fates: contact-inhibited division, random death
        n = len(c["id"])
        if n:
            coverage = float(np.sum(np.pi * c["r"] ** 2)) / self.area
            p_div = (1.0 - 2.0 ** (-dt_h / preset.doubling_time_h)) * 2.0
            p_div *= float(np.clip(1.0 - coverage / 0.95, 0.0, 1.0))
            p_death = 1.0 - math.exp(-dt_h * preset.death_rate_per_h)
            u = rng.random(n)
            normal = c["state"] == NORMAL
            die = normal & (u < p_death)
            divide = normal & ~die & (c["age_h"] >= 10.0) & (u < p_death + p_div)
            c["state"][die] = DYING
            c["state_age"][die] = 0
            c["state"][divide] = MITOTIC
            # 4. growth, slow persistent random motion, contact relaxation
            c["r"] += (c["r_target"] - c["r"]) * 0.4
            step_px = preset.motility_um_per_h * dt_h / self.px * self.motion_scale
            c["vy"] = 0.6 * c["vy"] + rng.normal(0.0, 0.6 * step_px, n)
            c["vx"] = 0.6 * c["vx"] + rng.normal(0.0, 0.6 * step_px, n)
            c["y"] = np.clip(c["y"] + c["vy"], self.bounds[0], self.bounds[1])
            c["x"] = np.clip(c["x"] + c["vx"], self.bounds[2], self.bounds[3])
            _relax(c["y"], c["x"], c["r"], iters=4, overlap=0.82, bounds=self.bounds)
            c["age_h"] += dt_h
        self.cells = c

    def _daughters(self, rng: np.random.Generator, m: Cells) -> Cells:
        nm = len(m["id"])
        n = 2 * nm
        rep = np.repeat(np.arange(nm), 2)
        d = _take(m, rep)
        sign = np.tile([1.0, -1.0], nm)
        axis = np.repeat(rng.uniform(0, 2 * np.pi, nm), 2)
        off = 0.45 * d["r"]
        d["y"] = np.clip(d["y"] + sign * off * np.sin(axis), self.bounds[0], self.bounds[1])
        d["x"] = np.clip(d["x"] + sign * off * np.cos(axis), self.bounds[2], self.bounds[3])
        d["vy"] = sign * 0.3 * off * np.sin(axis)
        d["vx"] = sign * 0.3 * off * np.cos(axis)
        target = d["r_target"] * rng.lognormal(0.0, 0.08, n)
        d["r_target"] = np.clip(target, 0.5 * self.r_med, 2.0 * self.r_med)
        d["r"] = 0.72 * d["r_target"]
        d["id"] = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        self.parents.update(zip(d["id"].tolist(), m["id"][rep].tolist(), strict=True))
        d["expr"] = d["expr"] * rng.lognormal(0.0, 0.12, size=d["expr"].shape)
        d["onset"] = d["onset"] + rng.normal(0.0, 2.0, size=d["onset"].shape)
        d["state"] = np.zeros(n, dtype=np.int8)
        d["state_age"] = np.zeros(n, dtype=np.int16)
        d["age_h"] = np.zeros(n)
        d.update(draw_shape(rng, n, self.preset))
        return d
