"""docs/ADAPTERS.md covers every adapter `make_robot` builds, and its examples exist."""

from __future__ import annotations

import re
from pathlib import Path

from hardware_bridge.config import TrialsConfig
from zshot.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "ADAPTERS.md").read_text()
FACTORY = (ROOT / "hardware_bridge" / "robots" / "__init__.py").read_text()


def test_every_adapter_of_make_robot_is_documented() -> None:
    imported = re.findall(r"from hardware_bridge\.robots\.(\w+) import (\w+)", FACTORY)
    assert len(imported) >= 4
    for _module, cls in imported:
        assert f"`{cls}`" in DOC, cls
    assert "## Legged locomotion (LocomotionRobot)" in DOC
    assert "`hardware_bridge/robots/locomotion.py`" in DOC


def test_the_configs_the_doc_names_exist_and_load() -> None:
    paths = set(re.findall(r"`(configs/[\w/]+\.yaml)`", DOC))
    assert "configs/trials/locomotion.yaml" in paths and "configs/trials/ur_example.yaml" in paths
    for rel in paths:
        assert (ROOT / rel).is_file(), rel
    # the locomotion section's example: that robot, with the per-step posterior it documents
    loco = load_config(TrialsConfig, ROOT / "configs" / "trials" / "locomotion.yaml")
    assert loco.robot == "sim-locomotion" and loco.update == "step"
    assert loco.locomotion.terrain_config == "configs/terrain/cheetah_vel.yaml"
    section = DOC[DOC.index("## Legged locomotion") :]
    for text in ("update: step", "JointActionSpec", "JointSafetyLayer", 'metric = "return"'):
        assert text in section, text
