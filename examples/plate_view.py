"""Write the plate view of a small simulated screen, check it in headless Chromium, screenshot it.

Simulates a 3 x 4 plate (4 timepoints), measures it on its ground-truth labels, stores a
plate map (controls, one compound at 4 doses in duplicate), computes the screen tables
and writes the report with its screen section; then opens it in headless Chromium
(``chromium`` from the system's packages) with every network request sent to a closed
port, checks the rendered page (figures, well links) and saves a screenshot::

    python examples/plate_view.py                       # into a temporary folder
    python examples/plate_view.py --keep out/ --screenshot docs/img/plate-view-screen.png

The simulator gives the compound a dose-response from the same plate map (a Hill curve
with a known EC50 and onset, ``structfree_dask.simulate.screen``). The report names the
plate as it was given: here its path relative to the folder.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLATE_MAP = """well,condition,compound,dose,dose_unit,role
A1,DMSO,,,,negative
A2,DMSO,,,,negative
A3,stim,stim,1,uM,positive
A4,stim,stim,1,uM,positive
B1,X 0.01 uM,X,0.01,uM,sample
B2,X 0.01 uM,X,0.01,uM,sample
B3,X 0.1 uM,X,0.1,uM,sample
B4,X 0.1 uM,X,0.1,uM,sample
C1,X 1 uM,X,1,uM,sample
C2,X 1 uM,X,1,uM,sample
C3,X 10 uM,X,10,uM,sample
C4,X 10 uM,X,10,uM,sample
"""


def chromium() -> str | None:
    """Return the path of a Chromium binary (``chromium``, ``chromium-browser``), if any."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                                "google-chrome")) if p), None)


def render(page: Path, *, screenshot: Path | None = None, width: int = 1400,
           height: int = 2000, timeout: float = 120.0) -> str:
    """Open a page in headless Chromium, offline; return its DOM after rendering.

    Every request to the network goes to a closed port (``--proxy-server=127.0.0.1:9``):
    a page that needs the network renders without it. With ``screenshot`` the top
    ``width`` x ``height`` pixels are saved as PNG.
    """
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        base = [binary, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                f"--user-data-dir={profile}", "--hide-scrollbars",
                f"--window-size={width},{height}"]
        url = page.resolve().as_uri()
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                             timeout=timeout, check=True).stdout
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([*base, f"--screenshot={screenshot.resolve()}", url],
                           capture_output=True, timeout=timeout, check=True)
    return dom


def make_plate(folder: Path, client=None) -> Path:
    """Simulate, measure, annotate and screen the plate; write its report. Return the page."""
    from structfree_dask import simulate_plate
    from structfree_dask.cells.plate_measure import measure_plate
    from structfree_dask.cells.report import write_report
    from structfree_dask.screen import annotate_plate, screen_plate
    from structfree_dask.screen.view import screen_addon

    (folder / "map.csv").write_text(PLATE_MAP)
    store = str(simulate_plate(folder / "screen.zarr", cell_line="CL1", rows=3, cols=4,
                               timepoints=4, size=96, seed=5, plate_map=folder / "map.csv"))
    assert measure_plate(store, labels="gt_cyto", nuclei="gt_nuclei", client=client).ok
    annotate_plate(store, folder / "map.csv")
    screen_plate(store, "gt_cyto_features", client=client)
    return write_report(store, table="gt_cyto_features", output=folder / "report",
                        thumbnails=1, addons=[screen_addon(store, "gt_cyto_features")])


def check_dom(dom: str, n_wells: int) -> None:
    """Check the rendered page: its figures, one link per well in the layout, no URL."""
    assert dom.count('class="well"') == n_wells, "a link per well in the layout"
    images = re.findall(r'<img src="([^"]+)"', dom)
    assert {"screen-kinetics.png", "screen-zprime.png", "screen-dose-response.png",
            "screen-ec50.png"} <= set(images), images
    assert not re.search(r"(src|href)=\"https?:", dom), "nothing from the network"


def main(argv: list[str] | None = None) -> int:
    """Run it (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="folder kept (default: temp)")
    parser.add_argument("--screenshot", type=Path, default=None, help="PNG of the page")
    args = parser.parse_args(argv)
    from structfree_dask.runtime.cluster import local_client

    root = (args.keep or Path(tempfile.mkdtemp(prefix="plate-view-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    screenshot = args.screenshot.resolve() if args.screenshot else None
    os.chdir(root)  # before the workers start: the report names the plate relative to it
    folder = Path(".")
    client = local_client(n_workers=1, threads_per_worker=2)
    try:
        page = make_plate(folder, client)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    print("report:", page)
    started = time.perf_counter()
    dom = render(page, screenshot=screenshot)
    check_dom(dom, n_wells=12)
    print(f"rendered and checked in Chromium in {time.perf_counter() - started:.1f} s"
          + (f"; screenshot {args.screenshot}" if args.screenshot else ""))
    if args.keep is None:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
