"""Run a job file: segment everything not yet done, then measure it; write a run record.

``run_job`` is safe to run again at any time: finished (field, timepoint) units are
skipped, timepoints appended to a growing time-lapse since the last run are done.
Every (plate, entry) pair of the job is one target of one stream of units
(:func:`~structfree_dask.engine.segment_many`): the cluster does not drain between plates.
Every run writes ``<records>/run-<UTC time>.json`` (what was done, skipped and failed;
time spent per stage; workers lost; software and model versions) and, unless the job
turns it off, Dask's performance report beside it. ``records`` is a folder or an object
store URL.

With ``cells`` in the job, each plate is then linked, measured, tracked and reported on
the same client (:mod:`.cells_step`); the record has a ``cells`` section per plate and
the reports are in ``<records>/run-<UTC time>-report-<plate name>/``. With ``screen``,
each plate's map is stored and its screen tables computed after that (:mod:`.screen_step`;
a ``screen`` section per plate).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..engine import FUSED, STAGES
from ..io import check_store, is_inside, is_url, join, upload, write_text
from ..runtime.progress import for_step
from .cells_step import (
    ReportPlace,
    check_plate,
    plate_section,
    report_folders,
    run_plate,
    section_problems,
)
from .schema import Job, SegmentTask
from .screen_step import add_to_report as add_screen_to_report
from .screen_step import check_plate as check_screen_plate
from .screen_step import plate_section as screen_section
from .screen_step import run_plate as run_screen_plate
from .screen_step import section_problems as screen_problems

__all__ = ["run_job", "task_config"]

logger = logging.getLogger(__name__)


def task_config(task: SegmentTask, plate: str) -> Any:
    """Return the :class:`~structfree_dask.config.SegmentationConfig` of a job entry."""
    from ..config import SegmentationConfig

    if not task.zoo:
        return SegmentationConfig(**task.settings)
    from ..zoo.use import config_from_zoo

    settings = dict(task.settings)
    organelle = settings.pop("organelle")
    channels = settings.pop("channels", None)
    return config_from_zoo(task.zoo, str(task.cell_line), organelle, plate,
                           channels=channels, **settings)


def _stage_times(stream: list[dict[str, Any]], fused_steps: dict[str, int],
                 fused_seconds: dict[str, float]) -> dict[str, dict[str, float]]:
    """Tasks and compute seconds per stage: the task stream's, plus fused units' steps.

    A fused unit (one task for a field of one region) is listed by its steps, each
    counted as the task it replaces (``fused`` says how many of a stage's tasks were such
    steps), not as a task of its own.
    """
    out: dict[str, dict[str, float]] = defaultdict(
        lambda: {"tasks": 0, "seconds": 0.0, "fused": 0})
    for rec in stream:
        key = rec.get("key")
        name = key[0] if isinstance(key, tuple) else str(key)
        stage = name.split("-", 1)[0]
        if stage == FUSED:
            continue
        for ss in rec.get("startstops", ()):
            if ss.get("action") == "compute":
                out[stage]["seconds"] += float(ss["stop"] - ss["start"])
        out[stage]["tasks"] += 1
    for stage, n in fused_steps.items():
        out[stage]["tasks"] += n
        out[stage]["fused"] += n
        out[stage]["seconds"] += fused_seconds.get(stage, 0.0)
    order = {s: i for i, s in enumerate(STAGES)}
    return {k: {"tasks": int(v["tasks"]), "seconds": round(v["seconds"], 3),
                "fused": int(v["fused"])}
            for k, v in sorted(out.items(), key=lambda kv: order.get(kv[0], 99))}


def _workers_lost(client: Any, since: float) -> list[dict[str, Any]]:
    from ..runtime.cluster import workers_lost

    return [{**lost, "at": _iso(lost["at"])} for lost in workers_lost(client, since)]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entry(plate: str, task: SegmentTask) -> dict[str, Any]:
    return {"plate": plate, "label": task.label_name, "organelle": task.organelle,
            "fusion": task.fusion, "done": [], "skipped": [], "failed": [], "cells": 0,
            "seconds": 0.0, "error": None}


def _target(entry: dict[str, Any], task: SegmentTask, plate: str) -> Any:
    """Return the entry's :class:`~structfree_dask.engine.Target` (None: error recorded)."""
    from ..engine import Target

    try:
        config = task_config(task, plate)
    except Exception as err:  # noqa: BLE001 - recorded; the other entries still run
        _entry_error(entry, err)
        return None
    entry["model"] = config.model_names()
    return Target(plate, config, list(task.wells) if task.wells else None, task.timepoints)


