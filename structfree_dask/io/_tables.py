"""Per-object tables in the plate: ngio / Fractal feature tables, and plate-level datasets.

A field's feature table lives at ``<field>/tables/<name>`` (a zarr group listed in the
``tables`` attribute of ``<field>/tables``), with the attributes ngio reads (``type:
feature_table``, ``region.path: ../labels/<label image>``, ``index_key: label``,
``backend: parquet``) and its rows in ``table.parquet``. Here ``table.parquet`` is a
*folder* of Parquet parts, one per timepoint (``t00000.parquet``...), which ngio, pandas,
polars and DuckDB read as one dataset: each (field, timepoint) is written by one task in
one piece, appending timepoints adds parts, and nothing is read, modified and written
back. Groups and attributes are created by the driver (:func:`create_feature_table`);
workers only write parts (:func:`write_table_part`).

A plate-level dataset (``<plate>/measurements/<name>/``) holds the same rows for every
field with ``well``, ``row``, ``column`` and ``field`` columns, one part per (field,
timepoint), for readers that do not know this package.

A plate's own tables (``<plate>/tables/<name>``, listed in the ``tables`` attribute of
``<plate>/tables``) are small ngio tables of one Parquet file (``table.parquet``), such as
the plate map, an ngio ``condition_table`` (:func:`write_plate_table`).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zarr

from ..config import screen_folder
from ._location import concurrently, exists, filesystem, is_url, join, remove_tree
from ._ngff import metadata_errors, open_group_as
from ._plate import ImageInfo, check_name
from ._safepath import checked_path, checked_tree, is_local

logger = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "MEASUREMENTS_FOLDER",
    "ParquetStream",
    "TABLES_GROUP",
    "TableExistsError",
    "check_table_targets",
    "create_feature_table",
    "feature_table_timepoints",
    "list_tables",
    "plate_dataset",
    "plate_part_location",
    "plate_part_name",
    "read_feature_table",
    "read_plate_dataset",
    "remove_feature_table",
    "remove_plate_parts",
    "table_attrs",
    "table_meta",
    "table_part_location",
    "write_parquet",
    "update_table_attrs",
    "write_table_part",
    "condition_table_meta",
    "list_plate_tables",
    "plate_dataset_parts",
    "plate_table_attrs",
    "parquet_schema",
    "read_parquet",
    "read_plate_table",
    "write_plate_table",
]

#: Group holding a field's tables (ngio / Fractal convention).
TABLES_GROUP = "tables"
#: Folder of a plate's plate-level Parquet datasets.
MEASUREMENTS_FOLDER = "measurements"
_PARTS = "table.parquet"


class TableExistsError(FileExistsError):
    """A table of that name exists and replacing it was not asked for."""


def _part_name(t: int) -> str:
    return f"t{int(t):05d}.parquet"


def table_meta(reference_label: str, *, measurement_columns: list[str] | None = None,
               metadata_columns: list[str] | None = None,
               categorical_columns: list[str] | None = None) -> dict[str, Any]:
    """Attributes of a feature table group, as ngio writes them.

    Examples
    --------
    >>> m = table_meta("cyto")
    >>> m["type"], m["region"], m["index_key"], m["backend"]
    ('feature_table', {'path': '../labels/cyto'}, 'label', 'parquet')
    """
    return {
        "backend": "parquet",
        "index_key": "label",
        "index_type": "int",
        "table_version": "1",
        "type": "feature_table",
        "region": {"path": f"../labels/{reference_label}"},
        "instance_key": "label",
        "categorical_columns": list(categorical_columns or []),
        "measurement_columns": list(measurement_columns or []),
        "metadata_columns": list(metadata_columns or []),
    }


def _image_group(image: ImageInfo, mode: str) -> zarr.Group:
    with metadata_errors(image.store, image.path):
        return open_group_as(image.store, image.path, mode, image.ngff_version)


def _table_location(image: ImageInfo, name: str) -> str:
    return join(image.url, TABLES_GROUP, name)


def _table_path(image: ImageInfo, name: str) -> str:
    return f"{image.path + '/' if image.path else ''}{TABLES_GROUP}/{name}"


def check_table_targets(image: ImageInfo, name: str, plate_store: str) -> None:
    """Check that a table of a field, and the plate's dataset of that name, stay inside.

    Every folder from the store's root down to ``<field>/tables/<name>`` and to
    ``<plate>/measurements/<name>`` must be a real folder, and nothing already inside
    them may be a symbolic link: parts are written, replaced and deleted there. Stores
    that are not local paths are not checked.

    Raises
    ------
    UnsafePathError
        A symbolic link on the way or inside (a ``PermissionError``).
    ValueError
        An invalid table name.
    """
    check_name(name, "table name")
    checked_tree(image.store, _table_path(image, name))
    checked_tree(plate_store, f"{MEASUREMENTS_FOLDER}/{name}")


def list_tables(image: ImageInfo) -> list[str]:
    """Names of the tables listed in a field's ``tables`` group (empty when none)."""
    group = _image_group(image, "r")
    if TABLES_GROUP not in group:
        return []
    names = dict(group[TABLES_GROUP].attrs).get("tables", [])
    return [str(n) for n in names] if isinstance(names, list) else []


