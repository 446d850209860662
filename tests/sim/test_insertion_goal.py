"""sim/insertion_goal.py: the insertion arm as a goal-reaching env (goal = a plug pose,
inserted included), its Dict observation and the shared sparse reward."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sim
from sim.config import InsertionEnvConfig, with_profile
from sim.insertion_goal import GOAL_NAMES, GOAL_OBS, InsertionGoalEnv
from zshot.goal import sparse_goal_reward


@pytest.fixture(scope="module")
def env() -> InsertionGoalEnv:
    cfg = InsertionEnvConfig.model_validate(with_profile({}, "known"))
    e = InsertionGoalEnv(config=cfg, inserted_fraction=0.5)
    yield e
    e.close()


def servo(obs: dict[str, np.ndarray]) -> np.ndarray:
    """Straight to the desired pose, slowly down (the scripted controller of these tests)."""
    a, g = obs["achieved_goal"], obs["desired_goal"]
    act = np.clip(
        [(g[0] - a[0]) / 2, (g[1] - a[1]) / 2, (g[2] - a[2]) / 4, np.radians(g[3] - a[3]) / 0.02],
        -0.5,
        0.5,
    )
    act[2] = max(act[2], -0.3)
    return act.astype(np.float32)


def run(env: InsertionGoalEnv, seed: int, goal: np.ndarray | None = None) -> tuple[list, dict]:
    obs, _ = env.reset(seed=seed, options={"goal": goal} if goal is not None else None)
    rows = []
    for _ in range(env.config.max_steps):
        nxt, r, term, trunc, info = env.step(servo(obs))
        rows.append((nxt, r, info))
        obs = nxt
        if term or trunc:
            break
    return rows, info


def test_the_observation_is_the_insertion_one_with_its_pose_as_achieved_goal(
    env: InsertionGoalEnv,
) -> None:
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    assert obs["observation"].shape == (18,) and obs["achieved_goal"].shape == (4,)
    np.testing.assert_array_equal(obs["achieved_goal"], obs["observation"][list(GOAL_OBS)])
    assert GOAL_NAMES == ("x_mm", "y_mm", "z_mm", "yaw_deg")
    assert env.observation_space.contains(obs)


@pytest.mark.slow
def test_every_step_rewards_with_the_shared_function(env: InsertionGoalEnv) -> None:
    for seed in range(4):
        rows, _ = run(env, seed)
        for obs, r, info in rows:
            want = float(sparse_goal_reward(obs["achieved_goal"], obs["desired_goal"], env.epsilon))
            assert r == want == float(env.compute_reward(obs["achieved_goal"], obs["desired_goal"]))
            assert info["is_success"] == (r == 1.0)


@pytest.mark.slow
def test_reaching_the_inserted_goal_is_an_insertion(env: InsertionGoalEnv) -> None:
    for seed in range(3):
        rows, info = run(env, seed, env.inserted_goal())
        assert rows[-1][1] == 1.0 and info["inserted"] and not info["safety_violation"]
        # before it, no step was within epsilon of the inserted pose without being inserted
        assert all(r == 0.0 for _, r, i in rows[:-1] if not i["inserted"])


@pytest.mark.slow
def test_a_hover_goal_is_reached_without_inserting(env: InsertionGoalEnv) -> None:
    rng = np.random.default_rng(0)
    env.inserted_fraction = 0.0
    try:
        goal = env.sample_goal(rng)
    finally:
        env.inserted_fraction = 0.5
    assert goal[2] > env.base.plug_spec.max_pin_length  # pin tips above the face
    rows, info = run(env, 1, goal)
    assert any(r == 1.0 for _, r, _ in rows) and not info["inserted"]


def test_goals_are_drawn_per_episode_in_the_stated_mix(env: InsertionGoalEnv) -> None:
    rng = np.random.default_rng(0)
    inserted = env.inserted_goal()
    goals = [env.sample_goal(rng) for _ in range(400)]
    share = np.mean([np.array_equal(g, inserted) for g in goals])
    assert share == pytest.approx(0.5, abs=0.08)
    first, _ = env.reset(seed=5)
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first["desired_goal"], again["desired_goal"])  # seeded


def test_a_bad_goal_or_epsilon_is_refused_in_one_line(env: InsertionGoalEnv) -> None:
    with pytest.raises(ValueError, match="goal must be 4 finite numbers"):
        env.reset(seed=0, options={"goal": [0.0, 0.0, float("nan"), 0.0]})
    with pytest.raises(ValueError, match="goal must be 4 finite numbers"):
        env.reset(seed=0, options={"goal": [0.0, 1.0]})
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        InsertionGoalEnv(epsilon=0.0)


def test_the_goal_env_is_registered() -> None:
    assert "zshot/InsertionGoal-v0" in sim.ENV_IDS
    e = gym.make("zshot/InsertionGoal-v0")
    try:
        obs, _ = e.reset(seed=0)
        assert obs["desired_goal"].shape == (4,)
    finally:
        e.close()
