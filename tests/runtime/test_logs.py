"""Logging of the command line: levels per verbosity, hidden noise, the worker preload."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

import dask
import pytest

from structfree_dask.runtime import logs
from structfree_dask.runtime.logs import (
    NOISE,
    PRELOAD,
    QUIET,
    VERBOSITY_ENV,
    cli_verbosity,
    configure,
    dask_setup,
    ignore_ctrl_c,
    levels,
    with_preload,
)

NAMES = ("structfree_dask", "cellpose", "distributed", "tornado", "bokeh", *QUIET,
         *(name for name, _ in NOISE))


@pytest.fixture
def clean_logging(monkeypatch):
    """Give back the loggers' levels and filters, root's handlers and SIGINT's handler."""
    monkeypatch.delenv(VERBOSITY_ENV, raising=False)
    loggers = [logging.getLogger(n) for n in NAMES] + [logging.getLogger()]
    before = [(lg, lg.level, list(lg.filters)) for lg in loggers]
    handlers = list(logging.getLogger().handlers)
    sigint = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, sigint)
    root = logging.getLogger()
    for h in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(h)
    for lg, level, filters in before:
        lg.setLevel(level)
        lg.filters[:] = filters


class _Collect(logging.Handler):
    """Messages that the loggers it is attached to handle (whatever their propagation)."""

    def __init__(self, *names: str) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.loggers = [logging.getLogger(n) for n in names]

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _Collect:
        for lg in self.loggers:
            lg.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for lg in self.loggers:
            lg.removeHandler(self)


def _record(name: str, msg: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, level, __file__, 1, msg, (), None)


@pytest.mark.parametrize(("verbosity", "level"), [
    (-3, logging.WARNING), (0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG),
    (7, logging.DEBUG)])
def test_levels_of_each_verbosity(verbosity, level):
    got = levels(verbosity)
    assert got["structfree_dask"] == got["cellpose"] == got["distributed"] == level
    web = logging.DEBUG if verbosity >= 2 else logging.WARNING  # dashboard requests: -vv
    assert got["tornado"] == got["bokeh"] == web
    quiet = {name: got.get(name) for name in QUIET}
    assert quiet == (QUIET if verbosity <= 0 else dict.fromkeys(QUIET))


def test_quiet_loggers_are_below_their_parents_only_by_default():
    assert set(QUIET) == {"distributed.sizeof", "distributed.worker.state_machine",
                          "distributed.gc"}
    assert all(level == logging.ERROR for level in QUIET.values())
    assert all(name.startswith("distributed.") for name in QUIET)
    assert {name for name, _ in NOISE} == {"distributed.core", "cellpose.dynamics",
                                           "distributed.worker", "asyncio"}


@pytest.mark.parametrize("verbosity", [0, 1, 2])
def test_configure_sets_this_process_the_workers_environment_and_undoes(verbosity,
                                                                         clean_logging):
    level = levels(verbosity)["structfree_dask"]
    names = ("structfree_dask", "structfree_dask.engine", "cellpose.core",
             "distributed.scheduler", "distributed.sizeof", "tornado.access")
    before = {n: logging.getLogger(n).getEffectiveLevel() for n in (*names, "")}
    env = {k: os.environ.get(k) for k in (VERBOSITY_ENV, "DASK_LOGGING__DISTRIBUTED",
                                          "PYTHONWARNINGS")}
    config = dask.config.get("logging", default=None)
    undo = configure(verbosity)
    try:
        got = {n: logging.getLogger(n).getEffectiveLevel() for n in names}
        assert got["structfree_dask.engine"] == got["cellpose.core"] == level
        assert got["distributed.scheduler"] == level
        assert got["distributed.sizeof"] == (logging.ERROR if verbosity == 0 else level)
        assert got["tornado.access"] == (logging.DEBUG if verbosity == 2 else logging.WARNING)
        assert logging.getLogger().level == level
        assert cli_verbosity() == verbosity
        assert os.environ["DASK_LOGGING__DISTRIBUTED"] == logging.getLevelName(level).lower()
        assert dask.config.get("logging.distributed") == logging.getLevelName(level).lower()
        if verbosity == 0:
            assert os.environ["PYTHONWARNINGS"].endswith("ignore:resource_tracker:UserWarning")
    finally:
        undo()
    assert {n: logging.getLogger(n).getEffectiveLevel() for n in (*names, "")} == before
    assert {k: os.environ.get(k) for k in env} == env
    assert dask.config.get("logging", default=None) == config
    assert cli_verbosity() is None


