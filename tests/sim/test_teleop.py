"""The teleop demonstrator (sim/teleop.py): told the hidden task, it inserts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sim.config import InsertionEnvConfig
from sim.insertion import ACT_DIM, OBS_DIM, InsertionEnv
from sim.tasks import InsertionTask, TaskFamily
from sim.teleop import TeleopDemonstrator


def _episode(env: InsertionEnv, demo: TeleopDemonstrator, task: InsertionTask) -> dict:
    demo.reset(task)
    obs, _ = env.reset(options={"task": task})
    info: dict = {}
    for _ in range(env.config.max_steps):
        obs, _, term, trunc, info = env.step(demo.act(obs))
        if term or trunc:
            break
    return info


def test_inserts_held_out_plugs_under_the_hidden_socket_error() -> None:
    """The first test task of each named plug (socket off by up to 2 mm and 3 degrees from
    where it is believed): told the task, the demonstrator inserts every one (measured
    90/90 over all 10 tasks per plug); the spiral, not told, does not (375/900 seeded)."""
    cfg = InsertionEnvConfig()
    fam = TaskFamily(cfg, seed=0)
    env = InsertionEnv(cfg)
    demo = TeleopDemonstrator(cfg)
    try:
        tasks = [fam.tasks_for(p)[0] for p in fam.held_out]
        assert any(abs(t.dx) > 0.001 or abs(t.dy) > 0.001 for t in tasks)
        for task in tasks:
            info = _episode(env, demo, task)
            assert info["is_success"] and not info["safety_violation"], task.plug
    finally:
        env.close()


def test_goes_to_the_true_socket_not_the_believed_one() -> None:
    """Its first move points at the task's offset: a demonstration carries the task."""
    demo = TeleopDemonstrator()
    obs = np.zeros(OBS_DIM, np.float32)
    for dx, dy in [(0.002, 0.0), (0.0, -0.0015), (-0.001, 0.001)]:
        demo.reset(InsertionTask(plug="UK-AC-plug", dx=dx, dy=dy))
        a = demo.act(obs)
        assert np.sign(a[0]) == np.sign(dx) and np.sign(a[1]) == np.sign(dy)
        assert a[2] == 0.0  # not lowered before it is over the socket


@settings(max_examples=50, deadline=None)
@given(
    obs=arrays(np.float32, OBS_DIM, elements=st.floats(-1e3, 1e3, width=32)),
    dx=st.floats(-0.05, 0.05),
    dyaw=st.floats(-0.8, 0.8),
)
def test_actions_stay_in_the_action_box(obs: np.ndarray, dx: float, dyaw: float) -> None:
    demo = TeleopDemonstrator()
    demo.reset(InsertionTask(plug="Metal-peg-sq", dx=dx, dyaw=dyaw))
    a = demo.act(obs)
    assert a.shape == (ACT_DIM,) and a.dtype == np.float32
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)


def test_needs_a_task_first() -> None:
    demo = TeleopDemonstrator()
    with pytest.raises(RuntimeError, match="before reset"):
        demo.act(np.zeros(OBS_DIM, np.float32))
    with pytest.raises(TypeError, match="InsertionTask"):
        demo.reset({"dx": 0.0})  # type: ignore[arg-type]
