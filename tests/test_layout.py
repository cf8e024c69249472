"""The package's floor plan: layers, private names, Dask's place, one definition of each word."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "structfree_dask"
TESTS = Path(__file__).resolve().parent

#: Layer of each top-level module or subpackage: a module imports only from its own
#: subpackage or from lower layers.
LAYERS = {
    "limits": 0,
    "config": 1,
    "io": 2, "runtime": 2, "_provenance": 2,
    "backbones": 3,
    "pipeline": 4, "simulate": 4,
    "engine": 5, "evaluation": 5,
    "zoo": 6, "cells": 6,
    "workflow": 7, "screen": 7,
    "jobs": 8,
    "cli": 9,
    "__init__": 10, "__main__": 10,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int, bool]]:
    """``(module imported, names, line, at module level)`` for each package import."""
    tree = ast.parse(path.read_text(), str(path))
    if name == "__init__":  # the package's own __init__
        package: list[str] = []
    else:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    top_level = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("structfree_dask"):
                target = node.module.removeprefix("structfree_dask").lstrip(".")
            else:
                continue
            names = [a.name for a in node.names]
            if f"{target}.{names[0]}".lstrip(".") in MODULES:  # from . import limits
                for n in names:
                    found.append((f"{target}.{n}".lstrip("."), [], node.lineno,
                                  id(node) in top_level))
                continue
            found.append((target, names, node.lineno, id(node) in top_level))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("structfree_dask."):
                    found.append((a.name.removeprefix("structfree_dask."), [], node.lineno,
                                  id(node) in top_level))
    return found


def _layer(module: str) -> tuple[str, int]:
    top = module.split(".")[0] or "__init__"
    return top, LAYERS[top]


def test_every_module_has_a_layer():
    assert {_layer(m)[0] for m in MODULES} <= set(LAYERS)


def test_every_package_import_names_a_module_that_exists():
    wrong = []
    for name, path in MODULES.items():
        for target, _names, line, _ in _imports(name, path):
            if target and target not in MODULES:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}")
    assert not wrong, "\n".join(wrong)


def test_imports_point_down_the_layers():
    wrong = []
    for name, path in MODULES.items():
        own, level = _layer(name)
        for target, names, line, _ in _imports(name, path):
            top, target_level = _layer(target) if target else ("__init__", 10)
            if not target and names == ["__version__"]:  # the package's version: light
                continue
            if top != own and target_level >= level:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own} (layer "
                             f"{level}) imports {target} (layer {target_level})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for target, names, _, _ in _imports(name, path):
            for cand in [f"{target}.{n}" for n in names] + [target]:
                if cand in MODULES and cand != name:
                    graph[name].add(cand)
                    break
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = trail[trail.index(n):] + [n] if n in trail else [m, n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, [*trail, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_module_imports_another_modules_private_name():
    wrong = []
    for name, path in MODULES.items():
        for target, names, line, _ in _imports(name, path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: from {target} "
                             f"import {', '.join(private)}")
    assert not wrong, "\n".join(wrong)


def test_only_the_runtime_cluster_imports_distributed():
    """runtime.cluster is the one door to Dask's distributed (clients, workers, streams)."""
    wrong = []
    for name, path in MODULES.items():
        if name == "runtime.cluster":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m == "distributed" or m.startswith("distributed.") for m in mods):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not wrong, "distributed imported outside runtime.cluster: " + ", ".join(wrong)


def _code_only(path: Path) -> str:
    """The module's text without docstrings and comments (line numbers kept)."""
    text = path.read_text()
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            for i in range(body[0].lineno - 1, body[0].end_lineno or body[0].lineno):
                lines[i] = ""
    return "\n".join(ln.split("#", 1)[0] for ln in lines)


#: (what, pattern): each is written once, in the module named.
DEFINED_ONCE = [
    ("the organelles", r"\(\s*\"(cyto|nuclei)\",\s*\"(nuclei|cyto)\"\s*\)", "config"),
    ("the fusion baselines", r"\"voting\",\s*\"majority\",\s*\"staple\",\s*\"simple\"",
     "config"),
    ("the strategies", r"\(\s*\"cw\",\s*\"mc\"\s*\)", "config"),
    ("the label dtype", r"dtype\(\s*\"uint32\"\s*\)", "config"),
    ("the default smallest cell", r"min_size\b[^=\n]*=\s*15\b", None),
    ("the default flow threshold", r"(flow_threshold\b[^=\n]*=|DEFAULT_FLOW_THRESHOLD\s*=)"
     r"\s*0\.4\b", "config"),
    ("the default tile size", r"(tile_size|TILE_SIZE)\b[^=\n]*=\s*512\b", "config"),
    ("the training epochs", r"(epochs)\b[^\n]*\b500\b", "config"),
    ("the training learning rate", r"\b5e-4\b", "config"),
    ("the training tile", r"(tile_size|tile)\b[^\n]*\b224\b", "config"),
    ("the dynamics rule's steps", r"\b200\s*/", None),
    ("the dynamics rule's largest cell", r"\b0\.4\s*\*", None),
    ("the simulator's truth table", r"\"gt_truth\"", "config"),
    ("the true ratio column", r"__true_nc_ratio", "config"),
]


