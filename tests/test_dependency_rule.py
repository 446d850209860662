"""The dependency rule of docs/INTERFACES.md, read from the source: every `import` and
`from ... import` of every module (module level or inside a function alike), parsed with
`ast`, must follow the allowed directions, and the module graph has no circle.

tests/test_import_isolation.py checks the same rule from the other side: it imports the
robot-side packages in a fresh interpreter and looks at what got loaded.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("zshot", "runtime", "hardware_bridge", "sim", "training")

ALLOWED: dict[str, set[str]] = {
    "zshot": set(),
    "runtime": {"zshot"},
    "sim": {"zshot"},
    "hardware_bridge": {"runtime", "zshot"},
    "training": {"zshot", "sim", "runtime", "hardware_bridge"},
}
"""Which of our packages each package may import (zshot <- sim <- training, and so on)."""

HEAVY = {"torch", "pybullet", "gymnasium", "onnx", "tensorboard", "matplotlib"}
"""Never imported by runtime/ or hardware_bridge/ (the robot side: no torch, no sim)."""

LAZY_PLOTS = {("hardware_bridge.trials", "matplotlib")}
"""Optional plots, imported inside the function that draws them (None without it)."""

LAZY_SIM = {"hardware_bridge.robots.sim", "hardware_bridge.robots.locomotion"}
"""Load `sim` with importlib inside the robot class, when a sim robot is built."""

RANK = {
    "training.config": 0,
    "training.plug_family": 0,
    "training.common": 1,
    "training.behaviours": 2,
    "training.evaluate": 3,
    "training.algos": 4,
    "training.registry": 5,
    "training.cli": 6,
    "training.collect": 6,
    "training.dataset_cli": 6,
    "training.artifact_cli": 6,
    "training.sweep": 6,
    "training.finetune": 7,
}
"""Layers inside training/: a module imports only lower layers (and its own group):
config <- common <- behaviours <- evaluate <- algos/* <- registry <- CLIs."""

ALGO_IMPORTS = {"offline_pearl": {"pearl"}, "distill": {"pearl"}, "rdistill": {"rl2"}}
"""An algorithm never imports another one, except these (offline PEARL builds on PEARL's
networks, optimizers, learner step and exporter; rdistill's student is RL²'s recurrent
policy, agent and exporter)."""


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def _imports(path: Path) -> set[str]:
    """Every absolute module name `path` imports, anywhere in it."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # submodules
    return out


def _dynamic_imports(path: Path) -> set[str]:
    """Module names given as string literals to importlib.import_module."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.add(node.args[0].value)
    return out


MODULES = dict(_modules())


def _group(module: str) -> str:
    """training.algos.<name>.x -> training.algos.<name>; training.common.x -> training.common;
    training.x -> training.x."""
    parts = module.split(".")
    if parts[:2] == ["training", "algos"] and len(parts) > 2:
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def _rank(group: str) -> int | None:
    if group.startswith("training.algos"):
        return RANK["training.algos"]
    return RANK.get(group)


def violations() -> list[str]:
    """Every import against the rule, as 'importer -> imported: why'."""
    bad = []
    for name, path in MODULES.items():
        top = name.split(".")[0]
        for imported in sorted(_imports(path)):
            itop = imported.split(".")[0]
            if itop in PACKAGES and itop != top and itop not in ALLOWED[top]:
                bad.append(f"{name} -> {imported}: {top} may not import {itop}")
            if (
                top in ("runtime", "hardware_bridge")
                and itop in HEAVY
                and (name, itop) not in LAZY_PLOTS
            ):
                bad.append(f"{name} -> {imported}: the robot side never imports {itop}")
            if top == "training" and itop == "training" and imported != "training":
                bad.extend(_training_violation(name, imported))
        for dynamic in _dynamic_imports(path):
            dtop = dynamic.split(".")[0]
            if dtop == "sim" and top == "hardware_bridge" and name not in LAZY_SIM:
                bad.append(f"{name} -> {dynamic}: sim only lazily inside the sim robots")
            if dtop in ("torch", "training") and top in ("runtime", "hardware_bridge"):
                bad.append(f"{name} -> {dynamic}: the robot side never imports {dtop}")
    return bad


def _training_violation(name: str, imported: str) -> list[str]:
    mine, theirs = _group(name), _group(imported)
    if imported not in MODULES and imported.rsplit(".", 1)[0] in MODULES:
        theirs = _group(imported.rsplit(".", 1)[0])  # `from pkg import name` of a non-module
    if mine == theirs or mine == "training":
        return []
    r_mine, r_theirs = _rank(mine), _rank(theirs)
    if r_mine is None or r_theirs is None:
        return [f"{name} -> {imported}: {mine if r_mine is None else theirs} has no layer"]
    if mine.startswith("training.algos.") and theirs.startswith("training.algos."):
        a, b = mine.split(".")[2], theirs.split(".")[2]
        if b in ALGO_IMPORTS.get(a, set()):
            return []
        return [f"{name} -> {imported}: algorithm {a} may not import algorithm {b}"]
    if r_theirs >= r_mine:
        return [f"{name} -> {imported}: {mine} (layer {r_mine}) may not import {theirs}"]
    return []


def test_every_import_follows_the_dependency_rule() -> None:
    assert violations() == []


def find_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Circles of a directed graph found by depth-first search (each as a closed path)."""
    seen: dict[str, int] = {}  # 1: on the stack, 2: done
    circles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in seen:
                visit(nxt, [*stack, nxt])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    return circles


def test_no_import_circle_between_modules() -> None:
    graph = {
        name: {m for m in _imports(path) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }
    # A package's own __init__ is imported with any of its modules: not an edge of a circle.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    assert find_circles(graph) == []


def test_find_circles_sees_the_circle_collect_finetune_had() -> None:
    graph = {"collect": {"finetune", "config"}, "finetune": {"collect"}, "config": set()}
    assert find_circles(graph) == [["collect", "finetune", "collect"]]


def test_every_training_module_has_a_layer() -> None:
    groups = {_group(n) for n in MODULES if n.startswith("training.")}
    assert {g for g in groups if _rank(g) is None} == set()


@pytest.mark.parametrize(
    ("importer", "imported", "why"),
    [
        ("training.common.replay", "training.algos.pearl.losses", "may not import"),
        ("training.algos.pearl.trainer", "training.algos.offline_pearl.losses", "algorithm"),
        ("training.evaluate", "training.registry", "may not import"),
        ("training.algos.pearl.losses", "training.cli", "may not import"),
    ],
)
def test_the_rule_catches_an_upward_import(importer: str, imported: str, why: str) -> None:
    (found,) = _training_violation(importer, imported)
    assert why in found


def test_the_rule_allows_offline_pearl_on_pearl() -> None:
    assert _training_violation("training.algos.offline_pearl.losses", "training.algos.pearl") == []