def _entry_error(entry: dict[str, Any], err: BaseException | str) -> None:
    entry["error"] = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    logger.error("%s labels/%s: %s", entry["plate"], entry["label"], entry["error"])


def _fill_entry(entry: dict[str, Any], result: Any) -> None:
    if result.error is not None:
        _entry_error(entry, result.error)
        return
    entry["done"] = [[p, t] for p, t in result.done]
    entry["skipped"] = [[p, t] for p, t in result.skipped]
    entry["failed"] = [[p, t, e] for p, t, e in result.failed]
    entry["cells"] = int(sum(result.cells.values()))
    entry["cut_cells"] = int(result.cut_cells)
    entry["seconds"] = round(result.seconds, 3)
    entry["model_sha256"] = result.model_sha256
    logger.info("%s labels/%s: %d done, %d skipped, %d failed", entry["plate"],
                entry["label"], len(result.done), len(result.skipped), len(result.failed))


def _run_entries(entries: list[tuple[dict[str, Any], Any]], client: Any,
                 progress: Callable[[int, int], None] | None) -> list[Any]:
    """Run every entry's target as one stream; fill the entries; return the results."""
    from ..engine import segment_many

    if not entries:
        return []
    try:
        results = segment_many([target for _, target in entries], client=client,
                               progress=for_step(progress, "segment"))
    except Exception as err:  # noqa: BLE001 - the stream itself failed: every entry says so
        for entry, _ in entries:
            _entry_error(entry, err)
        return []
    for (entry, _), result in zip(entries, results, strict=True):
        _fill_entry(entry, result)
    return results


def _check_records_outside(records: str, plates: list[str]) -> None:
    """Refuse a local records folder inside a local plate (run records are not the plate's)."""
    for plate in plates:
        if is_inside(records, plate):
            raise ValueError(f"records: the folder {records} is inside the plate {plate}; "
                             "run records and reports go outside the plates")


