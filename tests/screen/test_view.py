"""The screen's plate view: its figures, its layout, its section of the report, in Chromium."""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from structfree_dask.screen.tables import condition_stats, dose_response, z_prime
from structfree_dask.screen.view import (
    condition_colours,
    dose_response_figure,
    ec50_figure,
    kinetics_figure,
    plate_layout_svg,
    readout_label,
    well_figure,
    zprime_figure,
)

READOUT = "translocation-reporter__nc_ratio"
TABLE = "gt_cyto_features"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plate_view.py"


def _wells(active: bool = True) -> pd.DataFrame:
    """A 3 x 4 plate over 3 timepoints: controls, compound X at 4 doses in duplicate."""
    rng = np.random.default_rng(0)
    layout = ([("A", "1", "DMSO", None, np.nan, "negative"),
               ("A", "2", "DMSO", None, np.nan, "negative"),
               ("A", "3", "stim", "stim", 1.0, "positive"),
               ("A", "4", "stim", "stim", 1.0, "positive")]
              + [(r, str(c), f"X {d:g} uM", "X", d, "sample")
                 for (r, c), d in zip([(r, c) for r in "BC" for c in range(1, 5)],
                                      np.repeat([0.01, 0.1, 1.0, 10.0], 2), strict=True)])
    rows = []
    for t in range(3):
        for r, c, cond, comp, dose, role in layout:
            base = {"negative": 1.0, "positive": 3.0}.get(role, 1.0)
            if role == "sample" and active:
                base = 1.0 + 2.0 / (1 + 10 ** ((np.log10(0.3) - np.log10(dose)) * 1.5))
            median = base * (1 + 0.1 * t) + rng.normal(0, 0.03)
            rows.append({"well": r + c, "row": r, "column": c, "t": t, "n_cells": 50,
                         "readout": READOUT, "n": 50, "median": median, "q25": median - 0.1,
                         "q75": median + 0.1, "mean": median, "sd": 0.2, "condition": cond,
                         "compound": comp, "dose": dose,
                         "dose_unit": "uM" if comp else None, "role": role})
    return pd.DataFrame(rows)


def _axes_are_labelled(fig) -> None:
    """Every drawn axes has x and y labels and tick labels (the report's 'with axes')."""
    fig.canvas.draw()
    drawn = [ax for ax in fig.axes if ax.axison]
    assert drawn
    for ax in drawn:
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
        assert any(t.get_text() for t in ax.get_xticklabels()), ax.get_title()
        assert any(t.get_text() for t in ax.get_yticklabels()), ax.get_title()


@pytest.mark.parametrize("active", [True, False])
def test_figures_have_axes_units_and_labels(active, tmp_path):
    wells = _wells(active)
    conditions, zp, fits = condition_stats(wells), z_prime(wells), dose_response(wells)
    if active:
        good = fits[(fits["compound"] == "X") & fits["fit_error"].isna()]
        assert len(good) == 3 and np.allclose(good["ec50"], 0.3, rtol=0.5)
    figures = {"kinetics": kinetics_figure(conditions, READOUT, 3.0),
               "zprime": zprime_figure(zp, READOUT, 3.0),
               "dose": dose_response_figure(wells, fits, READOUT, step_h=3.0),
               "ec50": ec50_figure(fits, READOUT, 3.0),
               "well": well_figure(wells, conditions, READOUT, "B2", 3.0)}
    for name, fig in figures.items():
        _axes_are_labelled(fig)
        fig.savefig(tmp_path / f"{name}.png", dpi=60)
    assert figures["kinetics"].axes[0].get_xlabel() == "time (h)"
    assert figures["dose"].axes[0].get_xlabel() == "dose (uM)"
    assert figures["dose"].axes[0].get_xscale() == "log"
    assert figures["dose"]._suptitle.get_text() == "dose-response at t = 2 (6 h)"
    assert "0.5: excellent above" in [t.get_text() for t in
                                      figures["zprime"].axes[0].get_legend().get_texts()]
    assert figures["ec50"].axes[0].get_ylabel() == "EC50 (uM)"
    if active:  # the fitted curve and the EC50 are drawn
        labels = [line.get_label() for line in figures["dose"].axes[0].lines]
        assert "4PL fit" in labels and "EC50" in labels
        assert figures["ec50"].axes[0].get_yscale() == "log"


def test_figures_of_empty_or_failed_tables_still_have_axes():
    wells = _wells().iloc[:0]
    fits = dose_response(_wells()[lambda d: d["dose"] != 10.0])  # 3 doses: no fit
    assert fits["fit_error"].str.startswith("needs at least 4").all()
    for fig in (ec50_figure(fits, READOUT), zprime_figure(z_prime(wells), READOUT),
                dose_response_figure(wells, fits, READOUT, t=0)):
        fig.canvas.draw()
        assert all(ax.get_xlabel() for ax in fig.axes if ax.axison)