def test_configure_keeps_the_users_python_warnings(monkeypatch, clean_logging):
    monkeypatch.setenv("PYTHONWARNINGS", "error::RuntimeWarning")
    undo = configure(0)
    try:
        assert os.environ["PYTHONWARNINGS"] == (
            "error::RuntimeWarning,ignore:resource_tracker:UserWarning")
    finally:
        undo()
    assert os.environ["PYTHONWARNINGS"] == "error::RuntimeWarning"


def test_noise_is_hidden_by_default_and_shown_from_v_on(clean_logging):
    noisy = [(name, f"{start} in some context") for name, start in NOISE]
    news = [("distributed.core", "Connection to the scheduler was lost"),
            ("cellpose.dynamics", "seeds found: 12"),
            ("structfree_dask", "Event loop was unresponsive")]  # other logger: kept
    for verbosity in (0, 1):
        undo = configure(verbosity)
        try:
            with _Collect(*{name for name, _ in noisy + news}) as shown:
                for name, msg in noisy + news:
                    logging.getLogger(name).warning(msg)
        finally:
            undo()
        assert shown.messages == [m for _, m in (news if verbosity == 0 else noisy + news)]
        for name, _ in NOISE:  # undone: no filter left behind
            assert not logging.getLogger(name).filters


def test_a_cancelled_reconnection_is_hidden_by_default(clean_logging):
    """Closing a client whose scheduler went cancels its reconnection, which distributed
    logs as a bare CancelledError traceback: hidden unless -v (the command says itself
    that the scheduler was lost); its other errors are shown."""
    for verbosity in (0, 1):
        undo = configure(verbosity)
        try:
            with _Collect(logs.CANCELLED_RECONNECT) as shown:
                lg = logging.getLogger(logs.CANCELLED_RECONNECT)
                lg.error(asyncio.CancelledError())
                lg.error("Failed to reconnect to scheduler after 10.00 seconds")
        finally:
            undo()
        kept = ["Failed to reconnect to scheduler after 10.00 seconds"]
        assert shown.messages == (kept if verbosity == 0 else ["", *kept])
        assert not logging.getLogger(logs.CANCELLED_RECONNECT).filters  # undone


def test_a_lost_store_connection_is_not_a_traceback_by_default(clean_logging):
    """An object store killed mid-run leaves the HTTP client's write tasks failed and
    never awaited: asyncio reports each with a traceback when it is collected. Hidden
    unless -v (the command says the store stopped answering); other orphaned task errors
    and asyncio's other reports are shown."""

    def orphan(exc: BaseException) -> None:
        try:
            raise exc
        except BaseException as err:  # noqa: BLE001 - a report of it, as asyncio makes
            logging.getLogger(logs.STORE_CONNECTIONS).error(
                "Task exception was never retrieved\nfuture: <Task finished ...>",
                exc_info=(type(err), err, err.__traceback__))

    for verbosity in (0, 1):
        undo = configure(verbosity)
        try:
            with _Collect(logs.STORE_CONNECTIONS) as shown:
                orphan(ConnectionResetError("Cannot write to closing transport"))
                orphan(TimeoutError())
                logging.getLogger("asyncio").error("Unclosed client session\nclient: ...")
                orphan(ValueError("a bug"))
                logging.getLogger("asyncio").error("Event loop is closed")
        finally:
            undo()
        lost = ["Task exception was never retrieved\nfuture: <Task finished ...>"] * 2 + [
            "Unclosed client session\nclient: ..."]
        kept = ["Task exception was never retrieved\nfuture: <Task finished ...>",
                "Event loop is closed"]
        assert shown.messages == (kept if verbosity == 0 else lost + kept)
        assert not logging.getLogger(logs.STORE_CONNECTIONS).filters  # undone


