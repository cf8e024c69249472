"""Strict JSON for the package's own files (model cards, selections, records).

Python's :func:`json.loads` accepts ``NaN`` and ``Infinity`` (not JSON) and fails with a
``RecursionError`` on deeply nested documents; both become one clear error that names
the file.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSONTextError", "parse_json"]


class JSONTextError(ValueError):
    """A file that is not strict JSON (or nests too deeply to read)."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str | bytes, where: str) -> Any:
    """Parse strict JSON; raise :class:`JSONTextError` naming ``where`` otherwise.

    Examples
    --------
    >>> parse_json('{"f1": 0.9}', "card.json")
    {'f1': 0.9}
    >>> parse_json('{"f1": NaN}', "card.json")
    Traceback (most recent call last):
    ...
    structfree_dask.io._jsontext.JSONTextError: card.json is not valid JSON: NaN is not a JSON number
    >>> parse_json("[" * 100_000, "card.json")
    Traceback (most recent call last):
    ...
    structfree_dask.io._jsontext.JSONTextError: card.json is not valid JSON: nested too deeply ...
    """  # noqa: E501
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise JSONTextError(f"{where} is not valid JSON: {err}") from None
    except UnicodeDecodeError as err:
        raise JSONTextError(f"{where} is not valid JSON: not UTF-8 text ({err.reason} at "
                            f"byte {err.start})") from None
    except ValueError as err:
        raise JSONTextError(f"{where} is not valid JSON: {err}") from None
    except RecursionError:
        raise JSONTextError(f"{where} is not valid JSON: nested too deeply (more levels of "
                            "arrays or objects than a card or record ever has)") from None