@pytest.mark.parametrize(("what", "pattern", "home"), DEFINED_ONCE,
                         ids=[d[0] for d in DEFINED_ONCE])
def test_defined_once(what, pattern, home):
    hits = []
    for name, path in MODULES.items():
        code = _code_only(path)
        hits += [f"{name}:{code[:m.start()].count(chr(10)) + 1}"
                 for m in re.finditer(pattern, code)]
    if home is not None:
        assert len(hits) == 1 and hits[0].split(":")[0] == home, (what, hits)
    else:
        assert not hits, (what, hits)


def test_defaults_live_in_the_settings():
    """The one written default is what every entry point applies."""
    from structfree_dask.config import (
        DEFAULT_FLOW_THRESHOLD,
        DEFAULT_MIN_SIZE,
        DEFAULT_TILE_SIZE,
        SegmentationConfig,
        TrainSettings,
    )
    from structfree_dask.pipeline.integrate import FLOW_STEPS, MAX_SIZE_FRACTION, dynamics_for

    cfg = SegmentationConfig()
    assert (cfg.tile_size, cfg.flow_threshold, cfg.min_size) == (
        DEFAULT_TILE_SIZE, DEFAULT_FLOW_THRESHOLD, DEFAULT_MIN_SIZE)
    dyn = dynamics_for((100, 50), 2.0, cfg)
    assert (dyn.niter, dyn.max_size_px) == (FLOW_STEPS // 2, MAX_SIZE_FRACTION * 5000)
    assert TrainSettings().tile_size == 224


def test_one_bounded_streaming_loop():
    """Every plate job streams its tasks through runtime.cluster.stream_futures."""
    waits = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and getattr(call.func, "id", None) in (
                            "as_completed", "wait"):
                        waits.append(f"{name}.{node.name}")
    assert waits == ["runtime.cluster.stream_futures"], waits


def test_segment_with_a_zoo_loads_no_training_scoring_or_report():
    import subprocess
    import sys

    code = ("import sys; from structfree_dask.zoo.use import config_from_zoo; "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    heavy = {"structfree_dask.zoo.training.train", "structfree_dask.zoo.training.build",
             "structfree_dask.zoo.scoring.scoring", "structfree_dask.zoo.scoring.predict",
             "structfree_dask.zoo.scoring.data", "structfree_dask.zoo.report", "matplotlib",
             "torch"}
    assert not heavy & loaded, sorted(heavy & loaded)


def test_the_docs_layer_diagram_is_the_one_the_tests_hold():
    """docs/engine.md draws the layers of LAYERS, top to bottom, each module once."""
    text = (PACKAGE.parent / "docs" / "engine.md").read_text()
    block = text.split("## The package, layer by layer", 1)[1].split("```")[1]
    drawn = [[m.strip() for m in step.split(",")]
             for step in block.replace("\n", " ").split("→")]
    by_level: dict[int, set[str]] = {}
    for name, level in LAYERS.items():
        if name not in ("__init__", "__main__"):
            by_level.setdefault(level, set()).add(name)
    assert [set(step) for step in drawn] == [by_level[k] for k in sorted(by_level, reverse=True)]


def _mirror(module: str) -> Path:
    """Return the test file of a module: tests/<package path>/test_<name>.py."""
    parts = module.split(".")
    return TESTS.joinpath(*parts[:-1], f"test_{parts[-1].lstrip('_')}.py")


def test_the_tests_mirror_the_package_module_by_module():
    """Every module (not a package's __init__) has its own test file at the mirrored path."""
    modules = [m for m, p in MODULES.items() if p.name not in ("__init__.py", "__main__.py")]
    missing = [f"{m}: {_mirror(m).relative_to(TESTS.parent)}" for m in modules
               if not _mirror(m).is_file()]
    assert not missing, "modules without their test file:\n" + "\n".join(missing)


#: Attributes of the standard library that the session's cluster reads from its own threads
#: (its event loop's clock, its streams): a test that replaced one for the whole process
#: gave that loop a fake clock, which ran dry mid-test and stopped the cluster.
_PROCESS_WIDE = re.compile(r"setattr\(\s*(?:\w+\.)*(?:time|sys|os|socket|threading|asyncio)\s*,")


def test_no_test_replaces_the_process_clock_or_streams():
    """Tests hand a fake clock or stream to what they test, never to the whole process."""
    found = [f"{path.relative_to(TESTS)}:{n}"
             for path in sorted(TESTS.rglob("*.py")) if path.name != "test_layout.py"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if _PROCESS_WIDE.search(line)]
    assert found == [], found


def test_the_tests_conftest_does_not_import_distributed(loaded_modules):
    """distributed is first imported inside a test, never while pytest sets itself up.

    Imported before pytest's session starts, distributed gives its logger a handler of its
    own and stops it propagating; pytest then hangs its capture handlers on that logger too,
    and the session cluster's ``LocalCluster`` turns every stream handler of that logger to
    WARNING for as long as it runs (``silence_logs``): ``caplog`` then sees no INFO record
    of any test after the cluster started.
    """
    assert loaded_modules("import tests.conftest", ("distributed",)) == []
