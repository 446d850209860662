"""examples/plugs/: the plug files of a user's that issue #17's new-shape results use. Each
passes the spec and socket check, cites a source, and is a new shape: its name is neither a
shipped plug nor a training plug (procedural or listed in a training config)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.plugs import list_plugs, load_plug
from sim.tasks import check_plug

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "examples" / "plugs").glob("*.yaml"))


def test_there_are_a_few() -> None:
    assert len(FILES) >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_checks_and_is_new(path: Path) -> None:
    assert check_plug(str(path)) == str(path)
    spec = load_plug(path)
    assert spec.name == path.stem and len(spec.source) > 40
    assert spec.name not in list_plugs()
    training = {p.stem for p in (ROOT / "training" / "plugs").glob("*.yaml")}
    for cfg in (ROOT / "configs" / "train").glob("*.yaml"):
        data = yaml.safe_load(cfg.read_text()) or {}
        training |= {str(x) for x in data.get("train_plugs") or []}
    assert spec.name not in training and not any(spec.name in t for t in training)
