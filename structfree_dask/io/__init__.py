"""Reading and writing OME-Zarr plates, images and label images.

Sources are opened read-only; label images are created up front, filled region by
region by tasks, and get their NGFF metadata last.
"""

from ._fetch import CACHE_ENV, cache_dir, local_copy
from ._importer import import_folder
from ._labels import (
    LABEL_DTYPE,
    LabelExistsError,
    LabelImage,
    check_label_target,
    completed_timepoints,
    create_labels,
    extend_timepoints,
    finalize_labels,
    label_record,
    mark_done,
    open_labels,
    unmark_done,
    write_label_region,
    write_labels,
)
from ._location import (
    StoreError,
    as_location,
    basename,
    check_store,
    exists,
    filesystem,
    is_url,
    join,
    redact,
    remove_tree,
    upload,
    write_text,
)
from ._ngff import SUPPORTED_VERSIONS, metadata_errors
from ._outputs import check_output_file
from ._plate import (
    AXIS_ORDER,
    ImageInfo,
    Level,
    MetadataError,
    Plate,
    check_name,
    open_plate,
    read_image_info,
)
from ._safepath import UnsafePathError, check_writable
from ._summary import plate_summary
from ._writer import PlateWriter, append_timepoints, create_image, create_plate

__all__ = [
    "AXIS_ORDER",
    "CACHE_ENV",
    "append_timepoints",
    "LABEL_DTYPE",
    "SUPPORTED_VERSIONS",
    "ImageInfo",
    "LabelExistsError",
    "LabelImage",
    "Level",
    "MetadataError",
    "Plate",
    "PlateWriter",
    "UnsafePathError",
    "StoreError",
    "as_location",
    "basename",
    "cache_dir",
    "local_copy",
    "check_store",
    "exists",
    "filesystem",
    "is_url",
    "join",
    "redact",
    "remove_tree",
    "upload",
    "write_text",
    "check_label_target",
    "check_name",
    "check_writable",
    "metadata_errors",
    "check_output_file",
    "completed_timepoints",
    "create_image",
    "create_labels",
    "extend_timepoints",
    "create_plate",
    "finalize_labels",
    "import_folder",
    "label_record",
    "mark_done",
    "open_labels",
    "open_plate",
    "plate_summary",
    "unmark_done",
    "read_image_info",
    "write_label_region",
    "write_labels",
]
