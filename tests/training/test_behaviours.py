"""Behaviours (training/behaviours.py): which scripted expert acts is told by the env's type."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest

from training.behaviours import ScriptedBehaviour, TeleopBehaviour
from training.common.toy_env import PointGoalEnv, PointTask


def _heads_for_the_goal(env: Any) -> None:
    task = PointTask(label="g", goal_x=0.0, goal_y=1.0)
    b = ScriptedBehaviour(env, 0.0, np.random.default_rng(0))
    b.reset(task)
    assert b.expert is None  # the point task's go-to-goal, no sim expert
    np.testing.assert_allclose(b.act(np.zeros(2, np.float32)), [0.0, 1.0])


def test_point_env_goes_to_its_goal_also_inside_a_wrapper() -> None:
    _heads_for_the_goal(PointGoalEnv())
    _heads_for_the_goal(gym.wrappers.TimeLimit(PointGoalEnv(), max_episode_steps=5))


class LooksLikeInsertion(gym.Env[np.ndarray, np.ndarray]):
    """Has what the old attribute check looked for (`config`, an `fz` observation)."""

    config: Any = object()
    obs_names: ClassVar[list[str]] = ["fz"]


@pytest.mark.parametrize("kind", [ScriptedBehaviour, TeleopBehaviour])
def test_an_env_without_a_scripted_expert_is_refused_by_type(kind: type) -> None:
    with pytest.raises(TypeError, match="no scripted expert for LooksLikeInsertion"):
        kind(LooksLikeInsertion(), 0.1, np.random.default_rng(0))


def test_insertion_env_gets_the_spiral_and_the_teleop_demonstrator() -> None:
    pytest.importorskip("pybullet")
    from sim.insertion import InsertionEnv
    from sim.spiral import SpiralSearchPolicy
    from sim.teleop import TeleopDemonstrator

    env = InsertionEnv()
    try:
        rng = np.random.default_rng(0)
        assert isinstance(ScriptedBehaviour(env, 0.1, rng).expert, SpiralSearchPolicy)
        assert isinstance(TeleopBehaviour(env, 0.1, rng).expert, TeleopDemonstrator)
    finally:
        env.close()