def test_quiet_loggers_hide_their_warnings_by_default(clean_logging):
    for verbosity in (0, 1):
        undo = configure(verbosity)
        try:
            with _Collect("distributed.sizeof") as shown:
                logging.getLogger("distributed.sizeof").warning("sizeof failed")
                logging.getLogger("distributed.sizeof").error("sizeof broke")
        finally:
            undo()
        assert shown.messages == (["sizeof broke"] if verbosity == 0 else
                         ["sizeof failed", "sizeof broke"])


@pytest.mark.parametrize(("value", "want"), [("0", 0), ("2", 2), ("", None), ("loud", None)])
def test_cli_verbosity_reads_the_environment(value, want, monkeypatch):
    monkeypatch.setenv(VERBOSITY_ENV, value)
    assert cli_verbosity() == want


def test_with_preload_only_on_the_command_line(monkeypatch):
    monkeypatch.delenv(VERBOSITY_ENV, raising=False)
    config = {"distributed.worker.daemon": False}
    assert with_preload(config) is config  # the Python API: unchanged
    monkeypatch.setenv(VERBOSITY_ENV, "1")
    with dask.config.set({"distributed.worker.preload": [],
                          "distributed.worker.preload-argv": []}):
        out = with_preload(config)
    assert out == {**config, "distributed.worker.preload": [PRELOAD]}
    assert config == {"distributed.worker.daemon": False}  # not changed in place
    assert PRELOAD == logs.__name__ == "structfree_dask.runtime.logs"


def test_with_preload_keeps_the_users_preloads(monkeypatch):
    monkeypatch.setenv(VERBOSITY_ENV, "0")
    with dask.config.set({"distributed.worker.preload": "mine.py",
                          "distributed.worker.preload-argv": [["--a", "1"]]}):
        out = with_preload({})
    assert out == {"distributed.worker.preload": ["mine.py", PRELOAD],
                   "distributed.worker.preload-argv": [["--a", "1"], []]}
    with dask.config.set({"distributed.worker.preload": ["mine.py"],
                          "distributed.worker.preload-argv": ["--a"]}):  # one list for all
        assert with_preload({}) == {"distributed.worker.preload": ["mine.py", PRELOAD]}
    with dask.config.set({"distributed.worker.preload": [PRELOAD]}):
        assert with_preload({"x": 1}) == {"x": 1}  # already there


def test_ignore_ctrl_c_in_the_main_thread_only(clean_logging):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=ignore_ctrl_c)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ignore_ctrl_c()
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_dask_setup_outside_the_command_line_changes_nothing(clean_logging):
    before = ([logging.getLogger(n).level for n in NAMES], list(logging.getLogger().handlers),
              signal.getsignal(signal.SIGINT))
    assert dask_setup(None) is None
    after = ([logging.getLogger(n).level for n in NAMES], list(logging.getLogger().handlers),
             signal.getsignal(signal.SIGINT))
    assert after == before


@pytest.mark.parametrize("verbosity", [0, 2])
def test_the_preload_applies_the_verbosity_in_a_worker(verbosity, clean_logging, monkeypatch,
                                                       capsys):
    """Loaded by distributed's own preload machinery, as a worker does (no cluster)."""
    from distributed.preloading import process_preloads

    monkeypatch.setenv(VERBOSITY_ENV, str(verbosity))
    root = logging.getLogger()
    preloads = process_preloads(None, [PRELOAD], [[]])  # what with_preload names
    for _ in range(2):  # twice: still one handler
        asyncio.run(preloads.start())
    ours = [h for h in root.handlers if getattr(h, "_structfree_dask", False)]
    assert len(ours) == 1
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    level = levels(verbosity)["structfree_dask"]
    assert logging.getLogger("cellpose").level == logging.getLogger("structfree_dask").level
    assert logging.getLogger("structfree_dask").level == level
    assert logging.getLogger("distributed.sizeof").getEffectiveLevel() == (
        logging.ERROR if verbosity == 0 else level)
    no_seeds = _record("cellpose.dynamics", "no seeds found in get_masks_torch")
    assert bool(logging.getLogger("cellpose.dynamics").filter(no_seeds)) == (verbosity > 0)
    ours[0].handle(_record("structfree_dask.engine", "a worker says hello"))
    err = capsys.readouterr().err
    assert "structfree_dask.engine" in err and "a worker says hello" in err
    assert "WARNING" in err
