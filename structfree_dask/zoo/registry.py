"""A model zoo on disk: one folder per model, one selection file per (cell line, organelle).

Layout::

    <zoo>/
      models/<model_id>/weights.pth     torch.save(state_dict) of a CPnet
      models/<model_id>/card.json       the ModelCard
      selections/<cell_line>/<organelle>.json

Models are added atomically (written to a hidden folder, then renamed), so tasks on
several workers can add different models to the same zoo at once.

A zoo may also be the URL of an object store (``s3://bucket/zoo``, any fsspec
protocol): the same layout, read and written through the store's API, so workers need
no shared filesystem. A store has no atomic rename, so a model's weights are written
first and its card last: a model counts as in the zoo (:meth:`Zoo.ids`) only once its
card is there, and replacing a model deletes its card first. Cellpose needs a local
weights file; :meth:`Zoo.local_weights` (and every process that loads weights at a URL,
see :func:`~structfree_dask.backbones.local_weights`) keeps a checked local copy.
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
from ..io import filesystem, is_url, join, local_copy, parse_json, redact
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
        The zoo folder (created when missing), or the URL of a zoo in an object store
        (``s3://bucket/zoo``; nothing is written until a model is added). ``path`` is
        then a :class:`~pathlib.Path` for a folder, the URL (a ``str``) for a store.

    Examples
    --------
    >>> import tempfile
    >>> zoo = Zoo(tempfile.mkdtemp())
    >>> zoo.cards(), zoo.table()
    ([], [])
    """

    path: Path | str

    def __init__(self, path: str | Path) -> None:
        self._fs: Any = None
        if is_url(path):
            self.path = str(path).rstrip("/")
            self._fs, self._root = filesystem(self.path)
            return
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"zoo path {self.path} exists and is not a folder")
        # nothing is created until a model or selection is written: reading a folder as a
        # zoo (zoo list) leaves it as it is

    def __repr__(self) -> str:
        return f"Zoo({self.where!r})"

    @property
    def is_url(self) -> bool:
        """True for a zoo in an object store."""
        return self._fs is not None

    @property
    def where(self) -> str:
        """The zoo's location for messages (a URL without secrets)."""
        return redact(self.path)

    # ---------------------------------------------------------------- storage
    def _loc(self, *parts: str) -> Path | str:
        """Return a location in the zoo: a Path in a folder, a URL in a store."""
        if isinstance(self.path, Path):
            return self.path.joinpath(*parts)
        return join(self.path, *parts)

    def _key(self, loc: Path | str) -> str:
        """Return the store's path of a URL location."""
        return f"{self._root.rstrip('/')}/{str(loc)[len(self.path):].lstrip('/')}"

    def _is_file(self, loc: Path | str) -> bool:
        if isinstance(loc, Path):
            return loc.is_file()
        key = self._key(loc)
        self._fs.invalidate_cache(key)
        return bool(self._fs.isfile(key))

    def _read_text(self, loc: Path | str) -> str:
        if isinstance(loc, Path):
            return loc.read_text()
        return bytes(self._fs.cat_file(self._key(loc))).decode("utf-8")

    def _glob(self, *parts: str) -> list[tuple[str, ...]]:
        """Return the relative parts of the zoo's files that match a pattern of parts."""
        if isinstance(self.path, Path):
            return [p.relative_to(self.path).parts for p in self.path.glob("/".join(parts))]
        self._fs.invalidate_cache(self._root)
        pattern = f"{self._root.rstrip('/')}/{'/'.join(parts)}"
        n = len(self._root.rstrip("/").split("/"))
        return [tuple(str(k).split("/")[n:]) for k in self._fs.glob(pattern)]

    # ---------------------------------------------------------------- models
    def model_dir(self, model_id: str) -> Path | str:
        """Folder of a model (whether or not it exists); a URL in a store."""
        return self._loc("models", check_name(model_id, "model_id"))

    def weights_path(self, model_id: str) -> Path | str:
        """Weights file of a model in the zoo (a URL in a store: see :meth:`local_weights`).

        Raises
        ------
        KeyError
            If the zoo has no such model.
        FileNotFoundError
            If a zoo on disk has the model's card but not its weights (removed by hand);
            in a store, :meth:`check_weights` asks the store.
        """
        self._require(model_id)
        path = self._loc("models", model_id, WEIGHTS_FILE)
        if isinstance(path, Path) and not path.is_file():
            raise self._no_weights(model_id, path)
        return path

    def check_weights(self, model_id: str) -> None:
        """Check that a model's weights file is there (one request in a store).

        Raises
        ------
        KeyError
            If the zoo has no such model.
        FileNotFoundError
            If the model has a card but no weights file.
        """
        path = self.weights_path(model_id)
        if not isinstance(path, Path) and not self._is_file(path):
            raise self._no_weights(model_id, path)

    def _no_weights(self, model_id: str, path: Path | str) -> FileNotFoundError:
        return FileNotFoundError(
            f"model {model_id!r} in the zoo {self.where} has a card but no weights file "
            f"({redact(path)}): add the model again (Zoo.add, or `zoo build` with --overwrite) "
            "or select another")

    def local_weights(self, model_id: str) -> Path:
        """Return a local weights file of a model: its own, or a checked copy from a store.

        The copy is kept in the per-user cache (:func:`~structfree_dask.io.local_copy`),
        named by the card's ``weights_sha256``, downloaded once and checked against it.

        Raises
        ------
        KeyError
            If the zoo has no such model.
        ValueError
            If the weights in the store do not match their card's checksum.
        """
        path = self.weights_path(model_id)
        if isinstance(path, Path):
            return path
        return local_copy(path, self.get(model_id).weights_sha256)

    def ids(self) -> list[str]:
        """Ids of the models in the zoo (those with a card), sorted."""
        if isinstance(self.path, Path):
            root = self.path / "models"
            if not root.is_dir():
                return []
            return sorted(p.name for p in root.iterdir() if p.is_dir()
                          and not p.name.startswith(".") and (p / CARD_FILE).is_file())
        return sorted({parts[1] for parts in self._glob("models", "*", CARD_FILE)
                       if not parts[1].startswith(".")})

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and model_id in self.ids()

    def _require(self, model_id: str) -> None:
        if model_id not in self:
            ids = self.ids()
            listing = ", ".join(ids[:20]) + (" ..." if len(ids) > 20 else "")
            raise KeyError(f"model {model_id!r} is not in the zoo {self.where}; "
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
        there = (target.exists() if isinstance(target, Path)
                 else self._is_file(self._loc("models", card.model_id, CARD_FILE)))
        if there and not overwrite:
            raise FileExistsError(f"model {card.model_id!r} already exists in {self.where}; "
                                  "pass overwrite=True to replace it")
        spec = resolve_model(src)
        if not math.isclose(spec.diam_mean, card.diam_mean, rel_tol=1e-6):
            raise ValueError(f"weights {src} have diam_mean {spec.diam_mean}; the card of "
                             f"{card.model_id!r} says {card.diam_mean}")
        if not isinstance(target, Path):
            stored = self._add_to_store(card, src, target)
            logger.info("added model %s to %s", card.model_id, self.where)
            return stored
        tmp = self.path / "models" / f".tmp-{card.model_id}-{uuid.uuid4().hex[:8]}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
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

    def _add_to_store(self, card: ModelCard, src: Path, target: str) -> ModelCard:
        """Upload weights, then the card (a store has no atomic rename).

        An older model of the same id loses its card first (it leaves :meth:`ids`), then
        every object under its folder; the card is written last, so a model is in the
        zoo only once its weights are complete.
        """
        stored = replace(card, weights_sha256=file_sha256(src))
        key = self._key(target)
        self._fs.invalidate_cache(key)
        if self._fs.exists(f"{key}/{CARD_FILE}"):
            self._fs.rm_file(f"{key}/{CARD_FILE}")
        if self._fs.exists(key):
            self._fs.rm(key, recursive=True)
        try:
            self._fs.put_file(str(src), f"{key}/{WEIGHTS_FILE}")
            self._fs.pipe_file(f"{key}/{CARD_FILE}", stored.to_json().encode("utf-8"))
        finally:
            self._fs.invalidate_cache(key)
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
        path = self._loc("models", model_id, CARD_FILE)
        card = ModelCard.from_json(self._read_text(path), where=redact(path))
        if card.model_id != model_id:
            raise CardError(f"{redact(path)}: card says model_id {card.model_id!r} but its folder "
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
    def _selection_path(self, cell_line: str, organelle: str) -> Path | str:
        check_name(cell_line, "cell line")
        if organelle not in ORGANELLES:
            raise ValueError(f"organelle must be one of {ORGANELLES}; got {organelle!r}")
        return self._loc("selections", cell_line, f"{organelle}.json")

    def selections(self) -> list[tuple[str, str]]:
        """Return the (cell line, organelle) pairs that have a selection, sorted."""
        return sorted((parts[1], parts[2].removesuffix(".json"))
                      for parts in self._glob("selections", "*", "*.json")
                      if not parts[2].startswith("."))

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
        text = json.dumps(json_safe(checked.to_dict()), indent=2, allow_nan=False) + "\n"
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
            tmp.write_text(text)
            os.replace(tmp, path)
        else:  # one object, written whole
            key = self._key(path)
            self._fs.pipe_file(key, text.encode("utf-8"))
            self._fs.invalidate_cache(key)
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
        if not self._is_file(path):
            have = [f"{c}/{o}" for c, o in self.selections()]
            raise KeyError(f"no selection for {cell_line}/{organelle} in {self.where}; "
                           f"selections: {', '.join(have) or 'none'}")
        where = redact(path)
        data = parse_json(self._read_text(path), f"selection file {where}")
        try:
            return Selection.from_dict(data)
        except KeyError as err:
            raise KeyError(f"selection file {where}: {err.args[0]}") from None
        except ValueError as err:
            raise ValueError(f"selection file {where}: {err}") from None
