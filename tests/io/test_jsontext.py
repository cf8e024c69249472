"""structfree_dask.io._jsontext: strict JSON for the package's own files."""

from __future__ import annotations

import pytest

from structfree_dask.io import JSONTextError, parse_json


def test_strict_json_parses_as_usual():
    assert parse_json('{"f1": 0.9, "names": ["a", "é"], "n": null}', "card.json") == {
        "f1": 0.9, "names": ["a", "é"], "n": None}
    assert parse_json(b'[1, 2.5e3, true]', "sel.json") == [1, 2500.0, True]
    value = parse_json("[" * 500 + "]" * 500, "deep.json")  # nested, but not too deeply
    for _ in range(499):
        (value,) = value
    assert value == []


@pytest.mark.parametrize(("text", "message"), [
    ('{"f1": NaN}', "card.json is not valid JSON: NaN is not a JSON number"),
    ('[Infinity]', "card.json is not valid JSON: Infinity is not a JSON number"),
    ('[-Infinity]', "card.json is not valid JSON: -Infinity is not a JSON number"),
    ('{"f1": }', "card.json is not valid JSON: Expecting value: line 1 column 8 (char 7)"),
    ("", "card.json is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b'{"a": "\xff"}', "card.json is not valid JSON: not UTF-8 text (invalid start byte at "
                       "byte 7)"),
    ("[" * 100_000, "card.json is not valid JSON: nested too deeply (more levels of arrays or "
                    "objects than a card or record ever has)"),
])
def test_anything_else_is_one_error_naming_the_file(text, message):
    with pytest.raises(JSONTextError) as err:
        parse_json(text, "card.json")
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)
    assert err.value.__cause__ is None and err.value.__suppress_context__