def test_layout_svg_links_wells_marks_flags_and_names_conditions():
    wells = _wells()
    pm = wells.drop_duplicates("well")
    pages = {("A", "1"): "well-A-1.html", ("B", "2"): "well-B-2.html"}
    svg = plate_layout_svg(pm, ["A", "B", "C", "D"], ["1", "2", "3", "4"], pages,
                           {("B", "2"): ["count_jump"]})
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "http" not in svg
    assert re.findall(r'<a href="([^"]+)"', svg) == ["well-A-1.html", "well-B-2.html"]
    assert "B2: X 0.01 uM; X 0.01 uM; role sample; quality flags: count_jump" in svg
    assert svg.count("&#9888;") == 1
    assert svg.count("not in the plate map") == 4  # row D
    colours = condition_colours(pm)
    assert list(colours) == ["DMSO", "stim", "X 0.01 uM", "X 0.1 uM", "X 1 uM", "X 10 uM"]
    assert len(set(colours.values())) == 6
    assert all(f">{name}</text>" in svg for name in colours)  # the legend
    assert readout_label(READOUT) == "translocation-reporter: nucleus/cytoplasm ratio"


@pytest.fixture(scope="module")
def viewed(measured_store, tmp_path_factory, cluster_client):
    """The measured test plate, annotated and screened, with its report (screen section)."""
    import shutil

    from structfree_dask.cells.report import write_report
    from structfree_dask.screen import annotate_plate, screen_plate
    from structfree_dask.screen.view import screen_addon

    from .conftest import PLATE_MAP

    root = tmp_path_factory.mktemp("view")
    store = root / "p.zarr"
    shutil.copytree(measured_store, store, symlinks=True)
    (root / "map.csv").write_text(PLATE_MAP)
    annotate_plate(str(store), root / "map.csv")
    screen_plate(str(store), TABLE, client=cluster_client)
    page = write_report(str(store), table=TABLE, output=root / "report", thumbnails=1,
                        addons=[screen_addon(str(store), TABLE)])
    return store, page


def test_the_report_has_the_screen_section(viewed):
    _, page = viewed
    text = page.read_text()
    assert "<script" not in text and not re.search(r"https?:", text)  # opens offline
    assert "<h2>Screen: plate layout</h2>" in text
    assert f"<h2>Screen: {readout_label(READOUT)}</h2>" in text
    assert "<h3>Dose-response at t = 1 (3 h)</h3>" in text  # the last timepoint
    layout = re.search(r"<svg.*?</svg>", text, re.S).group(0)
    assert re.findall(r'<a href="([^"]+)" class="well"', layout) == [
        f"well-{r}-{c}.html" for r in "AB" for c in "123"]
    images = re.findall(r'src="([^"]+)"', text)
    for name in ("screen-kinetics.png", "screen-zprime.png", "screen-dose-response.png",
                 "screen-ec50.png"):
        assert name in images and (page.parent / name).stat().st_size > 1000
    well = (page.parent / "well-B-2.html").read_text()
    assert "<h2>Treatment</h2>" in well and "<td>X 0.1 uM</td>" in well
    assert "<h2>Quality checks</h2>" in well and 'src="screen-well-B-2.png"' in well
    assert not re.search(r"https?:", well)


def test_report_command_adds_the_screen_section(viewed, tmp_path, capsys):
    from structfree_dask.cli import main

    store, _ = viewed
    out = tmp_path / "r"
    assert main(["report", str(store), "--table", TABLE, "--output", str(out),
                 "--screen-timepoint", "0"]) == 0
    text = (out / "report.html").read_text()
    assert "<h3>Dose-response at t = 0 (0 h)</h3>" in text and "screen-ec50.png" in text
    assert main(["report", str(store), "--table", TABLE, "--output", str(tmp_path / "x"),
                 "--screen-timepoint", "7"]) != 0


def _example():
    spec = importlib.util.spec_from_file_location("plate_view_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plate_view_renders_offline_in_chromium(viewed, tmp_path):
    """Headless Chromium, every network request sent to a closed port: figures and links."""
    example = _example()
    if example.chromium() is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium; .ci/run does "
                    "where it runs as root)")
    _, page = viewed
    started = time.perf_counter()
    dom = example.render(page, screenshot=tmp_path / "shot.png", width=1200, height=1600)
    seconds = time.perf_counter() - started
    example.check_dom(dom, n_wells=6)
    assert dom.count("<svg") == 1 and "<h2>Screen: plate layout</h2>" in dom
    from PIL import Image

    with Image.open(tmp_path / "shot.png") as im:
        assert im.size == (1200, 1600)
        assert len(set(im.convert("L").resize((60, 80)).getdata())) > 10  # not blank
    assert seconds < 60
