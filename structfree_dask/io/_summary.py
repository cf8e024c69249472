"""Summaries and tables for people: plate contents, completion, scores."""

from __future__ import annotations

from typing import Any

from ._labels import label_record, open_labels
from ._plate import Plate

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
        is the number of timepoints recorded as complete.

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
            if "done" in rec and rec.get("kind") == "segmentation":
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
    }
