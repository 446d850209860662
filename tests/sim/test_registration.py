"""Registered Gymnasium ids: specs state the envs' limits; importing sim prints no banner."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import sim
from sim.terrain import ENV_IDS as TERRAIN_IDS

ALL_IDS = [*sim.ENV_IDS, *TERRAIN_IDS]


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_spec_max_episode_steps_is_the_envs_own_limit(env_id: str) -> None:
    spec = gym.spec(env_id)
    env = gym.make(env_id)
    try:
        assert spec.max_episode_steps is not None
        assert spec.max_episode_steps == env.unwrapped.config.max_steps
        assert env.spec is not None and env.spec.max_episode_steps == spec.max_episode_steps
    finally:
        env.close()


def test_the_env_truncates_itself_at_the_spec_limit() -> None:
    env = gym.make("zshot/CheetahVel-v0", max_episode_steps=10_000)  # TimeLimit out of the way
    limit = gym.spec("zshot/CheetahVel-v0").max_episode_steps
    env.reset(seed=0)
    steps, trunc = 0, False
    while not trunc:
        *_, term, trunc, _ = env.step(np.zeros(env.action_space.shape, np.float32))
        steps += 1
        assert not term
    assert steps == limit
    env.close()


def test_locomotion_bounds_are_finite_where_they_exist() -> None:
    env = gym.make("zshot/AntDir-v0")
    space = env.observation_space
    names = env.unwrapped.obs_names
    finite = [n for n, lo, hi in zip(names, space.low, space.high, strict=True) if np.isfinite(lo)]
    assert finite == ["quat_x", "quat_y", "quat_z", "quat_w"]
    assert (space.low[1:5] == -1).all() and (space.high[1:5] == 1).all()
    env.action_space.seed(0)  # seeded: random actions may end an episode early (the ant falls)
    obs, _ = env.reset(seed=1)
    for _ in range(30):
        assert space.contains(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()


def test_importing_sim_prints_no_pybullet_banner() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sim, pybullet; print('ok')"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "ok\n"
    assert "pybullet build time" not in out.stderr
