"""Scheduled runs: job files (:mod:`.schema`) and running them (:mod:`.runner`).

Public names are imported from their module on first use (``lazy_loader``), so that
reading a job file does not import the engine.
"""

from __future__ import annotations

import lazy_loader

#: Submodule -> the public names it defines (imported on first use).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "schema": [
        "JobError", "Job", "SegmentTask", "load_job", "parse_job", "JOB_VERSION",
    ],
    "runner": ["run_job", "task_config"],
})
