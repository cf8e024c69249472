"""One workflow: segment -> link -> measure -> track -> report in one command, one cluster."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from structfree_dask.cli import main
from structfree_dask.io import open_labels, open_plate, read_feature_table, read_plate_dataset
from structfree_dask.simulate import simulate_plate
from structfree_dask.workflow import CellsSettings, check_cells_steps

SEGMENT = ["--channels", "0,1,2,3", "--diameter", "20", "--tile-size", "64",
           "--with-nuclei", "translocation-reporter", "--no-progress"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("workflow") / "p.zarr"
    simulate_plate(path, cell_line="CL1", rows=1, cols=2, timepoints=2, size=96, seed=3)
    return path


def test_one_command_gives_the_table_of_the_separate_commands(template, tmp_path,
                                                             cluster_client, capsys):
    at = ["--scheduler", cluster_client.scheduler.address]
    one, separate = tmp_path / "one.zarr", tmp_path / "separate.zarr"
    shutil.copytree(template, one)
    shutil.copytree(template, separate)
    report = tmp_path / "report"
    assert main(["segment", str(one), *SEGMENT, "--track", "--tracked-labels",
                 "--report", str(report), *at]) == 0
    out = capsys.readouterr().out
    assert "tables/cyto_features: 4 done" in out and "tracks: 2 field(s) tracked" in out
    assert (report / "report.html").is_file()
    assert main(["segment", str(separate), *SEGMENT, *at]) == 0
    assert main(["measure", str(separate), "--labels", "cyto", "--nuclei", "nuclei",
                 "--no-progress", *at]) == 0
    assert main(["track", str(separate), "--table", "cyto_features", "--tracked-labels",
                 "--no-progress", *at]) == 0
    for path in open_plate(one).field_paths:
        a, b = open_plate(one).field(path), open_plate(separate).field(path)
        pd.testing.assert_frame_equal(read_feature_table(a, "cyto_features"),
                                      read_feature_table(b, "cyto_features"))
        for name in ("cyto", "nuclei", "cyto_nuclei", "cyto_cytoplasm", "cyto_tracked"):
            assert (open_labels(a, name).read() == open_labels(b, name).read()).all(), name
    pd.testing.assert_frame_equal(read_plate_dataset(str(one), "cyto_features"),
                                  read_plate_dataset(str(separate), "cyto_features"))
    # the rerun of the one command: everything done, nothing redone
    assert main(["segment", str(one), *SEGMENT, "--track", *at]) == 0
    assert "tables/cyto_features: 0 done, 4 skipped" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--tracked-labels"], "tracked_labels: only used when tracking"),
    (["--track", "--max-distance", "1e9"], "max_distance: expected"),
    (["--report", ""], "expected a folder path"),
    (["--report", "{plate}/r"], "is inside the plate"),
], ids=["tracked-labels-alone", "max-distance", "report-empty", "report-in-plate"])
def test_workflow_options_are_checked_before_segmenting(extra, fragment, template, tmp_path,
                                                        capsys):
    from .cli.test_bad_input import snapshot

    plate = tmp_path / "p.zarr"
    shutil.copytree(template, plate)
    before = snapshot(tmp_path)
    argv = ["segment", str(plate), *SEGMENT, *[e.format(plate=plate) for e in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("warning: --with-nuclei segments the nuclei with 'generalist'")
    assert len(err) == 2 and fragment in err[1], err
    assert snapshot(tmp_path) == before


def test_check_cells_steps_needs_what_is_not_produced(template):
    steps = CellsSettings(cells="cyto", nuclei="gt_nuclei", link=True)
    check_cells_steps(str(template), steps, produced=["cyto"])  # cyto comes from segment
    with pytest.raises(KeyError, match="no label image 'cyto'"):
        check_cells_steps(str(template), steps)
    # a table the measuring step could not write is refused before segmenting, too
    taken = CellsSettings(cells="cyto", nuclei="gt_nuclei", table="gt_truth")
    with pytest.raises(FileExistsError, match="was not written by a measurement run"):
        check_cells_steps(str(template), taken, produced=["cyto"])
    with pytest.raises(KeyError, match="channel 'nope'"):
        check_cells_steps(str(template), CellsSettings(cells="cyto", channels=("nope",)),
                          produced=["cyto"])