def create_feature_table(image: ImageInfo, name: str, *, reference_label: str,
                         overwrite: bool = False, attrs: dict[str, Any] | None = None,
                         **columns: list[str]) -> str:
    """Create (or, with ``overwrite``, replace) an empty feature table of a field.

    Parameters
    ----------
    image : ImageInfo
        The field.
    name : str
        Table name (one path component).
    reference_label : str
        The label image whose ``label`` values key the rows.
    overwrite : bool
        Replace a table of that name (its parts are deleted).
    attrs : dict, optional
        More attributes of the table group (a run's record), written with ngio's.
    **columns
        ``measurement_columns``, ``metadata_columns``, ``categorical_columns`` for the
        table's attributes.

    Returns
    -------
    str
        The table's location.

    Raises
    ------
    TableExistsError
        If the table exists and ``overwrite`` is False.
    """
    check_name(name, "table name")
    location = _table_location(image, name)
    checked_tree(image.store, _table_path(image, name))
    group = _image_group(image, "r+")
    tables = group.require_group(TABLES_GROUP)
    listed = list_tables(image)
    if name in tables and name not in listed and "type" not in tables[name].attrs:
        remove_tree(location)  # what a failed creation left: no attributes, not listed
    if name in listed or name in tables:
        if not overwrite:
            raise TableExistsError(
                f"table {name!r} already exists in {image.url}; pass overwrite=True "
                "(--overwrite) to replace it"
            )
        remove_feature_table(image, name)
        tables = _image_group(image, "r+").require_group(TABLES_GROUP)
        listed = list_tables(image)
    try:  # all or nothing: a failure (a full disk...) leaves no half-made table
        table = tables.create_group(name)
        table.update_attributes({**table_meta(reference_label, **columns), **(attrs or {})})
        tables.attrs["tables"] = [*listed, name]
    except BaseException:
        try:
            remove_tree(location)
        except Exception as err:  # noqa: BLE001 - the first error is the one to report
            logger.warning("could not remove the half-made table %s of %s: %s", name,
                           image.url, err)
        raise
    return location


def table_attrs(image: ImageInfo, name: str) -> dict[str, Any]:
    """Return the attributes of a field's table group (``region``, ``type``, records...)."""
    path = f"{image.path}/{TABLES_GROUP}/{name}" if image.path else f"{TABLES_GROUP}/{name}"
    with metadata_errors(image.store, path):
        return dict(open_group_as(image.store, path, "r", image.ngff_version).attrs)


def update_table_attrs(image: ImageInfo, name: str, **attrs: Any) -> None:
    """Set attributes of a field's table group (driver only)."""
    path = f"{image.path}/{TABLES_GROUP}/{name}" if image.path else f"{TABLES_GROUP}/{name}"
    open_group_as(image.store, path, "r+", image.ngff_version).update_attributes(attrs)


def remove_feature_table(image: ImageInfo, name: str) -> None:
    """Delete a field's table and unlist it (nothing happens if it is absent)."""
    group = _image_group(image, "r+")
    if TABLES_GROUP not in group:
        return
    tables = group[TABLES_GROUP]
    checked_tree(image.store, _table_path(image, name))
    remove_tree(_table_location(image, name))
    names = [n for n in list_tables(image) if n != name]
    tables = _image_group(image, "r+").require_group(TABLES_GROUP)
    tables.attrs["tables"] = names


