"""Which files make each field of a plate: a folder's images grouped by well and field.

One file per field (all channels in it), or one per channel, timepoint and plane, as
high-content microscopes export them (names read by :func:`._file_names.parse_name`).
The files are only listed and grouped here; :mod:`._importer` checks and reads them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._file_names import FileName, channel_number, parse_name

__all__ = ["FieldFile", "scan_folder", "EXTENSIONS", "Z_PROJECTIONS"]

#: Image files read (by extension, any case).
EXTENSIONS = (".tif", ".tiff", ".png")
#: How the planes of a z-stack become one: None (refused) or their maximum intensity.
Z_PROJECTIONS: tuple[str | None, ...] = (None, "max")
#: MetaXpress's folders of one timepoint (in a plate folder) and of one plane (in those).
TIMEPOINT_FOLDER = re.compile(r"^timepoint_(\d+)$", re.IGNORECASE)
ZSTEP_FOLDER = re.compile(r"^zstep_(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class FieldFile:
    """The image file(s) of one field and where the field goes in the plate."""

    image: Path
    masks: Path | None
    row: str
    col: str
    field: int
    #: One file per channel, in channel order (``image`` is the first); empty where
    #: ``image`` holds every channel.
    channel_files: tuple[Path, ...] = ()
    #: The channels as the file names write them (``w1``, ``ch2``), with ``channel_files``.
    channel_labels: tuple[str, ...] = ()
    #: A time-lapse: each timepoint's files (as ``channel_files``, or one file with every
    #: channel), in timepoint order; empty where the field has one timepoint.
    timepoint_files: tuple[tuple[Path, ...], ...] = ()
    #: A z-stack projected: for each file above (its first plane), every plane's file, in
    #: plane order; empty where each file is one plane.
    plane_files: tuple[tuple[Path, ...], ...] = ()

    def planes(self, path: Path) -> tuple[Path, ...]:
        """Return the files of every plane of ``path`` (``(path,)`` where it is one)."""
        return next((p for p in self.plane_files if p[0] == path), (path,))

    @property
    def files(self) -> tuple[Path, ...]:
        """Every image file of the field."""
        slots = (tuple(p for files in self.timepoint_files for p in files)
                 if self.timepoint_files else self.channel_files or (self.image,))
        return tuple(p for slot in slots for p in self.planes(slot))


def scan_folder(folder: str | Path, *, mask_suffix: str = "_masks",
                z_projection: str | None = None) -> list[FieldFile]:
    """List the image files of a folder and assign each to a well and field.

    Names are read as :func:`._file_names.parse_name` does: a well and field, with all
    channels in the file (``B03_f2.tif``, ``B3-1.png``), or one file per channel and/or
    timepoint (Harmony ``r02c03f01p01-ch1sk1...``, MetaXpress ``Plate_B03_s1_w1...``,
    CellVoyager ``..._B03_T0001F001L01A01Z01C01``, ``B03_f2_t3_ch1``), whose files are
    grouped by field in timepoint and channel number order. If any name says no well,
    every file is placed in row A, one well per file, in name order. A file
    ``<stem><mask_suffix>.<ext>`` next to an image holds its labels. MetaXpress
    thumbnails (``_thumb`` in the name) are left out. A folder without images of its own
    whose ``TimePoint_<n>`` folders hold them (MetaXpress) is read from those: their files
    are timepoint ``n``, and those of their ``ZStep_<k>`` folders plane ``k``.

    Parameters
    ----------
    folder : str or Path
    mask_suffix : str
    z_projection : {None, "max"}
        How the planes of a z-stack (files named by plane: Harmony ``p02``, CellVoyager
        ``Z02``, ``B03_z2``) become the field's one plane: ``"max"``, their maximum
        intensity; None refuses a z-stack.

    Returns
    -------
    list of FieldFile

    Raises
    ------
    FileNotFoundError
        If the folder does not exist or holds no TIFF/PNG image.
    ValueError
        Two files go to one field (timepoint and channel), a z-stack without
        ``z_projection``, some names give a channel, timepoint or plane and others not,
        the fields do not all have the same channels and timepoints, or a time-lapse
        field has a label file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"expected a folder of TIFF/PNG images at {folder}; not found")
    files = _image_files(folder)
    placed = {}  # MetaXpress: a file's timepoint and plane from its folders
    if not files:
        for timepoint in _numbered(folder, TIMEPOINT_FOLDER):
            t = int(TIMEPOINT_FOLDER.match(timepoint.name)[1])  # type: ignore[index]
            placed.update(dict.fromkeys(_image_files(timepoint), (t, "")))
            for step in _numbered(timepoint, ZSTEP_FOLDER):
                z = f"z{int(ZSTEP_FOLDER.match(step.name)[1])}"  # type: ignore[index]
                placed.update(dict.fromkeys(_image_files(step), (t, z)))
        files = list(placed)
    images = [p for p in files if not p.stem.endswith(mask_suffix)]
    if not images:
        raise FileNotFoundError(
            f"expected TIFF/PNG images ({', '.join(EXTENSIONS)}) in {folder}; found none"
        )
    masks = {p.stem[: -len(mask_suffix)]: p for p in files if p.stem.endswith(mask_suffix)}

    def mask_of(path: Path) -> Path | None:
        # strip a common image suffix such as "_img" so "095_img.png" pairs with "095_masks.png"
        return masks.get(path.stem) or masks.get(re.sub(r"[-_](img|image)$", "", path.stem))

    parsed = [parse_name(p.stem) for p in images]
    if placed:
        bad = next((p for p, n in zip(images, parsed, strict=True) if n is None), None)
        if bad is not None:
            raise ValueError(f"{bad.relative_to(folder).as_posix()}: expected a well in the "
                             "names of the files of TimePoint folders (Plate_B03_s1_w1)")
        parsed = [dataclasses.replace(n, timepoint=placed[p][0], plane=placed[p][1] or n.plane)
                  for p, n in zip(images, parsed, strict=True) if n is not None]
    if not all(parsed):
        return [FieldFile(path, mask_of(path), "A", str(i + 1), 0)
                for i, path in enumerate(images)]
    names = [n for n in parsed if n is not None]
    if any(n.channel or n.timepoint is not None or n.plane for n in names):
        return _grouped(images, names, mask_of, z_projection)
    seen: dict[tuple[str, str, int], Path] = {}
    out = []
    for path, n in zip(images, names, strict=True):
        key = (n.row, n.col, n.field)
        if key in seen:
            raise ValueError(f"{path.name} and {seen[key].name} both map to well "
                             f"{n.row}/{n.col} field {n.field}{_one_plane(n)}")
        seen[key] = path
        out.append(FieldFile(path, mask_of(path), n.row, n.col, n.field))
    return out


