"""The robot side stays light: `runtime` and `hardware_bridge` never pull in torch,
pybullet, `training` or `sim` (DESIGN.md, dependency direction)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = (
    "torch",
    "pybullet",
    "training",
    "sim",
    "gymnasium",
    "onnx",
    "tensorboard",
    "matplotlib",
    "ray",  # only when `zshot trials --workers` > 1 fans out (zshot/parallel.py, lazily)
)
# Adapters whose SDK is an optional extra are imported lazily by design; none listed now.
SKIP_MODULES: set[str] = set()


def _submodules(package: str) -> list[str]:
    path = ROOT / package
    names = [package]
    for info in pkgutil.walk_packages([str(path)], prefix=f"{package}."):
        if info.name not in SKIP_MODULES:
            names.append(info.name)
    return names


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("package", ["runtime", "hardware_bridge"])
def test_robot_side_imports_nothing_heavy(package: str) -> None:
    modules = _submodules(package)
    loaded = _imported_after(modules)
    leaked = sorted(set(FORBIDDEN) & loaded)
    assert not leaked, f"importing {package} (all of {modules}) loaded {leaked}"


def test_the_check_itself_sees_a_heavy_import() -> None:
    # Guard against a vacuous test: importing training.config must show up as "training".
    assert "training" in _imported_after(["training.config"])


def test_serve_help_does_not_import_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from zshot.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['serve', '--help'])\n"
        "    except SystemExit: pass\n"
        "print('torch' in sys.modules, 'pybullet' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False False"