def write_parquet(table: pa.Table, location: str) -> None:
    """Write a Parquet file in one piece (locally through a renamed temporary file)."""
    import pyarrow.parquet as pq

    if is_url(location):
        fs, path = filesystem(location)
        pq.write_table(table, path, filesystem=fs)
        return
    target = Path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class ParquetStream:
    """Write one Parquet file row group by row group; it appears only when complete.

    Locally the file is written under a temporary name and renamed on success; in an
    object store it is uploaded as one object when closed. Nothing is left behind when
    the block raises.

    Examples
    --------
    >>> import pyarrow as pa, tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "x.parquet"
    >>> schema = pa.schema([("a", pa.int64())])
    >>> with ParquetStream(str(target), schema) as out:
    ...     out.write(pa.table({"a": [1, 2]}))
    ...     out.write(pa.table({"a": [3]}))
    >>> import pyarrow.parquet as pq
    >>> pq.read_table(target)["a"].to_pylist()
    [1, 2, 3]
    """

    def __init__(self, location: str, schema: pa.Schema) -> None:
        self.location = location
        self.schema = schema

    def __enter__(self) -> ParquetStream:
        import pyarrow.parquet as pq

        if is_url(self.location):
            fs, path = filesystem(self.location)
            self._file = fs.open(path, "wb")
            self._tmp = None
        else:
            target = Path(self.location)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in __exit__
        self._writer = pq.ParquetWriter(self._file, self.schema)
        return self

    def write(self, table: pa.Table) -> None:
        """Append rows (a row group) in the stream's schema."""
        self._writer.write_table(table.cast(self.schema))

    def __exit__(self, kind: Any, *_: Any) -> None:
        failed = kind is not None
        try:
            try:
                self._writer.close()  # the footer: a full disk may fail here, or at close
            finally:
                self._file.close()
        except BaseException:
            failed = True
            raise
        finally:
            if failed and is_url(self.location):
                fs, path = filesystem(self.location)
                if fs.exists(path):
                    fs.rm(path)
            if self._tmp is not None:
                if not failed:  # published only when complete
                    os.replace(self._tmp, self.location)
                self._tmp.unlink(missing_ok=True)


def table_part_location(image: ImageInfo, name: str, t: int) -> str:
    """Return the location of one timepoint's part of a field's table."""
    if is_local(image.store):
        checked_path(image.store, f"{_table_path(image, name)}/{_PARTS}")
    return join(_table_location(image, name), _PARTS, _part_name(t))


def write_table_part(image: ImageInfo, name: str, t: int, table: pa.Table) -> str:
    """Write the rows of one timepoint of a field's feature table (replacing them).

    The table must have been created by :func:`create_feature_table`. Returns the
    part's location.
    """
    location = table_part_location(image, name, t)
    write_parquet(table, location)
    return location


def _list_parts(location: str) -> list[str]:
    if is_url(location):
        fs, path = filesystem(location)
        fs.invalidate_cache(path)
        if not fs.exists(path):
            return []
        return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    folder = Path(location)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _readable(location: str) -> bool:
    """Whether a local Parquet file's footer reads (a damaged or cut file does not)."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(location)
    except Exception:  # noqa: BLE001 - any failure to read means: not a complete part
        return False
    return True


def feature_table_timepoints(image: ImageInfo, name: str, *, verify: bool = False) -> set[int]:
    """Timepoints whose part of a field's table is written.

    With ``verify``, a local part whose Parquet footer does not read (damaged, cut short
    by a copy) is not counted: its timepoint is measured again. Parts in an object store
    are not read for this: an object is stored whole or not at all, and reading every
    footer of a campaign would cost one request per (field, timepoint) at each rerun.
    """
    folder = join(_table_location(image, name), _PARTS)
    check = verify and not is_url(folder)
    out = set()
    for p in _list_parts(folder):
        if p.startswith("t") and p.endswith(".parquet") and p[1:-8].isdigit():
            if check and not _readable(join(folder, p)):
                logger.warning("part %s of table %s of %s does not read; its timepoint is "
                               "measured again", p, name, image.url)
                continue
            out.add(int(p[1:-8]))
    return out


def _read_parts(location: str, names: list[str]) -> pd.DataFrame:
    """Read the parts (concurrently) and join them as one frame.

    Parts of one schema are joined in Arrow and converted once; parts whose schemas Arrow
    cannot unify (written by different versions) are joined by pandas.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    def read(name: str) -> pa.Table:
        loc = join(location, name)
        if is_url(loc):
            fs, path = filesystem(loc)
            return pq.read_table(path, filesystem=fs)
        return pq.read_table(loc)

    tables = concurrently(read, names)
    if not tables:
        return pd.DataFrame()
    try:
        return pa.concat_tables(tables, promote_options="default").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)


