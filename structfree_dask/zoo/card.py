"""Model cards: what a fine-tuned model is, how it was trained and how well it does.

A card is stored as ``card.json`` next to the model's ``weights.pth``. It is plain,
indented JSON a person can read; non-finite numbers are written as ``null``.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from .._provenance import software_versions, utc_now
from ..config import ORGANELLES, STRATEGIES, check_name
from .training.splits import Split

__all__ = [
    "CARD_VERSION",
    "NORMALIZATION",
    "ModelCard",
    "CardError",
    "check_compatible",
]

logger = logging.getLogger(__name__)

#: Version of the card format.
CARD_VERSION = 1
#: The normalization every zoo model is trained and run with.
NORMALIZATION: dict[str, Any] = {"method": "percentile", "lower": 1.0, "upper": 99.0,
                                 "scope": "per image and channel"}


class CardError(ValueError):
    """Raised when a model card is malformed or inconsistent."""


def json_safe(value: Any) -> Any:
    """JSON-safe copy: tuples to lists, non-finite floats to None, numpy scalars to Python."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class ModelCard:
    """Description of one fine-tuned model of the zoo.

    Attributes
    ----------
    model_id : str
        Unique id; also the model's folder name.
    cell_line : str
    organelle : str
        ``"nuclei"`` or ``"cyto"``.
    strategy : str
        ``"cw"`` (one training channel) or ``"mc"`` (several, each its own sample).
    channels : tuple of int
        Training channel indices in the source plate.
    channel_names : tuple of str
        Their names; models are matched to other plates by these names.
    base_model : str
        Name of the pretrained model fine-tuned.
    base_sha256 : str
        Its checksum (as :class:`~structfree_dask.backbones.ModelSpec`).
    diameter : float
        Mean cell diameter (px) of the training labels: the diameter to segment with.
    diam_mean : float
        The network's ``diam_mean``.
    split : Split
        Training / validation / test field ids, seed and fold.
    epochs_run, best_epoch : int
        Training epochs done; epoch whose weights were kept (0 = the base's).
    val_scores, test_scores : dict
        Scores of :func:`structfree_dask.evaluation.metrics.combine` on the validation and test
        fields (FA over the training channels).
    training : dict
        Hyper-parameters and losses (max_epochs, patience, lr, ...).
    source : dict
        Where the data came from (``plate``, ``gt`` label name).
    normalization : dict
    software : dict
        Versions of structfree_dask, cellpose and torch.
    created : str
        ISO 8601 UTC time.
    weights_sha256 : str
        Checksum of ``weights.pth`` (filled in by :meth:`Zoo.add`).
    version : int
        Card format version.

    Examples
    --------
    >>> card = ModelCard.example()
    >>> ModelCard.from_json(card.to_json()) == card
    True
    >>> card.val_f1, card.seed, card.fold
    (0.9, 0, None)
    """

    model_id: str
    cell_line: str
    organelle: str
    strategy: str
    channels: tuple[int, ...]
    channel_names: tuple[str, ...]
    base_model: str
    base_sha256: str
    diameter: float
    diam_mean: float
    split: Split
    epochs_run: int
    best_epoch: int
    val_scores: dict[str, Any] = field(default_factory=dict, hash=False)
    test_scores: dict[str, Any] = field(default_factory=dict, hash=False)
    training: dict[str, Any] = field(default_factory=dict, hash=False)
    source: dict[str, Any] = field(default_factory=dict, hash=False)
    normalization: dict[str, Any] = field(default_factory=lambda: dict(NORMALIZATION),
                                          hash=False)
    software: dict[str, str] = field(default_factory=software_versions, hash=False)
    created: str = field(default_factory=utc_now)
    weights_sha256: str = ""
    version: int = CARD_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(
            int(c) if isinstance(c, numbers.Integral) and not isinstance(c, bool) else c
            for c in self.channels))
        object.__setattr__(self, "channel_names", tuple(self.channel_names))
        self.validate()

    # ---------------------------------------------------------------- checks
    def validate(self) -> None:
        """Check the card's fields; raise :class:`CardError` naming what is wrong."""
        def bad(what: str) -> CardError:
            return CardError(f"model card {self.model_id!r}: {what}")

        try:
            check_name(self.model_id, "model_id")
        except (ValueError, TypeError) as err:
            raise CardError(str(err)) from None
        if not isinstance(self.cell_line, str) or not self.cell_line:
            raise bad(f"cell_line must be a non-empty string; got {self.cell_line!r}")
        if self.organelle not in ORGANELLES:
            raise bad(f"organelle must be one of {ORGANELLES}; got {self.organelle!r}")
        if self.strategy not in STRATEGIES:
            raise bad(f"strategy must be one of {STRATEGIES}; got {self.strategy!r}")
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                   for c in self.channels):
            raise bad(f"channels must be non-negative integers; got {list(self.channels)}")
        if len(set(self.channels)) != len(self.channels):
            raise bad(f"channels must be distinct; got {list(self.channels)}")
        if len(self.channel_names) != len(self.channels):
            raise bad(f"{len(self.channels)} channel(s) {list(self.channels)} but "
                      f"{len(self.channel_names)} name(s) {list(self.channel_names)}")
        if self.strategy == "cw" and len(self.channels) != 1:
            raise bad(f"a channel-wise ('cw') model has exactly one channel; got "
                      f"{list(self.channels)}")
        if self.strategy == "mc" and len(self.channels) < 2:
            raise bad(f"a multi-channel ('mc') model has at least two channels; got "
                      f"{list(self.channels)}")
        for name in ("diameter", "diam_mean"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise bad(f"{name} must be a number > 0; got {value!r}")
        if not isinstance(self.split, Split):
            raise bad(f"split must be a Split; got {type(self.split).__name__}")
        if not isinstance(self.epochs_run, int) or self.epochs_run < 0:
            raise bad(f"epochs_run must be an integer >= 0; got {self.epochs_run!r}")
        if not isinstance(self.best_epoch, int) or not 0 <= self.best_epoch <= self.epochs_run:
            raise bad(f"best_epoch must be an integer in 0..epochs_run ({self.epochs_run}); "
                      f"got {self.best_epoch!r}")
        for name in ("val_scores", "test_scores", "training", "source", "normalization",
                     "software"):
            if not isinstance(getattr(self, name), dict):
                raise bad(f"{name} must be a dict; got {type(getattr(self, name)).__name__}")

    # ---------------------------------------------------------------- views
    @property
    def seed(self) -> int:
        """Seed of the split (and of the training)."""
        return self.split.seed

    @property
    def fold(self) -> int | None:
        """Fold index of a k-fold split, None for a single split."""
        return self.split.fold

    @property
    def val_f1(self) -> float:
        """Validation F1 at IoU 0.5 (NaN when not scored)."""
        value = self.val_scores.get("f1")
        return math.nan if value is None else float(value)

    @property
    def test_f1(self) -> float:
        """Test F1 at IoU 0.5 (NaN when not scored)."""
        value = self.test_scores.get("f1")
        return math.nan if value is None else float(value)

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (the content of ``card.json``)."""
        out = asdict(self)
        out["split"] = self.split.to_dict()
        return json_safe(out)

    def to_json(self) -> str:
        """Return the card as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "card") -> ModelCard:
        """Build a card from :meth:`to_dict` output.

        Raises
        ------
        CardError
            Missing or unknown keys, values of the wrong kind, inconsistent fields.
        """
        if not isinstance(data, Mapping):
            raise CardError(f"{where}: expected a JSON object; got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - known)
        if missing or unknown:
            raise CardError(f"{where}: missing keys {missing}, unknown keys {unknown}; "
                            f"expected keys {sorted(known)}")
        values = dict(data)
        if int(values.get("version", CARD_VERSION)) > CARD_VERSION:
            raise CardError(f"{where}: card version {values['version']} is newer than this "
                            f"package's ({CARD_VERSION}); upgrade structfree_dask")
        try:
            values["split"] = Split.from_dict(values["split"])
            values["channels"] = tuple(int(c) for c in values["channels"])
            values["channel_names"] = tuple(str(c) for c in values["channel_names"])
            values["diameter"] = float(values["diameter"])
            values["diam_mean"] = float(values["diam_mean"])
        except (KeyError, TypeError, ValueError) as err:
            raise CardError(f"{where}: {type(err).__name__}: {err}") from None
        try:
            return cls(**values)
        except CardError as err:
            raise CardError(f"{where}: {err}") from None

    @classmethod
    def from_json(cls, text: str, *, where: str = "card") -> ModelCard:
        """Parse ``card.json`` text.

        Raises
        ------
        CardError
            If the text is not JSON or not a valid card (the message says which).
        """
        from ..io import JSONTextError, parse_json  # (io is heavy; cards are read rarely)

        try:
            data = parse_json(text, where)
        except JSONTextError as err:
            raise CardError(str(err)) from None
        return cls.from_dict(data, where=where)

    @classmethod
    def example(cls, **changes: Any) -> ModelCard:
        """Return a small valid card (docs, tests); ``changes`` override fields."""
        values: dict[str, Any] = dict(
            model_id="CL1-cyto-cw-c0-s0", cell_line="CL1", organelle="cyto", strategy="cw",
            channels=(0,), channel_names=("cyto-reporter",), base_model="generalist",
            base_sha256="0" * 16, diameter=20.0, diam_mean=30.0,
            split=Split(("a", "b", "c"), ("d",), ("e",), seed=0), epochs_run=10,
            best_epoch=7, val_scores={"f1": 0.9}, test_scores={"f1": 0.85},
            created="2025-01-01T00:00:00+00:00",
            software={"structfree_dask": "0", "cellpose": "3", "torch": "2"},
        )
        values.update(changes)
        return cls(**values)


def check_compatible(card: ModelCard, channel_names: Sequence[str]) -> tuple[int, ...]:
    """Find a card's training channels, by name, among a plate's channels.

    Parameters
    ----------
    card : ModelCard
    channel_names : sequence of str
        The plate's channel names, in plate order.

    Returns
    -------
    tuple of int
        Plate index of each of the card's channels (same order as ``card.channels``).

    Raises
    ------
    ValueError
        If a channel the model was trained on is not in the plate; the message lists
        the card's and the plate's channels.

    Examples
    --------
    >>> card = ModelCard.example()
    >>> check_compatible(card, ["ER", "cyto-reporter"])
    (1,)
    >>> check_compatible(card, ["DAPI", "ER"])
    Traceback (most recent call last):
    ...
    ValueError: model 'CL1-cyto-cw-c0-s0' was trained on channel(s) ['cyto-reporter'] ...
    """
    names = [str(n) for n in channel_names]
    missing = [n for n in card.channel_names if n not in names]
    if missing:
        raise ValueError(
            f"model {card.model_id!r} was trained on channel(s) {list(card.channel_names)} "
            f"(indices {list(card.channels)}) but the plate's channels are {names}; "
            f"missing: {missing}"
        )
    out = tuple(names.index(n) for n in card.channel_names)
    if out != card.channels:
        logger.info("model %s: channels %s are at plate indices %s", card.model_id,
                    list(card.channel_names), list(out))
    return out
