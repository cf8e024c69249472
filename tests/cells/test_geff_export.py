"""The track graph as a geff, read back with geff's own reader."""

from __future__ import annotations

import pandas as pd
import pytest

from structfree_dask.cells.geff_export import write_geff
from structfree_dask.cells.plate_track import cell_radius
from structfree_dask.cells.track_scores import track_links
from structfree_dask.cells.tracking import track_cells


def test_geff_round_trip(tmp_path, field):
    import geff

    _, table = field
    tracked = track_cells(table, max_distance=cell_radius(table))
    links = track_links(tracked)
    where = tmp_path / "tracks.geff"
    write_geff(where, tracked, pixel_size_um=1.24, time_interval_h=3.0, columns=["area_px"])
    graph, meta = geff.read(str(where))
    assert graph.is_directed()
    assert graph.number_of_nodes() == len(tracked)
    assert graph.number_of_edges() == len(links.links) + len(links.divisions)
    assert sum(d["division"] for _, _, d in graph.edges(data=True)) == len(links.divisions)
    node = graph.nodes[5]
    row = tracked.iloc[5]
    assert (node["t"], node["label"], node["track_id"]) == (row["t"], row["label"],
                                                            row["track_id"])
    assert (node["y"], node["x"], node["area_px"]) == (row["centroid_y"], row["centroid_x"],
                                                        row["area_px"])
    assert [a.name for a in meta.axes] == ["t", "y", "x"]
    assert meta.axes[1].scale == 1.24 and meta.axes[0].scaled_unit == "hour"
    assert meta.track_node_props == {"tracklet": "track_id", "lineage": "lineage_id"}
    with pytest.raises(FileExistsError):
        write_geff(where, tracked)
    write_geff(where, tracked.iloc[:0], overwrite=True)
    assert geff.read(str(where))[0].number_of_nodes() == 0


def test_geff_lineages_and_urls():
    """Lineages follow mothers up the tree (a granddaughter's is her grandmother's first
    track); a URL is written through fsspec."""
    import geff
    from zarr.storage import FsspecStore

    # track 1 divides into 3 and 4 at t = 3, track 3 into 5 and 6 at t = 5; 2 never divides
    cells = [(0, 1, 1, -1), (1, 1, 1, -1), (2, 1, 1, -1), (3, 2, 3, 1), (3, 3, 4, 1),
             (4, 2, 3, 1), (4, 3, 4, 1), (5, 5, 5, 3), (5, 6, 6, 3), (5, 3, 4, 1),
             *((t, 9, 2, -1) for t in range(6))]
    tracked = pd.DataFrame(cells, columns=["t", "label", "track_id", "parent_track_id"])
    tracked["centroid_y"] = tracked["label"] * 10.0
    tracked["centroid_x"] = tracked["t"] * 2.0
    url = "memory://geff-test/tracks.geff"
    write_geff(url, tracked, overwrite=True)
    graph, _ = geff.read(FsspecStore.from_url(url))
    by_label = {(d["t"], d["label"]): d["lineage_id"] for _, d in graph.nodes(data=True)}
    assert by_label[(0, 1)] == by_label[(4, 2)] == by_label[(4, 3)] == 1
    assert by_label[(5, 5)] == by_label[(5, 6)] == 1  # granddaughters
    assert by_label[(0, 9)] == 2
    divisions = {(graph.nodes[a]["t"], graph.nodes[a]["label"], graph.nodes[b]["label"])
                 for a, b, d in graph.edges(data=True) if d["division"]}
    assert divisions == {(2, 1, 2), (2, 1, 3), (4, 2, 5), (4, 2, 6)}