def read_feature_table(image: ImageInfo, name: str) -> pd.DataFrame:
    """Read every timepoint of a field's feature table (rows ordered by ``t``, ``label``)."""
    location = join(_table_location(image, name), _PARTS)
    names = [p for p in _list_parts(location) if p.endswith(".parquet") and p.startswith("t")]
    df = _read_parts(location, names)
    if len(df) and {"t", "label"} <= set(df.columns):
        df = df.sort_values(["t", "label"], kind="stable").reset_index(drop=True)
    return df


def plate_dataset(plate_store: str, name: str) -> str:
    """Location of a plate-level dataset (``<plate>/measurements/<name>``)."""
    check_name(name, "table name")
    return join(plate_store, MEASUREMENTS_FOLDER, name)


def plate_part_name(field_path: str, t: int) -> str:
    """Part file of one (field, timepoint) in a plate-level dataset.

    Examples
    --------
    >>> plate_part_name("B/3/1", 7)
    'B-3-1-t00007.parquet'
    """
    return f"{field_path.replace('/', '-') or 'image'}-{_part_name(t)}"


def plate_part_location(plate_store: str, name: str, field_path: str, t: int) -> str:
    """Return the location of one (field, timepoint)'s part of a plate-level dataset.

    The way down to ``<plate>/measurements/<name>`` is checked first (no symbolic link)
    for a local plate.
    """
    if is_local(plate_store):
        checked_path(plate_store, f"{MEASUREMENTS_FOLDER}/{name}")
    return join(plate_dataset(plate_store, name), plate_part_name(field_path, t))


def remove_plate_parts(plate_store: str, name: str, field_path: str,
                       timepoints: Iterable[int] | None = None) -> None:
    """Delete a field's parts of a plate-level dataset: all, or those of ``timepoints``."""
    location = plate_dataset(plate_store, name)
    prefix = plate_part_name(field_path, 0).rsplit("-t", 1)[0] + "-t"
    wanted = None if timepoints is None else {plate_part_name(field_path, t)
                                              for t in timepoints}

    def chosen(part: str) -> bool:
        return part in wanted if wanted is not None else (
            part.startswith(prefix) and part.endswith(".parquet"))

    if is_url(location):
        fs, path = filesystem(location)
        if fs.exists(path):
            for p in fs.ls(path, detail=False):
                if chosen(p.rsplit("/", 1)[-1]):
                    fs.rm(p)
        return
    folder = checked_tree(plate_store, f"{MEASUREMENTS_FOLDER}/{name}")
    if folder is not None and folder.is_dir():
        for p in folder.iterdir():
            if chosen(p.name):
                p.unlink()


def read_plate_dataset(plate_store: str, name: str) -> pd.DataFrame:
    """Read a plate-level dataset into one DataFrame (empty when it does not exist)."""
    location = plate_dataset(plate_store, name)
    if not exists(location):
        import pandas as pd

        return pd.DataFrame()
    names = [p for p in _list_parts(location) if p.endswith(".parquet")]
    df = _read_parts(location, names)
    keys = [k for k in ("row", "column", "field", "t", "label") if k in df.columns]
    if len(df) and keys:
        df = df.sort_values(keys, kind="stable").reset_index(drop=True)
    return df


# ------------------------------------------------------------------ a plate's own tables


def condition_table_meta(index_key: str = "well") -> dict[str, Any]:
    """Attributes of a plate-level condition table, as ngio reads them.

    Examples
    --------
    >>> m = condition_table_meta()
    >>> m["type"], m["backend"], m["index_key"], m["index_type"]
    ('condition_table', 'parquet', 'well', 'str')
    """
    return {"type": "condition_table", "table_version": "1", "backend": "parquet",
            "index_key": index_key, "index_type": "str"}


def _plate_root(plate_store: str, mode: str) -> zarr.Group:
    with metadata_errors(plate_store, ""):
        return zarr.open_group(store=plate_store, mode=mode)  # type: ignore[arg-type]


def list_plate_tables(plate_store: str) -> list[str]:
    """Names of the tables listed in a plate's own ``tables`` group (empty when none)."""
    root = _plate_root(plate_store, "r")
    if TABLES_GROUP not in root:
        return []
    names = dict(root[TABLES_GROUP].attrs).get("tables", [])
    return [str(n) for n in names] if isinstance(names, list) else []


