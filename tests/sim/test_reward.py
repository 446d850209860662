"""InsertionEnv reward: a force-limit violation must never be a shortcut, and the dense
shaping must point into the *true* hole (the observation is relative to the believed one)."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pybullet as p
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import InsertionEnvConfig, RewardConfig
from sim.insertion import MM, InsertionEnv
from sim.tasks import InsertionTask

TASK = InsertionTask(plug="Metal-peg-sq", dx=0.0015, dy=-0.001, dyaw=math.radians(2.0))


def _episode(env: InsertionEnv, action: np.ndarray, seed: int = 0) -> tuple[float, dict]:
    env.reset(seed=seed)
    ret = 0.0
    while True:
        _, r, terminated, truncated, info = env.step(action)
        ret += r
        if terminated or truncated:
            return ret, info


def test_violation_episode_costs_more_than_the_worst_non_violating_one() -> None:
    """Same task: pushing straight down onto the face past the force limit (a short episode)
    against drifting up and away for the whole time limit (every step at the cost clip, the
    worst an episode without a violation can do). The first PEARL run preferred the former."""
    cfg = InsertionEnvConfig(force_limit=30.0, max_force=45.0)
    env = InsertionEnv(cfg, task=TASK.model_copy(update={"dx": 0.004}))  # pins land on the face
    violate, vinfo = _episode(env, np.array([0.0, 0.0, -1.0, 0.0], np.float32))
    worst, winfo = _episode(env, np.array([1.0, 1.0, 1.0, 1.0], np.float32))
    env.close()
    assert vinfo["safety_violation"] and vinfo["elapsed_s"] < 0.5 * cfg.max_steps / cfg.control_hz
    assert not winfo["safety_violation"] and not winfo["is_success"]
    assert winfo["elapsed_s"] == pytest.approx(cfg.max_steps / cfg.control_hz)
    bound = -cfg.max_steps * cfg.reward.max_step_cost
    assert bound <= worst < bound * 0.5  # it really is near the worst case
    assert violate < worst


def _fake_env(cfg: InsertionEnvConfig, exy: float, eyaw: float, depth: float, force: float):
    """The state `InsertionEnv._reward` reads, without PyBullet: errors (mm, rad, mm) and the
    wrist force (N) along x."""
    spec = SimpleNamespace(effective_success_depth=15.0)
    return SimpleNamespace(
        config=cfg,
        _spec=spec,
        _wrench=np.array([force, 0.0, 0.0, 0.0, 0.0, 0.0]),
        _errors=lambda: (exy, eyaw, depth),
    )


_state = st.tuples(
    st.floats(0.0, 500.0),  # lateral error, mm
    st.floats(0.0, math.pi),  # yaw error, rad
    st.floats(-200.0, 30.0),  # depth, mm (negative: above the face)
    st.floats(0.0, 200.0),  # wrist force, N
    st.booleans(),  # success
)


@settings(max_examples=100, deadline=None)
@given(
    clean=st.lists(_state, min_size=1, max_size=100),
    before=st.lists(_state, min_size=0, max_size=99),
    last=_state,
    max_step_cost=st.floats(0.1, 10.0),
    safety_penalty=st.floats(1e-3, 100.0),
)
def test_any_violating_episode_returns_less_than_any_clean_one(
    clean, before, last, max_step_cost, safety_penalty
) -> None:
    """Property: over arbitrary states, an episode that ends in a violation (after any
    <= max_steps - 1 clean steps) returns less than any episode of <= max_steps clean steps
    (a success ends an episode, so only the last step of either can be one)."""
    cfg = InsertionEnvConfig(
        reward=RewardConfig(max_step_cost=max_step_cost, safety_penalty=safety_penalty)
    )

    def r(state, violation: bool) -> float:
        exy, eyaw, depth, force, success = state
        env = _fake_env(cfg, exy, eyaw, depth, force)
        return InsertionEnv._reward(env, success, violation)  # type: ignore[arg-type]

    # success ends an episode: only an episode's last step can be a success
    no_success = [(*s[:4], False) for s in before]
    clean_ret = sum(r((*s[:4], False), False) for s in clean[:-1]) + r(clean[-1], False)
    violating_ret = sum(r(s, False) for s in no_success) + r(last, True)
    assert clean_ret >= -cfg.max_steps * max_step_cost
    assert violating_ret <= -cfg.reward.violation_penalty(cfg.max_steps)
    assert violating_ret < clean_ret


@settings(max_examples=100, deadline=None)
@given(st.tuples(st.floats(0.0, 500.0), st.floats(0.0, math.pi), st.floats(-200.0, 30.0)))
def test_clean_step_reward_is_bounded(errors) -> None:
    cfg = InsertionEnvConfig()
    env = _fake_env(cfg, *errors, force=39.0)
    rc = cfg.reward
    assert -rc.max_step_cost <= InsertionEnv._reward(env, False, False) <= 0.0  # type: ignore[arg-type]
    assert InsertionEnv._reward(env, True, False) <= rc.success_bonus  # type: ignore[arg-type]


def _reward_at(env: InsertionEnv, x_mm: float, y_mm: float, yaw: float, lift_mm: float) -> float:
    """Reward of a plug placed at (x, y, yaw) in the believed socket frame, its pin tips
    lift_mm above the socket face, at rest."""
    z = env.plug_spec.max_pin_length + lift_mm
    q = p.getQuaternionFromEuler((0.0, 0.0, yaw))
    p.resetBasePositionAndOrientation(env._plug_id, (x_mm, y_mm, z), q, physicsClientId=env._cid)
    env._cache = None
    env._wrench = np.zeros(6)
    return env._reward(False, False)


def test_shaping_points_into_the_true_hole_not_the_believed_one() -> None:
    env = InsertionEnv(task=TASK)
    env.reset(seed=0)
    true_xy = np.array([TASK.dx, TASK.dy]) * MM
    # walking from the believed centre (0, 0) to the true one, at 1 mm above the face, with
    # the believed yaw (0) and then the true yaw: the reward rises all the way
    path = [_reward_at(env, *(f * true_xy), yaw=0.0, lift_mm=1.0) for f in np.linspace(0.0, 1.0, 6)]
    at_true = _reward_at(env, *true_xy, yaw=TASK.dyaw, lift_mm=1.0)
    assert all(b > a for a, b in itertools.pairwise(path))
    assert at_true > path[-1]
    # and overshooting past the true hole costs again
    assert _reward_at(env, *(2.0 * true_xy), yaw=TASK.dyaw, lift_mm=1.0) < at_true
    # lower over the true hole is better (depth term), up to the success depth
    assert _reward_at(env, *true_xy, yaw=TASK.dyaw, lift_mm=-5.0) > at_true
    env.close()


def test_reward_config_rejects_a_non_positive_cost_clip() -> None:
    with pytest.raises(ValueError, match="max_step_cost"):
        RewardConfig(max_step_cost=0.0)