def _image_files(folder: Path) -> list[Path]:
    """Return a folder's image files (thumbnails left out), in name order."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS
                  and "_thumb" not in p.stem.lower() and p.is_file())


def _numbered(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Return a folder's folders named as ``pattern`` says, in number order."""
    found = [p for p in folder.iterdir() if p.is_dir() and pattern.match(p.name)]
    return sorted(found, key=lambda p: int(pattern.match(p.name)[1]))  # type: ignore[index]


def _one_plane(name: FileName) -> str:
    return (" (a plate field holds one plane: import the files of one, or project the "
            "z-stack: --z-projection max)" if name.plane else "")


def _grouped(images: list[Path], names: list[FileName],
             mask_of: Callable[[Path], Path | None], z_projection: str | None
             ) -> list[FieldFile]:
    """Group files of one channel, timepoint or plane by field (every field alike)."""
    if z_projection not in Z_PROJECTIONS:
        raise ValueError(f"z projection: expected one of {', '.join(map(str, Z_PROJECTIONS))}; "
                         f"got {z_projection!r}")
    for what, has in (("a channel", lambda n: n.channel is not None),
                      ("a timepoint", lambda n: n.timepoint is not None),
                      ("a plane", lambda n: bool(n.plane))):
        if any(map(has, names)) and not all(map(has, names)):
            with_it = next(p for p, n in zip(images, names, strict=True) if has(n))
            without = next(p for p, n in zip(images, names, strict=True) if not has(n))
            raise ValueError(f"{with_it.name} names {what} and {without.name} none: expected "
                             f"every file to name {what}, or none")
    timed = any(n.timepoint is not None for n in names)
    fields: dict[tuple[str, str, int], dict[tuple[int, str], Path]] = {}
    stacks: dict[Path, list[tuple[int, Path]]] = {}  # a slot's first file -> its planes
    for path, n in zip(images, names, strict=True):
        files = fields.setdefault((n.row, n.col, n.field), {})
        key = (n.timepoint or 0, n.channel or "")
        if key in files and not (n.plane and z_projection):
            at = "".join((f" timepoint {n.timepoint}" if n.timepoint is not None else "",
                          f" channel {n.channel}" if n.channel else ""))
            raise ValueError(f"{path.name} and {files[key].name} both map to well "
                             f"{n.row}/{n.col} field {n.field}{at}{_one_plane(n)}")
        plane = (channel_number(n.plane), path)
        if key in files:
            stacks[files[key]].append(plane)
        else:
            files[key] = path
            stacks[path] = [plane]
    (first_key, first), out = next(iter(fields.items())), []
    for (row, col, field), files in fields.items():
        if set(files) != set(first):
            t, channel = sorted(set(first) ^ set(files))[0]
            what = " at ".join(filter(None, (f"channel {channel}" if channel else "",
                                             f"timepoint {t}" if timed else "")))
            raise ValueError(f"well {row}/{col} field {field} and well {first_key[0]}/"
                             f"{first_key[1]} field {first_key[2]} differ: one has {what} and "
                             "the other not (every field needs the same channels and "
                             "timepoints)")
        ts = sorted({t for t, _ in files})
        channels = tuple(sorted({c for _, c in files}, key=channel_number))
        planes = {key: tuple(p for _, p in sorted(stacks[path])) for key, path in files.items()}
        by_t = tuple(tuple(planes[(t, c)][0] for c in channels) for t in ts)
        if len({len(p) for p in planes.values()}) > 1:
            raise ValueError(f"well {row}/{col} field {field}: its channels or timepoints have "
                             f"{' and '.join(sorted({str(len(p)) for p in planes.values()}))} "
                             "planes (a z-stack needs the same planes everywhere)")
        masks = [m for m in map(mask_of, (p for files_t in by_t for p in files_t))
                 if m is not None]
        if masks and len(by_t) > 1:
            raise ValueError(f"{masks[0].name}: label files of time-lapse fields are not "
                             "imported (move them out of the folder)")
        out.append(FieldFile(by_t[0][0], masks[0] if masks else None, row, col, field,
                             channel_files=by_t[0] if channels != ("",) else (),
                             channel_labels=channels if channels != ("",) else (),
                             timepoint_files=by_t if len(by_t) > 1 else (),
                             plane_files=tuple(p for p in planes.values() if len(p) > 1)))
    return sorted(out, key=lambda f: (len(f.row), f.row, int(f.col), f.field))
