"""training/common/checkpoint.py: atomic, tagged checkpoints."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import torch

from training.common.checkpoint import checkpoint_algorithm, load_checkpoint, save_checkpoint
from training.config import TrainConfig


def test_save_tags_the_algorithm_and_is_private(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", {"x": torch.ones(2)}, algorithm="pearl", version=1)
    state = load_checkpoint(path)
    assert state["algorithm"] == "pearl" and state["algorithm_version"] == 1
    assert torch.equal(state["x"], torch.ones(2))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", {"n": 1}, algorithm="pearl", version=1)
    with pytest.raises(Exception):  # noqa: B017  # a lambda cannot be pickled
        save_checkpoint(path, {"n": 2, "bad": lambda: 0}, algorithm="pearl", version=1)
    assert load_checkpoint(path)["n"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left


def test_untagged_and_old_tags_name_a_registry_algorithm() -> None:
    online = TrainConfig.model_validate({"env": "point"})
    offline = TrainConfig.model_validate({"env": "point", "offline": {"dataset": "d"}})
    assert checkpoint_algorithm({}, online) == "pearl"
    assert checkpoint_algorithm({}, offline) == "offline_pearl"
    assert checkpoint_algorithm({"algorithm": "offline_awac"}, online) == "offline_pearl"
    assert checkpoint_algorithm({"algorithm": "pearl"}, offline) == "pearl"


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
