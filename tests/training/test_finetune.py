"""Adapting an offline run to a new task: context evaluation and online fine-tuning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.config import TrainConfig
from training.finetune import context_eval, finetune_task, load_run, main, select_tasks
from training.offline import OfflineTrainer
from training.tasks import make_task_source


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.collect import collect
    from training.config import CollectConfig

    root = tmp_path_factory.mktemp("ft")
    collect(
        CollectConfig.model_validate(
            {
                "env": "point",
                "num_tasks": 3,
                "episodes_per_task": 2,
                "mix": {"scripted": 1, "random": 1, "policy": 0},
            }
        ),
        root / "data",
        progress=False,
    )
    cfg = TrainConfig.model_validate(
        {
            "env": "point",
            "meta_batch": 3,
            "batch_size": 16,
            "context_size": 8,
            "sac": {"hidden": [16, 16]},
            "encoder": {"hidden": [16], "latent_dim": 2},
            "offline": {"dataset": str(root / "data"), "updates": 20, "log_every": 10},
            "eval": {"eval_episodes": 1, "explore_episodes": 0, "max_tasks": 1},
        }
    )
    OfflineTrainer(cfg, root / "run").run(progress=False)
    return root / "run"


def test_context_eval_counts_episodes_per_plug(offline_run: Path) -> None:
    nets, cfg = load_run(offline_run)
    source = make_task_source(cfg)
    for kind in ("scripted", "own"):
        rep = context_eval(
            source,
            nets,
            cfg,
            context_source=kind,
            episodes=2,
            seed=0,
            plugs=["test-0", "test-1"],
            tasks_per_plug=1,
        )
        assert [p.plug for p in rep.plugs] == ["test-0", "test-1"]
        assert all(p.episodes == 2 and p.explore_episodes == 2 for p in rep.plugs)
        assert rep.protocol["context_source"] == kind
    # The point demonstrator knows the goal: its context episodes nearly always succeed.
    rep = context_eval(source, nets, cfg, context_source="scripted", episodes=1, seed=0)
    assert sum(p.explore_successes for p in rep.plugs) >= 0.8 * sum(
        p.explore_episodes for p in rep.plugs
    )
    with pytest.raises(ValueError, match="not among the test plugs"):
        select_tasks(source, ["nope"], None)


@pytest.mark.slow  # one ONNX export (~5-10 s on the shared machine)
def test_finetune_goes_to_gradients_when_far_and_exports(offline_run: Path, tmp_path: Path) -> None:
    nets, cfg = load_run(offline_run)
    cfg = cfg.model_copy(
        update={
            "finetune": cfg.finetune.model_copy(
                update={
                    "max_episodes": 1,
                    "far_window": 1,
                    "far_threshold": 1.0,
                    "streak": 10,
                    "updates_per_episode": 5,
                    "final_episodes": 2,
                }
            )
        }
    )
    source = make_task_source(cfg)
    before = [p.clone() for p in nets.parameters()]
    reloaded: list[Path] = []
    res, tuned = finetune_task(
        nets,
        cfg,
        source,
        source.test_tasks[0],
        seed=1,
        artifact_dir=tmp_path / "art",
        on_artifact=reloaded.append,
    )
    assert len(res.episodes) == 1 and res.reached_after is None  # streak 10 > 1 episode
    if all(res.episodes[:1]):
        pytest.skip("the tiny run solved the task without fine-tuning")
    assert res.gradient_from == 1
    assert res.final_episodes == 2 and 0 <= res.final_successes <= 2
    # The caller's networks are untouched; the returned copy moved.
    assert all(torch.equal(a, b) for a, b in zip(before, nets.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(nets.parameters(), tuned.parameters(), strict=True)
    )
    # one artifact per gradient phase, handed to the reload hook, loadable and verified
    assert [p.name for p in reloaded] == ["v000"] and res.artifacts == [str(reloaded[0])]
    from runtime.artifact import load_artifact

    art = load_artifact(reloaded[-1], check_graphs=True)
    assert art.manifest.latent_dim == 2


def test_finetune_stops_at_the_streak(offline_run: Path) -> None:
    nets, cfg = load_run(offline_run)
    cfg = cfg.model_copy(
        update={
            "finetune": cfg.finetune.model_copy(
                update={"max_episodes": 4, "streak": 1, "far_threshold": 0.0, "final_episodes": 0}
            )
        }
    )
    source = make_task_source(cfg)
    res, _ = finetune_task(nets, cfg, source, source.test_tasks[0], seed=0)
    assert res.gradient_from is None  # threshold 0: never "far"
    if any(res.episodes):
        assert res.reached_after == res.episodes.index(True) + 1 == len(res.episodes)
    else:
        assert res.reached_after is None and len(res.episodes) == 4


def test_cli(offline_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert (
        main(
            [
                str(offline_run),
                "--context",
                "own",
                "-n",
                "1",
                "--tasks-per-plug",
                "1",
                "--plugs",
                "test-0",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file()
    assert main([str(tmp_path / "missing")]) == 2
