"""A model zoo on disk: one folder per model, one selection file per (cell line, organelle).

Layout::

    <zoo>/
      models/<model_id>/weights.pth     torch.save(state_dict) of a CPnet
      models/<model_id>/card.json       the ModelCard
      selections/<cell_line>/<organelle>.json

Models are added atomically (written to a hidden folder, then renamed), so tasks on
several workers can add different models to the same zoo at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..backbones import file_sha256
from ..config import ORGANELLES, check_name
from .card import CardError, ModelCard, json_safe
from .selection import Selection

__all__ = ["Zoo", "WEIGHTS_FILE", "CARD_FILE"]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.pth"
CARD_FILE = "card.json"


class Zoo:
    """A folder of fine-tuned models with their cards and selections.

    Parameters
    ----------
    path : str or Path
        The zoo folder (created when missing).

    Examples
    --------
    >>> import tempfile
    >>> zoo = Zoo(tempfile.mkdtemp())
    >>> zoo.cards(), zoo.table()
    ([], [])
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"zoo path {self.path} exists and is not a folder")
        (self.path / "models").mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Zoo({str(self.path)!r})"

    # ---------------------------------------------------------------- models
    def model_dir(self, model_id: str) -> Path:
        """Folder of a model (whether or not it exists)."""
        return self.path / "models" / check_name(model_id, "model_id")

    def weights_path(self, model_id: str) -> Path:
        """Weights file of a model in the zoo.

        Raises
        ------
        KeyError
            If the zoo has no such model.
        """
        self._require(model_id)
        return self.model_dir(model_id) / WEIGHTS_FILE

    def ids(self) -> list[str]:
        """Ids of the models in the zoo, sorted."""
        root = self.path / "models"
        return sorted(p.name for p in root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / CARD_FILE).is_file())

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and model_id in self.ids()

    def _require(self, model_id: str) -> None:
        if model_id not in self:
            ids = self.ids()
            listing = ", ".join(ids[:20]) + (" ..." if len(ids) > 20 else "")
            raise KeyError(f"model {model_id!r} is not in the zoo {self.path}; "
                           f"it has {len(ids)} model(s): {listing or 'none'}")

    def add(self, card: ModelCard, weights_path: str | Path, *,
            overwrite: bool = False) -> ModelCard:
        """Copy weights into the zoo with their card; return the stored card.

        The stored card gets ``weights_sha256``. The weights must load as a Cellpose
        network whose ``diam_mean`` is the card's.

        Parameters
        ----------
        card : ModelCard
        weights_path : str or Path
        overwrite : bool
            Replace a model of the same id.

        Raises
        ------
        FileExistsError
            If the model exists and ``overwrite`` is False.
        FileNotFoundError
            If the weights file does not exist.
        ValueError
            If the weights' ``diam_mean`` is not the card's.
        """
        from ..backbones import resolve_model

        src = Path(weights_path)
        if not src.is_file():
            raise FileNotFoundError(f"weights file {src} of model {card.model_id!r} not found")
        target = self.model_dir(card.model_id)
        if target.exists() and not overwrite:
            raise FileExistsError(f"model {card.model_id!r} already exists in {self.path}; "
                                  "pass overwrite=True to replace it")
        spec = resolve_model(src)
        if not math.isclose(spec.diam_mean, card.diam_mean, rel_tol=1e-6):
            raise ValueError(f"weights {src} have diam_mean {spec.diam_mean}; the card of "
                             f"{card.model_id!r} says {card.diam_mean}")
        tmp = self.path / "models" / f".tmp-{card.model_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            shutil.copyfile(src, tmp / WEIGHTS_FILE)
            stored = replace(card, weights_sha256=file_sha256(tmp / WEIGHTS_FILE))
            (tmp / CARD_FILE).write_text(stored.to_json())
            if target.exists():
                old = target.with_name(f".old-{card.model_id}-{uuid.uuid4().hex[:8]}")
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("added model %s to %s", card.model_id, self.path)
        return stored

    def get(self, model_id: str) -> ModelCard:
        """Read a model's card.

        Raises
        ------
        KeyError
            If the zoo has no such model (the message lists the ids there are).
        CardError
            If its ``card.json`` does not parse.
        """
        self._require(model_id)
        path = self.model_dir(model_id) / CARD_FILE
        card = ModelCard.from_json(path.read_text(), where=str(path))
        if card.model_id != model_id:
            raise CardError(f"{path}: card says model_id {card.model_id!r} but its folder "
                            f"is {model_id!r}")
        return card

    def cards(self, cell_line: str | None = None, organelle: str | None = None, *,
              strategy: str | None = None) -> list[ModelCard]:
        """Cards of the zoo's models, optionally of one cell line / organelle / strategy.

        Raises
        ------
        CardError
            If a card does not parse (the message names the file).
        """
        out = []
        for model_id in self.ids():
            card = self.get(model_id)
            if cell_line is not None and card.cell_line != cell_line:
                continue
            if organelle is not None and card.organelle != organelle:
                continue
            if strategy is not None and card.strategy != strategy:
                continue
            out.append(card)
        return out

    def table(self, cell_line: str | None = None,
              organelle: str | None = None) -> list[dict[str, Any]]:
        """One flat row per model, for printing.

        Returns
        -------
        list of dict
            Keys ``model_id``, ``cell_line``, ``organelle``, ``strategy``,
            ``channels`` (names joined by ``+``), ``fold``, ``seed``, ``epochs``,
            ``best_epoch``, ``val_f1``, ``test_f1``, ``created``.
        """
        return [
            {
                "model_id": c.model_id, "cell_line": c.cell_line, "organelle": c.organelle,
                "strategy": c.strategy, "channels": "+".join(c.channel_names),
                "fold": c.fold, "seed": c.seed, "epochs": c.epochs_run,
                "best_epoch": c.best_epoch, "val_f1": c.val_f1, "test_f1": c.test_f1,
                "created": c.created,
            }
            for c in self.cards(cell_line, organelle)
        ]

    # ---------------------------------------------------------------- selections
    def _selection_path(self, cell_line: str, organelle: str) -> Path:
        check_name(cell_line, "cell line")
        if organelle not in ORGANELLES:
            raise ValueError(f"organelle must be one of {ORGANELLES}; got {organelle!r}")
        return self.path / "selections" / cell_line / f"{organelle}.json"

    def _check_selection(self, cell_line: str, organelle: str,
                         selection: Selection | Mapping[str, Any]) -> Selection:
        if isinstance(selection, Selection):
            if (selection.cell_line, selection.organelle) != (cell_line, organelle):
                raise ValueError(f"the selection is for {selection.cell_line}/"
                                 f"{selection.organelle}, not {cell_line}/{organelle}")
            sel = selection
        else:
            sel = Selection.from_dict({**selection, "cell_line": cell_line,
                                       "organelle": organelle})
        for model_id in sel.model_ids:
            card = self.get(model_id)
            if (card.cell_line, card.organelle) != (cell_line, organelle):
                raise ValueError(f"model {model_id!r} is for {card.cell_line}/{card.organelle}, "
                                 f"not {cell_line}/{organelle}")
            if card.strategy != sel.strategy:
                raise ValueError(f"model {model_id!r} is a {card.strategy!r} model; the "
                                 f"selection's strategy is {sel.strategy!r}")
        if sel.strategy == "cw":
            for c, model_id in sel.models:
                if self.get(model_id).channels != (c,):
                    raise ValueError(f"model {model_id!r} was trained on channel(s) "
                                     f"{list(self.get(model_id).channels)}, not channel {c}")
        else:
            [model_id] = sel.model_ids
            trained = self.get(model_id).channels
            extra = sorted(set(sel.eval_channels) - set(trained))
            if extra:
                raise ValueError(f"model {model_id!r} was trained on channels {list(trained)}; "
                                 f"eval_channels {list(sel.eval_channels)} include {extra}")
        return sel

    def set_selection(self, cell_line: str, organelle: str,
                      selection: Selection | Mapping[str, Any]) -> Selection:
        """Write the selected model(s) of a cell line and organelle.

        Parameters
        ----------
        cell_line, organelle : str
        selection : Selection or mapping
            A :class:`~structfree_dask.zoo.selection.Selection` of this cell line and
            organelle, or its dict form: ``model_ids`` (``{channel: model_id}`` for
            ``"cw"``, one id for ``"mc"``), ``eval_channels``, ``strategy``, ``val_f1``
            and optionally ``candidates`` (the score table) and the other entries of
            :meth:`Selection.to_dict <structfree_dask.zoo.selection.Selection.to_dict>`.

        Returns
        -------
        Selection
            The selection as stored (read back).

        Raises
        ------
        KeyError
            Missing keys, or a model id not in the zoo.
        ValueError
            Inconsistent selection (models of another cell line, organelle, strategy or
            channels).
        """
        path = self._selection_path(cell_line, organelle)
        checked = self._check_selection(cell_line, organelle, selection)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(json_safe(checked.to_dict()), indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
        logger.info("selection for %s/%s: %s %s on channels %s (val F1 %.3f)", cell_line,
                    organelle, checked.strategy, checked.channel_models,
                    list(checked.eval_channels), checked.val_f1)
        return self.selection(cell_line, organelle)

    def selection(self, cell_line: str, organelle: str) -> Selection:
        """Read the selection of a cell line and organelle.

        Raises
        ------
        KeyError
            If none was set (the message lists the selections there are), or the file
            lacks a required entry.
        ValueError
            If the file does not parse, or its entries are inconsistent.
        """
        path = self._selection_path(cell_line, organelle)
        if not path.is_file():
            have = sorted(f"{p.parent.name}/{p.stem}"
                          for p in (self.path / "selections").glob("*/*.json"))
            raise KeyError(f"no selection for {cell_line}/{organelle} in {self.path}; "
                           f"selections: {', '.join(have) or 'none'}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"selection file {path} is not valid JSON: {err}") from None
        try:
            return Selection.from_dict(data)
        except KeyError as err:
            raise KeyError(f"selection file {path}: {err.args[0]}") from None
        except ValueError as err:
            raise ValueError(f"selection file {path}: {err}") from None
