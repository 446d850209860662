"""training/registry.py: every algorithm is reachable by name, from configs and checkpoints."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from tests.training.conftest import tiny_config
from training.algos.offline_pearl.networks import OfflinePearlNets
from training.algos.offline_pearl.trainer import OfflineTrainer
from training.algos.pearl.networks import PearlNets
from training.algos.pearl.trainer import Trainer
from training.common.checkpoint import CHECKPOINT
from training.config import AlgoName
from training.registry import ALGORITHMS, get_algorithm, load_run, make_trainer
from zshot.cli import main as zshot


def test_config_names_and_registry_agree() -> None:
    assert set(typing.get_args(AlgoName)) == set(ALGORITHMS)
    for name, algo in ALGORITHMS.items():
        assert algo.name == name and "arXiv" in algo.paper
        # PEARL-shaped runs export a posterior, recurrent policies (RL², VariBAD) a recurrent
        # artifact; a policy told its task (no few-shot agent), a conditioned one; a
        # gradient-adapted policy (MAML), weights
        no_agent = ("conditioned", "weights")
        assert (algo.artifact_kind in no_agent) == (algo.make_agent is None)
        assert algo.artifact_kind in ("conditioned", "posterior", "recurrent", "weights")


def test_zshot_algos_lists_each_algorithm_with_its_paper(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert zshot(["algos"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(ALGORITHMS)
    for line, algo in zip(lines, ALGORITHMS.values(), strict=True):
        assert line.startswith(algo.name) and algo.paper in line


def test_algo_defaults_to_how_configs_chose_before() -> None:
    assert tiny_config().algorithm == "pearl"
    offline = tiny_config(offline={"dataset": "d"})
    assert offline.algorithm == "offline_pearl"
    assert tiny_config(algo="pearl", offline={"dataset": "d"}).algorithm == "pearl"
    with pytest.raises(ValidationError, match="algo offline_pearl needs offline.dataset"):
        tiny_config(algo="offline_pearl")
    with pytest.raises(ValidationError):
        tiny_config(algo="no-such-algo")
    assert get_algorithm(offline.algorithm).trainer is OfflineTrainer


def test_make_trainer_dispatches_on_the_algorithm(tmp_path: Path) -> None:
    assert isinstance(make_trainer(tiny_config(), tmp_path), Trainer)
    with pytest.raises(ValueError, match="known: pearl, offline_pearl, distill, rdistill, mtsac"):
        get_algorithm("nope")


def test_load_run_builds_the_tagged_algorithms_networks(trained_run: Path, tmp_path: Path) -> None:
    run = load_run(trained_run)
    assert run.algorithm.name == "pearl" and run.state["algorithm"] == "pearl"
    assert type(run.nets) is PearlNets and not hasattr(run.nets, "vf")
    # a checkpoint from before the tag loads the same way
    state = torch.load(trained_run / CHECKPOINT, weights_only=True)
    del state["algorithm"], state["algorithm_version"]
    (tmp_path / "old").mkdir()
    torch.save(state, tmp_path / "old" / CHECKPOINT)
    old = load_run(tmp_path / "old")
    assert old.algorithm.name == "pearl"
    for key, value in run.nets.state_dict().items():
        assert torch.equal(value, old.nets.state_dict()[key]), key
    # fine-tuning builds offline PEARL's networks from the same weights
    as_offline = load_run(trained_run, as_algorithm="offline_pearl")
    assert isinstance(as_offline.nets, OfflinePearlNets) and as_offline.nets.vf is None
