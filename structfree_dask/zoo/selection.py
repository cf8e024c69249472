"""A zoo's selection, typed, and the one place it is turned into models.

:class:`Selection` is what ``<zoo>/selections/<cell_line>/<organelle>.json`` holds: the
chosen (training subset, evaluation subset) pair of a cell line and organelle, its
model(s), its scores and the score table it was chosen from. Channel-wise (``"cw"``)
and multi-channel (``"mc"``) selections look the same here: ``models`` maps every
evaluation channel to the model that segments it (MC: the same model for every channel).
:meth:`Selection.from_dict` reads the selection files written so far and
:meth:`Selection.to_dict` writes the same layout (``model_ids`` a ``{channel: id}`` dict
for CW, one id for MC), so older code reads the files written now.

:func:`structfree_dask.zoo.resolve.resolve` turns a selection into what a
segmentation needs: the channel names, the weights file of each channel's model, the
diameter and the flow and cell probability thresholds (:class:`ResolvedSelection`),
checking that a plate has the channels the models were trained on. ``segment --zoo``
(:func:`~structfree_dask.zoo.use.config_from_zoo`), the zoo report and the choice of the
thresholds all go through it.

The diameter is the mean of the models' training diameters (their cards' ``diameter``)
over the evaluation channels, each channel counted once: for CW the mean of its models',
for MC its one model's. It is the diameter the candidates were scored at
(:func:`~structfree_dask.zoo.scoring.scoring.score_candidates` rescales FA's masks by that
mean) and the thresholds were chosen at, so segmenting with the selection reproduces
the setting its validation F1 was measured in. A selection may carry its own
``diameter``, which then wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import limits
from ..config import DEFAULT_CELLPROB_THRESHOLD, DEFAULT_FLOW_THRESHOLD, ORGANELLES, STRATEGIES

__all__ = ["Selection", "as_selection"]

#: Keys a selection file must have (besides ``cell_line`` and ``organelle``).
REQUIRED_KEYS: tuple[str, ...] = ("model_ids", "eval_channels", "strategy", "val_f1")

# Optional keys with a typed field: (key, conversion). Written back when not None, or as
# null when the file had them as null (kept in ``extra``).
_OPTIONAL: dict[str, Any] = {
    "eval_channel_names": lambda v: tuple(str(n) for n in v),
    "train_channels": lambda v: tuple(int(c) for c in v),
    "train_channel_names": lambda v: tuple(str(n) for n in v),
    "val_f1_std": float,
    "test_f1": float,
    "test_f1_std": float,
    "fold": int,
    "n_folds": int,
    "seed": int,
    "diameter": float,
    "gt": str,
    "plate": str,
    "baseline": dict,
    "rule": str,
    "created": str,
    "flow_threshold_val_f1": dict,
    "cellprob_threshold_val_f1": dict,
}
_TYPED = ("cell_line", "organelle", *REQUIRED_KEYS, "flow_threshold", "cellprob_threshold",
          "candidates", *_OPTIONAL)


def _models(value: Any, strategy: str, eval_channels: tuple[int, ...]
            ) -> tuple[tuple[int, str], ...]:
    """``{channel: id}`` (a mapping, pairs, or one id for every channel) in channel order."""
    if isinstance(value, str):
        pairs = {c: value for c in eval_channels}
    elif isinstance(value, Mapping):
        pairs = {int(c): str(m) for c, m in value.items()}
    else:
        try:
            pairs = {int(c): str(m) for c, m in value}
        except (TypeError, ValueError):
            raise ValueError(f"models must map each evaluation channel to a model id; got "
                             f"{value!r}") from None
    if sorted(pairs) != sorted(eval_channels):
        raise ValueError(f"{strategy!r} selection: model_ids channels {sorted(pairs)} differ "
                         f"from eval_channels {sorted(eval_channels)}")
    if strategy == "mc" and len(set(pairs.values())) != 1:
        raise ValueError(f"an 'mc' selection names one model for all its channels; got "
                         f"{dict(sorted(pairs.items()))}")
    return tuple((c, pairs[c]) for c in eval_channels)


@dataclass(frozen=True)
class Selection:
    """The selected models of a cell line and organelle, as a zoo stores them.

    Attributes
    ----------
    cell_line, organelle : str
    strategy : str
        ``"cw"`` (one model per channel) or ``"mc"`` (one model for all channels).
    eval_channels : tuple of int
        The evaluation subset: channels (the cards' indices) whose flows are averaged.
    models : tuple of (int, str)
        ``(channel, model id)`` for every evaluation channel, in ``eval_channels`` order;
        MC names the same model for every channel. The constructor also takes a
        ``{channel: id}`` mapping or, for MC, one id. See :attr:`channel_models`.
    val_f1 : float
        Validation F1 of the pair (the mean over folds with k-fold CV).
    diameter : float or None
        Cell diameter to segment at; None (the default): the models' training diameter
        (see :func:`resolve`).
    flow_threshold : float
        Cellpose's flow-error threshold chosen with the selection (0.4 when none was).
    cellprob_threshold : float
        Cellpose's cell probability threshold, in logits, chosen with the selection (0
        when none was).
    eval_channel_names, train_channels, train_channel_names : tuple or None
        Names of the evaluation channels; the training subset (CW: the evaluation
        channels) and its names.
    val_f1_std, test_f1, test_f1_std : float or None
        Spread over folds and test F1 (None where not scored).
    fold, n_folds, seed : int or None
        Fold of the selected models (None: one split), number of folds, split seed.
    gt, plate : str or None
        Ground-truth label image and plate the zoo was built from.
    baseline : dict or None
        The base model (``model``, ``path``, ``sha256``) scored as the Vanilla baseline.
    rule, created : str or None
        How the pair was chosen; when (UTC, ISO 8601).
    flow_threshold_val_f1, cellprob_threshold_val_f1 : dict or None
        ``{threshold as text: validation F1}`` of the thresholds' choice: F1 along each
        threshold with the other at its chosen value.
    candidates : tuple of dict
        The score table the pair was chosen from (Vanilla rows included).
    extra : dict
        Other keys of the file, kept as they were.

    Fields holding dicts are not part of the hash, so a Selection can be a dict key.

    Examples
    --------
    >>> sel = Selection.from_dict({"cell_line": "CL1", "organelle": "cyto",
    ...                            "strategy": "mc", "eval_channels": [0, 2],
    ...                            "model_ids": "CL1-cyto-mc-c0_1_2-s0", "val_f1": 0.8})
    >>> sel.channel_models
    {0: 'CL1-cyto-mc-c0_1_2-s0', 2: 'CL1-cyto-mc-c0_1_2-s0'}
    >>> sel.model_ids, sel.flow_threshold, sel.cellprob_threshold
    (('CL1-cyto-mc-c0_1_2-s0',), 0.4, 0.0)
    >>> d = sel.to_dict()
    >>> d["model_ids"], d["eval_channels"]
    ('CL1-cyto-mc-c0_1_2-s0', [0, 2])
    >>> Selection.from_dict(d) == sel
    True
    >>> cw = Selection("CL1", "cyto", "cw", (0, 1), {1: "cw1", 0: "cw0"}, val_f1=0.9)
    >>> cw.models, cw.to_dict()["model_ids"]
    (((0, 'cw0'), (1, 'cw1')), {0: 'cw0', 1: 'cw1'})
    >>> Selection.from_dict({**cw.to_dict(), "model_ids": {"0": "cw0", "1": "cw1"}}) == cw
    True
    """

    cell_line: str
    organelle: str
    strategy: str
    eval_channels: tuple[int, ...]
    models: tuple[tuple[int, str], ...]
    val_f1: float
    diameter: float | None = None
    flow_threshold: float = DEFAULT_FLOW_THRESHOLD
    cellprob_threshold: float = DEFAULT_CELLPROB_THRESHOLD
    eval_channel_names: tuple[str, ...] | None = None
    train_channels: tuple[int, ...] | None = None
    train_channel_names: tuple[str, ...] | None = None
    val_f1_std: float | None = None
    test_f1: float | None = None
    test_f1_std: float | None = None
    fold: int | None = None
    n_folds: int | None = None
    seed: int | None = None
    gt: str | None = None
    plate: str | None = None
    baseline: dict[str, Any] | None = field(default=None, hash=False)
    rule: str | None = None
    created: str | None = None
    flow_threshold_val_f1: dict[str, Any] | None = field(default=None, hash=False)
    cellprob_threshold_val_f1: dict[str, Any] | None = field(default=None, hash=False)
    candidates: tuple[dict[str, Any], ...] = field(default=(), hash=False, repr=False)
    extra: dict[str, Any] = field(default_factory=dict, hash=False, repr=False)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.cell_line, str) or not self.cell_line:
            raise ValueError(f"selection cell_line must be a non-empty string; got "
                             f"{self.cell_line!r}")
        if self.organelle not in ORGANELLES:
            raise ValueError(f"organelle must be one of {ORGANELLES}; got {self.organelle!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"selection strategy must be one of {STRATEGIES}; got "
                             f"{self.strategy!r}")
        try:
            ev = tuple(int(c) for c in self.eval_channels)
            put("val_f1", float(self.val_f1))
        except (TypeError, ValueError):
            raise ValueError(f"selection eval_channels must be channel indices and val_f1 a "
                             f"number; got {self.eval_channels!r} and {self.val_f1!r}") from None
        if not ev or len(set(ev)) != len(ev):
            raise ValueError(f"selection eval_channels must be distinct and non-empty; got "
                             f"{list(ev)}")
        put("eval_channels", ev)
        put("models", _models(self.models, self.strategy, ev))
        put("flow_threshold", float(self.flow_threshold))
        if not self.flow_threshold >= 0:
            raise ValueError(f"flow_threshold must be >= 0; got {self.flow_threshold}")
        put("cellprob_threshold", float(self.cellprob_threshold))
        low, high = limits.CELLPROB_THRESHOLD
        if not low <= self.cellprob_threshold <= high:
            raise ValueError(f"cellprob_threshold must be from {low:g} to {high:g}; got "
                             f"{self.cellprob_threshold}")
        if self.diameter is not None and not float(self.diameter) > 0:
            raise ValueError(f"diameter must be > 0 px; got {self.diameter}")
        for key, convert in _OPTIONAL.items():
            value = getattr(self, key)
            if value is not None:
                put(key, convert(value))
        put("candidates", tuple(dict(r) for r in self.candidates))
        put("extra", dict(self.extra))

    # ------------------------------------------------------------------ views
    @property
    def channel_models(self) -> dict[int, str]:
        """``{channel: model id}`` of every evaluation channel (a new dict)."""
        return dict(self.models)

    @property
    def model_ids(self) -> tuple[str, ...]:
        """The distinct model ids, in evaluation-channel order (one for MC)."""
        return tuple(dict.fromkeys(m for _, m in self.models))

    def model_for(self, channel: int) -> str:
        """Return the id of the model that segments an evaluation channel."""
        try:
            return dict(self.models)[int(channel)]
        except KeyError:
            raise KeyError(f"channel {channel} is not an evaluation channel of the selection "
                           f"for {self.cell_line}/{self.organelle}: "
                           f"{list(self.eval_channels)}") from None

    @property
    def pair_key(self) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
        """(strategy, training channels, evaluation channels), as score rows are keyed.

        Selections that record no training channels (written by ``select_models``) train
        on their evaluation channels (true for CW).
        """
        train = self.train_channels if self.train_channels is not None else self.eval_channels
        return (self.strategy, tuple(train), tuple(self.eval_channels))

    @property
    def vanilla(self) -> dict[str, Any] | None:
        """The Vanilla baseline on the selected evaluation subset, pooled over folds.

        A row of :func:`~structfree_dask.zoo.scoring.scoring.summarize_scores` (``val_f1``,
        ``test_f1``, their std, ``n_folds``, ...) from :attr:`candidates`; None when the
        selection has no Vanilla row for its subset.
        """
        from .scoring.data import VANILLA, summarize_scores  # (scoring: loaded when used)

        rows = [r for r in self.candidates if r.get("strategy") == VANILLA
                and tuple(int(c) for c in r.get("eval_channels", ())) == self.eval_channels]
        return summarize_scores(rows)[0] if rows else None

    # ------------------------------------------------------------------ JSON layout
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selection:
        """Read a selection as stored in a zoo's selection file.

        ``model_ids`` is ``{channel: id}`` (channels as ints or as the text JSON makes of
        them) or, for MC, one id (or a ``{channel: id}`` naming one model). A missing
        ``flow_threshold`` is Cellpose's 0.4.

        Raises
        ------
        KeyError
            A required key is missing (the message lists them).
        ValueError
            Inconsistent values (unknown strategy, model ids that do not match the
            evaluation channels, ...).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a selection is a JSON object; got {type(data).__name__}")
        where = f"{data.get('cell_line', '?')}/{data.get('organelle', '?')}"
        missing = [k for k in ("cell_line", "organelle", *REQUIRED_KEYS) if k not in data]
        if missing:
            raise KeyError(f"selection for {where} lacks {missing}; expected keys "
                           f"{list(REQUIRED_KEYS)} (and 'candidates')")
        strategy, ids = data["strategy"], data["model_ids"]
        if strategy == "cw" and not isinstance(ids, Mapping):
            raise ValueError("a 'cw' selection maps each evaluation channel to its model: "
                             f"model_ids must be {{channel: model_id}}; got {ids!r}")
        if strategy == "mc" and not isinstance(ids, str | Mapping):
            raise ValueError(f"an 'mc' selection names one model: model_ids must be a "
                             f"model id; got {ids!r}")
        optional: dict[str, Any] = {}
        extra = {k: v for k, v in data.items() if k not in _TYPED}
        for key in _OPTIONAL:
            if data.get(key) is not None:
                optional[key] = data[key]
            elif key in data:  # written as null: kept so that it is written back as null
                extra[key] = None
        threshold, cellprob = data.get("flow_threshold"), data.get("cellprob_threshold")
        return cls(
            cell_line=data["cell_line"], organelle=data["organelle"], strategy=strategy,
            eval_channels=tuple(data["eval_channels"]), models=ids,
            val_f1=data["val_f1"],
            flow_threshold=DEFAULT_FLOW_THRESHOLD if threshold is None else threshold,
            cellprob_threshold=DEFAULT_CELLPROB_THRESHOLD if cellprob is None else cellprob,
            candidates=tuple(data.get("candidates") or ()), extra=extra, **optional)

    def to_dict(self) -> dict[str, Any]:
        """Return the selection in the layout of the zoo's selection files.

        ``model_ids`` is ``{channel: id}`` for CW and one id for MC, channels and names
        are lists; optional entries that are None are left out (or written as null when
        the file they were read from had them so). ``json.dumps`` of the result (after
        :func:`~structfree_dask.zoo.card.json_safe` for NaN) is what a zoo writes.
        """
        out: dict[str, Any] = dict(self.extra)
        ids: Any = self.channel_models if self.strategy == "cw" else self.model_ids[0]
        out.update({
            "cell_line": self.cell_line, "organelle": self.organelle,
            "strategy": self.strategy, "eval_channels": list(self.eval_channels),
            "model_ids": ids, "val_f1": self.val_f1, "flow_threshold": self.flow_threshold,
            "cellprob_threshold": self.cellprob_threshold,
        })
        for key in _OPTIONAL:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        out["candidates"] = [dict(r) for r in self.candidates]
        return out


def as_selection(value: Selection | Mapping[str, Any]) -> Selection:
    """Return a :class:`Selection` (a mapping is read with :meth:`Selection.from_dict`)."""
    return value if isinstance(value, Selection) else Selection.from_dict(value)
