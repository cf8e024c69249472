"""Summaries and tables for people: plate contents, completion, scores."""

from __future__ import annotations

from typing import Any

from ._labels import label_record, open_labels
from ._location import exists, join
from ._plate import ImageInfo, Plate
from ._tables import feature_table_timepoints, list_plate_datasets, list_tables

__all__ = ["plate_summary"]


def plate_summary(plate: Plate) -> dict[str, Any]:
    """Describe a plate: wells, fields, sizes, channels, label images and completion.

    Parameters
    ----------
    plate : Plate

    Returns
    -------
    dict
        JSON-serialisable summary. For label images written by this package, ``done``
        is the number of timepoints recorded as complete; each field's ``tables`` give
        the timepoints with rows and whether a track graph is there (``tracks``); the
        plate's ``measurements`` lists its plate-level datasets.

    Examples
    --------
    >>> import tempfile
    >>> from structfree_dask.io import open_plate
    >>> from structfree_dask.simulate import simulate_plate
    >>> s = plate_summary(open_plate(simulate_plate(tempfile.mkdtemp() + "/p.zarr", size=64)))
    >>> s["fields"][0]["labels"]
    [{'name': 'gt_nuclei'}, {'name': 'gt_cyto'}]
    """
    fields = []
    for info in plate.fields():
        labels = []
        for name in info.labels:
            entry: dict[str, Any] = {"name": name}
            try:
                rec = label_record(open_labels(info, name))
            except KeyError:
                rec = {}
            ours = rec.get("kind") == "segmentation" or "linked" in rec or "tracked" in rec
            if ours and isinstance(rec.get("done"), list):  # (not ground truth's)
                entry["done"] = len(rec["done"])
            labels.append(entry)
        fields.append({
            "path": info.path,
            "sizes": {k: v for k, v in info.sizes.items() if k in info.axes},
            "pixel_size": info.pixel_size,
            "channels": list(info.channel_names),
            "dtype": str(info.dtype),
            "levels": len(info.levels),
            "labels": labels,
            "tables": _tables(info),
            **({"source": info.source} if info.source is not None else {}),
        })
    return {
        "store": plate.store,
        "kind": plate.kind,
        "ngff_version": plate.ngff_version,
        "name": plate.name,
        "rows": list(plate.rows),
        "columns": list(plate.columns),
        "wells": list(plate.wells),
        "fields": fields,
        "measurements": list_plate_datasets(plate.store),
    }


def _tables(info: ImageInfo) -> list[dict[str, Any]]:
    out = []
    for name in list_tables(info):
        entry: dict[str, Any] = {"name": name}
        try:
            entry["timepoints"] = len(feature_table_timepoints(info, name))
        except OSError:
            entry["timepoints"] = None
        entry["tracks"] = exists(join(info.url, "tracks", name))
        out.append(entry)
    return out
