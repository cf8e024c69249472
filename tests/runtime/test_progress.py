"""structfree_dask.runtime.progress: the counters of named steps."""

from __future__ import annotations

from structfree_dask.runtime.progress import for_step


def test_a_plain_counter_is_given_to_every_step_unchanged():
    seen: list[tuple[int, int]] = []

    def count(done: int, total: int) -> None:
        seen.append((done, total))

    assert for_step(count, "measure") is count
    assert for_step(None, "measure") is None


def test_a_counter_that_names_steps_gets_each_step_and_unit():
    asked: list[tuple[str, str | None]] = []

    class Bar:
        def __call__(self, done: int, total: int) -> None:
            raise AssertionError("a named step counts through named()")

        def named(self, step: str, unit: str | None = None):
            asked.append((step, unit))
            return lambda done, total: asked.append((f"{step} {done}/{total}", unit))

    for_step(Bar(), "segment")(1, 3)
    for_step(Bar(), "track", "field")(2, 2)
    assert asked == [("segment", None), ("segment 1/3", None), ("track", "field"),
                     ("track 2/2", "field")]
