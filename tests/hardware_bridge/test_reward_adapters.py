"""Every adapter reports zshot.reward's reward: the sim's, the UR's and the mock's agree on
the same measurements, and none of them reads the hidden socket pose."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware_bridge.config import SimRobotConfig, URConfig
from hardware_bridge.robots.mock import MockRobot
from hardware_bridge.robots.ur import URRobot
from zshot.reward import InsertionLimits, InsertionMeasurement, insertion_reward

pytest.importorskip("pybullet")


def test_the_ur_adapter_gives_the_sim_reward_on_the_sim_robot_readings() -> None:
    """A spiral episode on SimRobot: at every reading, URRobot.reward_of (the TCP pose and
    yaw in the believed socket frame, |F|), configured with the plug's success depth and pin
    length, gives the reward and success the sim put in the transition."""
    from hardware_bridge.robots.sim import SimRobot
    from sim.spiral import SpiralSearchPolicy

    sim = SimRobot(SimRobotConfig(profile="known"), seed=0)
    sim.connect()
    sim.set_task("Metal-peg-sq", 0)
    state = sim.reset()  # the task (and its plug) takes effect here
    spec = sim.env.plug_spec
    ur_cfg = URConfig(
        insertion_depth=spec.effective_success_depth / 1000.0,
        tcp_to_tip=spec.max_pin_length / 1000.0,
    )
    ur = URRobot(ur_cfg, force_ref=sim.env.config.force_ref)
    policy = SpiralSearchPolicy(sim.env.config)
    yaw_i = sim.obs_names.index("yaw_deg")
    checked = successes = 0
    for _ in range(sim.max_steps):
        sim.command(policy.act(state.obs))
        state = sim.observe()
        tcp = state.tcp_position + np.array([0.0, 0.0, ur.cfg.tcp_to_tip])  # pins -> origin
        reward, success, _ = ur.reward_of(
            tcp, math.radians(float(state.obs[yaw_i])), float(np.linalg.norm(state.wrench[:3]))
        )
        if not state.info["safety_violation"]:
            assert reward == pytest.approx(state.reward, abs=1e-3)
            assert success == state.success
            checked += 1
        successes += int(success)
        if state.terminated or state.truncated:
            break
    sim.disconnect()
    assert checked > 10 and successes == 1  # contact, search and the insertion were compared


def test_the_mock_reports_zshot_reward_of_its_believed_frame_reading() -> None:
    """The mock's reward never uses its hidden socket_error: two tasks with different errors
    give the same reward for the same free-space motion, and at depth it is a success."""
    rewards = []
    for seed in (0, 1):
        r = MockRobot(seed=seed)
        r.connect()
        r.set_task("peg", 0)
        r.reset()
        out = []
        for a in ([0.5, 0.0, -0.1, 0.0], [0.0, -0.3, 0.2, 0.0]):
            r.command(np.array(a))
            out.append(r.observe().reward)
        rewards.append(out)
        assert not np.allclose(r.socket_error, 0.0)
    assert rewards[0] == rewards[1]
    # in the hole, at the bottom: zshot.reward's success
    r = MockRobot(seed=0, pose_error_range=0.0)
    r.connect()
    r.set_task("peg", 0)
    r.reset()
    for _ in range(20):
        r.command(np.array([0.0, 0.0, -1.0, 0.0]))
    s = r.observe()
    want = insertion_reward(
        r.reward_config,
        InsertionMeasurement(0.0, 0.0, 0.01, 0.0, 0.0),
        InsertionLimits(success_depth_m=0.01 - 1e-9, max_steps=r.max_steps, force_limit_n=1e9),
    )
    assert s.success and s.reward == pytest.approx(want[0])
