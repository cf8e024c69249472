"""The one rule of --overwrite: what a rerun does with an output that exists."""

import pytest

from structfree_dask.runtime.resume import Resume, decide_resume

KW = {"job": "a measurement run", "rename": "--table"}


def test_absent_is_created():
    assert decide_resume("t", exists=False, ours=False, diffs="", done=(), present=(),
                         selected=[0], overwrite=True, **KW) == Resume("create")


def test_ours_same_settings_resumes_and_redoes_only_the_selection():
    common = {"exists": True, "ours": True, "diffs": "", "done": {0, 1, 2},
              "present": {0, 1, 2}}
    assert decide_resume("t", selected=[1, 3], overwrite=False, **common, **KW) == Resume(
        "resume", (), (0, 1, 2))
    assert decide_resume("t", selected=[1, 3], overwrite=True, **common, **KW) == Resume(
        "resume", (1,), (0, 2))
    assert decide_resume("t", selected=[0, 1, 2], overwrite=True, **common, **KW) == Resume(
        "recreate")


@pytest.mark.parametrize(("ours", "diffs", "overwrite", "fragment"), [
    (False, "", False, "already exists and was not written by a measurement run"),
    (False, "", True, "alone would discard its other timepoints [0]"),
    (True, "channels: ['a'] vs ['b']", False, "was made with other settings"),
    (True, "channels: ['a'] vs ['b']", True, "cannot mix settings"),
])
def test_what_cannot_be_resumed_is_refused(ours, diffs, overwrite, fragment):
    with pytest.raises(FileExistsError, match="^table 't'") as raised:
        decide_resume("table 't'", exists=True, ours=ours, diffs=diffs, done={0, 1},
                      present={0, 1}, selected=[1], overwrite=overwrite, **KW)
    assert fragment in str(raised.value)
    assert "--table" in str(raised.value) or "pass --overwrite" in str(raised.value)


def test_not_ours_with_every_timepoint_selected_is_recreated():
    assert decide_resume("t", exists=True, ours=False, diffs="", done=(), present={0, 1},
                         selected=[0, 1], overwrite=True, **KW).action == "recreate"