def run_job(job: Job, client: Any = None, *,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Segment (and measure) everything of a job not done yet; write and return the record.

    Parameters
    ----------
    job : Job
        From :func:`structfree_dask.jobs.schema.load_job`.
    client : distributed.Client, optional
        Default: the job's cluster (started here, closed at the end).
    progress : callable, optional
        ``progress(done, total)``: the (field, timepoint) units of the segmentation (every
        plate and entry as one stream), then of each plate's measuring.

    Returns
    -------
    dict
        The run record; ``status`` is ``"ok"`` when nothing failed. ``done``,
        ``skipped`` and ``failed`` count segmentation units; with ``cells`` in the job,
        ``cells`` has a section per plate (see :mod:`.cells_step`).
    """
    from .._provenance import software_versions
    from ..runtime.cluster import make_client, recording

    records = job.records  # a folder, or an object store URL
    check_store(records, write=True, must_exist=False)  # before a cluster starts
    started = time.time()
    stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%S%fZ")
    stem = f"run-{stamp}"
    record_path = join(records, f"{stem}.json")
    report_path = join(records, f"{stem}.html") if job.performance_report else None
    # Dask writes its report to a local file; one for a store is uploaded at the end
    scratch = tempfile.TemporaryDirectory() if report_path and is_url(records) else None
    local_report = str(Path(scratch.name) / "report.html") if scratch else report_path
    plates = job.plate_paths()
    record: dict[str, Any] = {
        "job": job.source, "started": _iso(started), "plates": plates, "entries": [],
        "software": software_versions(), "record": str(record_path),
        "performance_report": str(report_path) if report_path else None,
        "cluster": {"kind": job.cluster.kind, "address": job.cluster.address},
    }
    sections = [plate_section(plate, job.cells) for plate in plates] if job.cells else []
    if job.cells:
        record["cells"] = sections
    screens = [screen_section(plate, job) for plate in plates] if job.screen else []
    if job.screen:
        record["screen"] = screens
    problems = []
    if not plates:
        problems.append(f"no plate matches {list(job.plates)}")
    _check_records_outside(records, plates)
    if job.cells:
        for plate in plates:  # every check before the first write (and before a cluster)
            check_plate(job, plate)
    if job.screen:
        for plate in plates:
            check_screen_plate(job, plate)
    own = client is None and plates
    if own:  # an unreachable scheduler stops the run before anything is written
        client = make_client(job.cluster, profile=job.performance_report)
    try:
        if not is_url(records):
            Path(records).mkdir(parents=True, exist_ok=True)
        if client is not None:
            info = client.scheduler_info()
            record["cluster"].update({"scheduler": info.get("address"),
                                      "workers": len(info.get("workers", {})),
                                      "dashboard": client.dashboard_link})
        recorded = (recording(client, local_report, stream=True)
                    if client is not None else nullcontext([]))
        with recorded as stream:
            targets = []
            for plate in plates:
                for task in job.tasks:
                    entry = _entry(plate, task)
                    record["entries"].append(entry)
                    target = _target(entry, task, plate)
                    if target is not None:
                        targets.append((entry, target))
            results = _run_entries(targets, client, progress)
            folders = report_folders(stem, plates)
            for section, folder in zip(sections, folders[:len(sections)], strict=True):
                run_plate(job, section,
                          [e for e in record["entries"] if e["plate"] == section["plate"]],
                          client, ReportPlace(records, folder), progress)
            for i, screen in enumerate(screens):  # in plate order, as the cells sections
                run_screen_plate(job, screen, sections[i] if sections else None, client)
                if sections:  # the plate's report gets its screen pages
                    add_screen_to_report(job, screen, sections[i],
                                         ReportPlace(records, folders[i]))
        if client is not None:
            steps: dict[str, int] = defaultdict(int)
            seconds: dict[str, float] = defaultdict(float)
            for result in results:
                for stage, n in result.stage_steps.items():
                    steps[stage] += n
                    seconds[stage] += result.stage_seconds.get(stage, 0.0)
            record["stages"] = _stage_times(stream, steps, seconds)
            record["max_in_flight"] = max((r.max_in_flight for r in results), default=0)
            record["workers_lost"] = _workers_lost(client, started)
    finally:
        if scratch is not None:  # the performance report of a run whose records are a URL
            if Path(local_report).is_file():
                upload(local_report, report_path)
            scratch.cleanup()
        if own and client is not None:
            from ..runtime.cluster import close_client

            close_client(client)
    failed = problems + [f"{e['plate']} labels/{e['label']}: {e['error']}"
                         for e in record["entries"] if e["error"]]
    failed += [f"{e['plate']} {f[0] or '(image)'} t={f[1]} labels/{e['label']}: {f[2]}"
               for e in record["entries"] for f in e["failed"]]
    for section in sections:
        failed += section_problems(section)
    for screen in screens:
        failed += screen_problems(screen)
    record.update({
        "finished": _iso(time.time()), "seconds": round(time.time() - started, 3),
        "status": "failed" if failed else "ok", "problems": failed,
        "done": sum(len(e["done"]) for e in record["entries"]),
        "skipped": sum(len(e["skipped"]) for e in record["entries"]),
        "failed": sum(len(e["failed"]) + bool(e["error"]) for e in record["entries"]),
    })
    write_text(record_path, json.dumps(record, indent=2, default=str))
    logger.info("run record %s", record_path)
    return record
