"""``structfree-dask link``, ``measure``, ``track`` and ``report`` (cli.cells), end to end.

On simulated plates on disk, with a cluster started by the command (``--workers 1``) or
the session's real 2-worker LocalCluster (``--scheduler``). The refusals these commands
share with ``segment`` are in ``test_cells_hardening.py``.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from structfree_dask.cells.plate_measure import measure_plate
from structfree_dask.cli import main
from structfree_dask.io import (
    completed_timepoints,
    feature_table_timepoints,
    list_tables,
    open_labels,
    open_plate,
    read_feature_table,
)
from structfree_dask.simulate import simulate_plate

CELLS_COMMANDS = ["link", "measure", "track", "report"]


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """A 1 x 2 CL2 plate of 3 timepoints (128 px), with gt_cyto and gt_nuclei."""
    path = tmp_path_factory.mktemp("cells") / "p.zarr"
    simulate_plate(path, cell_line="CL2", rows=1, cols=2, timepoints=3, size=128, seed=5)
    return path


def _on(client) -> list[str]:
    return ["--scheduler", client.scheduler.address, "--no-progress"]


@pytest.mark.parametrize("command", CELLS_COMMANDS)
def test_help_on_every_cells_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: structfree-dask {command} ")
    assert "plate" in out and ("--scheduler" in out) == (command != "report")


def test_cli_link_and_measure(plate, cli_env, capsys, tmp_path):
    assert main(["link", str(plate), "--nuclei", "gt_nuclei", "--cells", "gt_cyto",
                 "--workers", "1", "--no-progress", "--wells", "A/2"]) == 0
    out = capsys.readouterr().out
    assert "labels/gt_cyto_nuclei" in out and "flagged" in out
    assert main(["measure", str(plate), "--labels", "gt_cyto", "--table", "cli_features",
                 "--nuclei", "gt_nuclei", "--workers", "1", "--no-progress"]) == 0
    assert "tables/cli_features: 6 done" in capsys.readouterr().out
    assert main(["measure", str(plate), "--labels", "gt_cyto", "--table", "bare",
                 "--workers", "1", "--no-progress", "--wells", "A/2"]) == 0
    out, err = capsys.readouterr()
    assert "; no nuclei given (nucleus columns empty)" in out and "warning" not in err
    assert main(["measure", str(plate), "--labels", "gt_nuclei", "--table", "cli_features",
                 "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: table 'cli_features'") and "--overwrite" in err
    assert main(["measure", str(plate), "--labels", "gt_cyto", "--nuclei", "missing",
                 "--no-progress"]) == 2
    assert "no label image 'missing'" in capsys.readouterr().err
    # the plate view of the measured table, in a local folder
    assert main(["report", str(plate), "--table", "cli_features",
                 "--output", str(tmp_path / "view")]) == 0
    page = (tmp_path / "view" / "report.html").read_text()
    assert "A1" in page and "A2" in page and list((tmp_path / "view").glob("*.png"))
    assert main(["report", str(plate), "--table", "cli_features", "--readout", "nope",
                 "--output", str(tmp_path / "v2")]) == 2
    assert sorted(p.name for p in (tmp_path / "view").glob("well-*.html")) == [
        "well-A-1.html", "well-A-2.html"]
    assert main(["report", str(plate), "--table", "cli_features", "--well-pages", "1",
                 "--output", str(tmp_path / "view")]) == 0  # the cap, from the schema
    assert [p.name for p in (tmp_path / "view").glob("well-*.html")] == ["well-A-1.html"]
    capsys.readouterr()
    assert main(["report", str(plate), "--table", "cli_features", "--well-pages", "-1",
                 "--readout", "", "--output", str(tmp_path / "v3")]) == 2
    err = capsys.readouterr().err.splitlines()  # every bad setting, one line each
    assert err == ["error: readout: expected a non-empty string; got ''",
                   "error: well_pages: expected a whole number between 0 and 100000; got -1"]
    assert not (tmp_path / "v3").exists()


def test_measure_options_reach_the_table_and_the_summary_counts_it(tmp_path, cluster_client,
                                                                   capsys):
    """--channels, --wells, --timepoints and --no-link select what is measured and written;
    the summary line counts the units, the cells and the flagged objects of the table."""
    path = simulate_plate(tmp_path / "p.zarr", cell_line="CL1", rows=1, cols=2,
                          timepoints=2, size=64, seed=1)
    assert main(["measure", str(path), "--labels", "gt_cyto", "--nuclei", "gt_nuclei",
                 "--table", "er", "--channels", "ER", "--wells", "A/2", "--timepoints", "1",
                 "--no-link", "--region", "64", *_on(cluster_client)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    image = open_plate(path).field("A/2/0")
    rows = read_feature_table(image, "er")
    assert rows["t"].unique().tolist() == [1] and len(rows) > 0
    flagged = (int((rows["n_nuclei"] == 0).sum()), int((rows["n_nuclei"] > 1).sum()))
    assert len(out) == 1 and re.fullmatch(
        rf"tables/er: 1 done, 0 skipped \(already done\), 0 failed; {len(rows)} cells in the "
        rf"units done; flagged: {flagged[0]} cell\(s\) without nucleus, {flagged[1]} with "
        r"several, \d+ nucleus/nuclei outside any cell", out[0]), out
    channels = {c.split("__")[0] for c in rows.columns if "__" in c}
    assert channels == {"ER"}  # only the channel asked for
    assert feature_table_timepoints(image, "er") == {1}
    assert "er" not in list_tables(open_plate(path).field("A/1/0"))  # the other well
    assert not {"gt_cyto_nuclei", "gt_cyto_cytoplasm"} & set(image.labels)  # --no-link
    # the same command again: the unit is done
    assert main(["measure", str(path), "--labels", "gt_cyto", "--nuclei", "gt_nuclei",
                 "--table", "er", "--channels", "ER", "--wells", "A/2", "--timepoints", "1",
                 "--no-link", *_on(cluster_client)]) == 0
    assert capsys.readouterr().out.startswith("tables/er: 0 done, 1 skipped (already done)")


def test_track_prints_tracks_and_divisions_and_writes_tracked_labels(tmp_path, cluster_client,
                                                                    capsys):
    path = simulate_plate(tmp_path / "p.zarr", cell_line="CL1", rows=1, cols=1,
                          timepoints=4, size=96, seed=2)
    assert measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei",
                         client=cluster_client).ok
    argv = ["track", str(path), "--table", "gt_cyto_features", "--tracked-labels",
            "--no-divisions", "--max-gap", "0", *_on(cluster_client)]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    image = open_plate(path).field("A/1/0")
    rows = read_feature_table(image, "gt_cyto_features")
    tracks = rows["track_id"].nunique()
    assert (rows["track_id"] >= 1).all() and tracks > 0
    assert out == [f"tables/gt_cyto_features: 1 field(s) tracked, 0 failed; {tracks} tracks, "
                   "0 divisions"]
    assert (rows["parent_track_id"] == -1).all()  # --no-divisions: no mother
    tracked = open_labels(image, "gt_cyto_tracked")
    assert completed_timepoints(tracked) == {0, 1, 2, 3}
    assert set(tracked.read().ravel()) - {0} == set(rows["track_id"])
    # again: nothing tracked anew, the same tracks
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().endswith(f"{tracks} tracks, 0 divisions")
    assert read_feature_table(image, "gt_cyto_features").equals(rows)


def test_track_refuses_a_table_that_does_not_exist(plate, capsys):
    assert main(["track", str(plate), "--table", "nope", "--no-progress"]) == 2
    assert "no table 'nope'" in capsys.readouterr().err


def test_ctrl_c_during_measure_says_what_is_kept_and_a_rerun_resumes(tmp_path, cluster_client,
                                                                    capsys, monkeypatch):
    """A real SIGINT once the first unit is measured: status 130, one line; the rerun
    measures only what was not finished (one unit in flight at a time here)."""
    from structfree_dask.cells import plate_measure
    from structfree_dask.runtime import cluster

    path = simulate_plate(tmp_path / "p.zarr", cell_line="CL1", rows=1, cols=2,
                          timepoints=2, size=64, seed=3)
    real = plate_measure.measure_plate

    def interrupted_after_the_first_unit(*args, progress, **kwargs):
        def count(done: int, total: int) -> None:
            progress(done, total)
            if done == 1:
                os.kill(os.getpid(), signal.SIGINT)

        return real(*args, progress=count, **kwargs)

    argv = ["measure", str(path), "--labels", "gt_cyto", *_on(cluster_client)]
    with monkeypatch.context() as patch:
        patch.setattr(plate_measure, "measure_plate", interrupted_after_the_first_unit)
        patch.setattr(cluster, "in_flight_window", lambda client, per_thread: 1)
        assert main(argv) == 130
    captured = capsys.readouterr()
    err = [ln for ln in captured.err.strip().splitlines() if not ln.startswith("dashboard: ")]
    assert captured.out == "" and len(err) == 1, err
    assert err[0] == ("interrupted: 1 of 4 (field, timepoint) unit(s) finished and are kept "
                      "in tables/gt_cyto_features; rerun the same command to resume")
    assert main(argv) == 0
    done, skipped = map(int, re.match(r"tables/gt_cyto_features: (\d+) done, (\d+) skipped",
                                      capsys.readouterr().out).groups())
    assert done + skipped == 4 and 1 <= skipped <= 2  # the unit in flight may have ended
    for field in ("A/1/0", "A/2/0"):
        image = open_plate(path).field(field)
        assert feature_table_timepoints(image, "gt_cyto_features") == {0, 1}
