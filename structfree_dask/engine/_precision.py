"""Where ``precision: auto`` is resolved for a run on a cluster: on the workers.

``auto`` means the precision the hardware that runs the network computes fast: fp16 on a
CUDA GPU, bf16 on a CPU with native bf16, fp32 elsewhere
(:func:`~structfree_dask.backbones.resolve_precision`). The machine that starts a run is
not always that hardware: a login node without a GPU drives GPU workers, a laptop drives
a cluster of other CPUs. So a run on a given cluster asks its workers
(:func:`cluster_precision`); every worker then runs at the one precision agreed
(:func:`agreed_precision`), which the label image records.

Examples
--------
>>> agreed_precision({"tcp://a:1": "fp16", "tcp://b:1": "fp16"})
'fp16'
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["precision_here", "agreed_precision", "cluster_precision", "QUIET_WAIT"]

#: Seconds :func:`cluster_precision` waits for a first worker before it says so.
QUIET_WAIT = 10.0


def precision_here(asked: str) -> str:
    """Return what ``asked`` resolves to on this process's device (run on a worker).

    The device is the one the worker's tasks use (a GPU when the worker has one), and
    torch is configured for the worker as its first task would do it.
    """
    from ..backbones import resolve_precision
    from ._tasks import worker_device

    return resolve_precision(asked, worker_device())


async def _answer(asked: str) -> str:
    """:func:`precision_here` off the worker's event loop (importing torch takes a second)."""
    import asyncio

    return await asyncio.to_thread(precision_here, asked)


def agreed_precision(answers: Mapping[str, str]) -> str:
    """Return one precision for every worker from what each resolved.

    The workers' own precision when they all agree; otherwise fp32 (which every device
    computes), with a warning: a field's labels must not depend on which worker ran it.

    Examples
    --------
    >>> agreed_precision({"tcp://a:1": "bf16", "tcp://b:1": "fp16"})
    'fp32'
    """
    kinds = Counter(answers.values())
    if not kinds:
        raise ValueError("no worker's precision to agree on")
    if len(kinds) == 1:
        return next(iter(kinds))
    said = ", ".join(f"{p} on {n} worker(s)" for p, n in sorted(kinds.items()))
    logger.warning("precision auto: the workers differ (%s); all run fp32 so that a field's "
                   "labels do not depend on the worker that ran it. Name a precision "
                   "(--precision) to run another", said)
    return "fp32"


def cluster_precision(client: Any, asked: str = "auto") -> str | None:
    """Return what ``asked`` resolves to on the workers of ``client``'s cluster.

    Waits for a first worker where none is connected yet (no unit can start before one
    is). A worker that fails to answer is left out (its tasks would fail on their own,
    and be reported per unit).

    Returns
    -------
    str or None
        :func:`agreed_precision` of the workers' answers; None where no worker answered.
    """
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=QUIET_WAIT)
        except TimeoutError:  # said once, then waited for as long as it takes
            logger.warning("no worker after %g s; waiting for the first one (precision %s "
                           "is resolved on the workers; SLURM jobs still queued?)",
                           QUIET_WAIT, asked)
            client.wait_for_workers(1)
    answers = client.run(_answer, asked, on_error="return")
    said = {w: p for w, p in answers.items() if isinstance(p, str)}
    for worker, err in answers.items():
        if not isinstance(err, str):
            logger.warning("worker %s could not resolve precision %s (%s: %s); left out",
                           worker, asked, type(err).__name__, err)
    if not said:
        return None
    return agreed_precision(said)
