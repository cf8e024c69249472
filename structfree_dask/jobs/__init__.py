"""Scheduled runs: job files (:mod:`.schema`) and running them (:mod:`.runner`).

Public names are imported from their module on first use, so that reading a job file
does not import the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import (
        client_for,
        run_job,
        task_config,
    )
    from .schema import (
        JOB_VERSION,
        ClusterSpec,
        Job,
        JobError,
        SegmentTask,
        load_job,
        parse_job,
    )

#: Public name -> submodule defining it (imported on first use).
_SOURCES: dict[str, str] = {
    "JobError": "schema",
    "Job": "schema",
    "SegmentTask": "schema",
    "ClusterSpec": "schema",
    "load_job": "schema",
    "parse_job": "schema",
    "JOB_VERSION": "schema",
    "run_job": "runner",
    "client_for": "runner",
    "task_config": "runner",
}

__all__ = [
    "JobError",
    "Job",
    "SegmentTask",
    "ClusterSpec",
    "load_job",
    "parse_job",
    "JOB_VERSION",
    "run_job",
    "client_for",
    "task_config",
]


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first use."""
    try:
        source = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{source}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
