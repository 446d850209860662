"""The goal envs and Meta-World MT10 as task sources (training/common/tasks.py): the Fetch
adapters (gymnasium-robotics) with the shared sparse reward, the goal-reaching insertion arm
over the insertion train tasks, MT10's 10 tasks for MT-SAC. The optional packages are
skipped with a reason when absent (`pip install 'zshot[robotics]'`, `'zshot[metaworld]'`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from training.common.goals import FlatGoalEnv, GoalLayout
from training.common.rollout import run_episode
from training.common.tasks import make_task_source
from training.config import TrainConfig
from zshot.goal import sparse_goal_reward

needs_robotics = pytest.mark.skipif(
    importlib.util.find_spec("gymnasium_robotics") is None,
    reason="gymnasium-robotics not installed: pip install 'zshot[robotics]'",
)
needs_metaworld = pytest.mark.skipif(
    importlib.util.find_spec("metaworld") is None,
    reason="metaworld not installed: pip install 'zshot[metaworld]'",
)


def _cfg(**over: object) -> TrainConfig:
    return TrainConfig.model_validate(over)


@needs_robotics
@pytest.mark.parametrize(("env", "obs_dim"), [("fetch_reach", 10), ("fetch_push", 25)])
def test_fetch_is_a_flat_goal_env_with_the_shared_reward(env: str, obs_dim: int) -> None:
    source = make_task_source(_cfg(algo="her", env=env))
    assert source.train_tasks == [None] and source.task_label(None).startswith("Fetch")
    e = source.make_env()
    try:
        assert isinstance(e, FlatGoalEnv) and e.layout == GoalLayout(obs_dim, 3)
        assert e.epsilon == 0.05 and e.horizon == 50 and e.goal_names == ["x_m", "y_m", "z_m"]
        rng = np.random.default_rng(0)
        ep = run_episode(e, lambda o: rng.uniform(-1, 1, 4).astype(np.float32), seed=0)
        assert ep.steps == 50 and ep.truncated[-1]
        _, achieved, desired = e.layout.split(ep.obs[1:])
        want = sparse_goal_reward(achieved, desired, 0.05)
        np.testing.assert_array_equal(ep.rewards, want)
        # Fetch's own reward is -1 / 0 for the same test: ours is it shifted by one
        own = e.env.unwrapped.compute_reward(achieved, desired, {})
        np.testing.assert_array_equal(ep.rewards, own + 1.0)
    finally:
        e.close()


def test_a_missing_optional_package_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def no_robotics(name: str, *args: object, **kw: object) -> object:
        if name.startswith(("gymnasium_robotics", "metaworld")):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_robotics)
    monkeypatch.delitem(__import__("sys").modules, "training.common.metaworld_env", raising=False)
    with pytest.raises(RuntimeError, match=r"pip install 'zshot\[robotics\]'"):
        make_task_source(_cfg(algo="her", env="fetch_reach"))
    with pytest.raises(RuntimeError, match=r"pip install 'zshot\[metaworld\]'"):
        make_task_source(_cfg(algo="mtsac", env="metaworld_mt10", num_train_tasks=10))


def test_the_goal_insertion_arm_runs_over_the_insertion_train_tasks() -> None:
    cfg = _cfg(
        algo="her",
        env="insertion_goal",
        profile="known",
        num_train_tasks=2,
        goal={"inserted_fraction": 1.0, "epsilon": 0.5},
    )
    source = make_task_source(cfg)
    assert len(source.train_tasks) == 2 and source.env_info["env"] == "zshot/InsertionGoal-v0"
    e = source.make_env()
    try:
        assert e.layout == GoalLayout(18, 4) and e.epsilon == 0.5
        e.set_task(source.train_tasks[1])
        ep = run_episode(e, lambda o: np.zeros(4, np.float32), seed=0, max_steps=3)
        desired = e.layout.split(ep.obs)[2]
        np.testing.assert_array_equal(desired[0], e.env.inserted_goal())  # fraction 1
        assert ep.infos[0]["task"]["plug"] == source.train_tasks[1].plug
    finally:
        e.close()


@needs_metaworld
@pytest.mark.slow
def test_mt10_is_ten_tasks_with_their_one_hot_ids_for_mtsac(tmp_path: Path) -> None:
    """MT10's 10 environments as the train tasks in its order, each stepping its own env;
    one tiny MT-SAC iteration over them (a smoke run: each task told its one-hot id)."""
    from training.algos.mtsac.trainer import MTSACTrainer

    cfg = _cfg(
        algo="mtsac",
        env="metaworld_mt10",
        num_train_tasks=10,
        max_episode_steps=5,
        iterations=1,
        initial_steps=5,
        tasks_per_iteration=2,
        steps_prior=5,
        steps_extra_posterior=0,
        updates_per_iteration=2,
        meta_batch=10,
        batch_size=4,
        buffer_capacity=100,
        sac={"hidden": [8]},
        eval={"eval_episodes": 1},
        eval_every=0,
    )
    source = make_task_source(cfg)
    names = [source.task_label(t) for t in source.train_tasks]
    assert names[:3] == ["reach-v3", "push-v3", "pick-place-v3"] and len(set(names)) == 10
    trainer = MTSACTrainer(cfg, tmp_path / "run")
    report = trainer.run(progress=False)
    assert report is not None and [r.label for r in report.tasks] == names
    assert (trainer.buffer.sizes >= 5).all()  # every task collected
    obs = trainer.buffer.obs[:, 0]
    assert len({tuple(np.round(o[:3], 4)) for o in obs}) > 1  # different envs, not one