def plate_table_attrs(plate_store: str, name: str) -> dict[str, Any] | None:
    """Return the attributes of a plate's own table (None when it has no such table)."""
    check_name(name, "table name")
    root = _plate_root(plate_store, "r")
    if TABLES_GROUP not in root or name not in root[TABLES_GROUP]:
        return None
    return dict(root[TABLES_GROUP][name].attrs)


def write_plate_table(plate_store: str, name: str, table: pa.Table, attrs: dict[str, Any], *,
                      overwrite: bool = False) -> str:
    """Write (or, with ``overwrite``, replace) a plate's own table in one Parquet file.

    ``<plate>/tables/<name>`` gets ``attrs`` (e.g. :func:`condition_table_meta` and a
    record) and the rows in ``table.parquet``; the name is listed in ``<plate>/tables``
    (ngio reads it with ``get_table``). A failure leaves no half-made table.

    Returns
    -------
    str
        The table's location.

    Raises
    ------
    TableExistsError
        If the table exists and ``overwrite`` is False.
    UnsafePathError
        A symbolic link on the way to, or inside, the table's folder.
    """
    check_name(name, "table name")
    checked_tree(plate_store, f"{TABLES_GROUP}/{name}")
    location = join(plate_store, TABLES_GROUP, name)
    tables = _plate_root(plate_store, "r+").require_group(TABLES_GROUP)
    listed = list_plate_tables(plate_store)
    if name in listed or name in tables:
        if not overwrite:
            raise TableExistsError(
                f"table {name!r} already exists in {plate_store}; pass overwrite=True "
                "(--overwrite) to replace it")
        remove_tree(location)
    try:  # all or nothing
        group = tables.create_group(name)
        write_parquet(table, join(location, _PARTS))
        group.update_attributes(attrs)
        tables.attrs["tables"] = [*(n for n in listed if n != name), name]
    except BaseException:
        try:
            remove_tree(location)
            tables.attrs["tables"] = [n for n in listed if n != name]
        except Exception as err:  # noqa: BLE001 - the first error is the one to report
            logger.warning("could not remove the half-made table %s of %s: %s", name,
                           plate_store, err)
        raise
    return location


def read_plate_table(plate_store: str, name: str) -> pd.DataFrame | None:
    """Read a plate's own table (None when the plate has no such table)."""
    if plate_table_attrs(plate_store, name) is None:
        return None
    return read_parquet(join(plate_store, TABLES_GROUP, name, _PARTS))


def read_parquet(location: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one Parquet file (a local path or a URL), optionally some columns only."""
    return read_arrow(location, columns).to_pandas()


def read_arrow(location: str, columns: list[str] | None = None) -> pa.Table:
    """Read one Parquet file (a local path or a URL) as an Arrow table."""
    import pyarrow.parquet as pq

    if is_url(location):
        fs, path = filesystem(location)
        return pq.read_table(path, columns=columns, filesystem=fs)
    return pq.read_table(location, columns=columns)


def parquet_schema(location: str) -> pa.Schema:
    """Return the Arrow schema of one Parquet file (its footer only, no rows read)."""
    import pyarrow.parquet as pq

    if is_url(location):
        fs, path = filesystem(location)
        return pq.read_schema(path, filesystem=fs)
    return pq.read_schema(location)


def list_plate_datasets(plate_store: str) -> list[str]:
    """Names of a plate's plate-level datasets (the folders of ``<plate>/measurements``)."""
    location = join(plate_store, MEASUREMENTS_FOLDER)
    if is_url(location):
        fs, path = filesystem(location)
        if not fs.exists(path):
            return []
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    else:
        folder = Path(location)
        names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [n for n in names if not n.startswith(".")]


def list_cell_datasets(plate_store: str) -> list[str]:
    """Names of a plate's per-cell datasets.

    :func:`list_plate_datasets` without the folders of screen tables beside them
    (:func:`~structfree_dask.config.screen_folder`).
    """
    return [n for n in list_plate_datasets(plate_store) if not n.endswith(screen_folder(""))]


def plate_dataset_parts(plate_store: str, name: str) -> list[str]:
    """Part files of a plate-level dataset, sorted (empty when it does not exist).

    Each is ``plate_part_name(field path, t)``; read one with :func:`read_parquet` at
    ``join(plate_dataset(plate_store, name), part)``.
    """
    return [p for p in _list_parts(plate_dataset(plate_store, name))
            if p.endswith(".parquet") and not p.startswith(".")]
