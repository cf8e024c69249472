"""Provenance stamps: software versions and UTC time (structfree_dask._provenance)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import numpy as np

import structfree_dask
from structfree_dask._provenance import software_versions, utc_now


def test_utc_now_is_iso_8601_to_the_second_in_utc():
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = utc_now()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", stamp), stamp
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0) and parsed.microsecond == 0
    assert before <= parsed <= after


def test_utc_now_stamps_sort_as_text_in_time_order():
    first = utc_now()
    second = utc_now()
    assert len(first) == len(second) == len("2025-01-31T12:00:00+00:00")
    assert first <= second
    assert datetime.fromisoformat(second) - datetime.fromisoformat(first) < timedelta(seconds=2)


def test_software_versions_are_the_installed_ones():
    versions = software_versions()
    assert set(versions) == {"structfree_dask", "cellpose", "torch", "numpy"}
    assert versions["structfree_dask"] == structfree_dask.__version__
    assert versions["numpy"] == np.__version__
    assert versions["cellpose"] == version("cellpose")
    assert versions["torch"] == version("torch")
    assert all(isinstance(v, str) and v and v != "unknown" for v in versions.values())
    assert software_versions() == versions  # the same stamp every time in one process
