"""Control loop + watchdog against fake runtimes and the MockRobot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hardware_bridge.config import SafetyLimits, WatchdogConfig
from hardware_bridge.loop import ControlLoop, StepRecord
from hardware_bridge.robots.mock import MockRobot
from hardware_bridge.safety import SafetyFlag
from hardware_bridge.watchdog import Watchdog
from tests.hardware_bridge.fakes import FakeRuntime


class ListSink:
    def __init__(self) -> None:
        self.episodes: list[dict[str, Any]] = []
        self.steps: list[StepRecord] = []
        self.open = False

    def begin_episode(self, meta: dict[str, Any]) -> None:
        assert not self.open
        self.open = True
        self.episodes.append({"meta": meta})

    def record(self, step: StepRecord) -> None:
        assert self.open
        self.steps.append(step)

    def end_episode(self, summary: dict[str, Any]) -> None:
        self.open = False
        self.episodes[-1]["summary"] = summary


def towards_hole(obs: np.ndarray, i: int) -> np.ndarray:
    """A proportional controller that finds the (here: zero-error) hole."""
    x, y, _z = obs[:3]
    return np.array([-x / 0.002, -y / 0.002, -1.0, 0.0], dtype=np.float32)


def make_loop(
    rt: FakeRuntime, robot: MockRobot | None = None, **kw: Any
) -> tuple[ControlLoop, MockRobot, ListSink, list[str]]:
    robot = robot or MockRobot(max_steps=40, pose_error_range=0.0)
    robot.connect()
    robot.set_task("peg", 0)
    rt.hello()
    sink = ListSink()
    msgs: list[str] = []
    wd = kw.pop(
        "watchdog",
        WatchdogConfig(max_consecutive_misses=3, reconnect_timeout_s=0.5, reconnect_poll_s=0.01),
    )
    loop = ControlLoop(
        robot,
        rt,
        safety=kw.pop("safety", SafetyLimits()),
        watchdog=wd,
        sink=sink,
        log=msgs.append,
        latent_dim=2,
        **kw,
    )
    return loop, robot, sink, msgs


def test_watchdog_counts_streaks() -> None:
    wd = Watchdog(0.05, 2)
    assert not wd.miss() and wd.miss() and wd.tripped
    wd.reply()
    assert not wd.tripped and wd.total_misses == 2 and wd.total_replies == 1
    with pytest.raises(ValueError):
        Watchdog(0.0, 1)


def test_episode_succeeds_and_every_step_is_recorded() -> None:
    rt = FakeRuntime(action_fn=towards_hole)
    loop, robot, sink, _ = make_loop(rt)
    res = loop.run_episode("exploit", {"plug": "peg"})
    assert res.success and not res.aborted and res.misses == 0
    assert len(sink.steps) == res.steps == len(robot.commands) - 1  # + the final hold
    # The runtime got every transition: res.steps - 1 on step requests + the last via observe.
    assert len(rt.context) == res.steps == len(loop.context.rows)
    for rec in sink.steps:
        assert np.all(np.isfinite(rec.sent)) and rec.latency_s >= 0
    # what was sent is what the robot got
    np.testing.assert_allclose(
        np.stack([s.sent for s in sink.steps]), np.stack(robot.commands[:-1])
    )
    assert sink.episodes[0]["summary"]["success"] is True


def test_sampled_actions_are_asked_for_on_every_step_only_when_set() -> None:
    rt = FakeRuntime(action_fn=towards_hole)
    loop, _, _, _ = make_loop(rt)
    res = loop.run_episode("exploit", {"plug": "peg"})
    assert res.steps > 0 and rt.stochastic_steps == 0  # default: the mean action
    rt = FakeRuntime(action_fn=towards_hole)
    loop, _, _, _ = make_loop(rt, stochastic=True)
    res = loop.run_episode("exploit", {"plug": "peg"})
    assert res.steps > 0 and rt.stochastic_steps == res.steps


def test_trials_config_sample_actions_defaults_off() -> None:
    from hardware_bridge.config import TrialsConfig

    assert TrialsConfig().sample_actions is False
    assert TrialsConfig.model_validate({"sample_actions": True}).sample_actions is True


def test_nan_actions_hold_the_robot_and_are_recorded_as_commanded() -> None:
    rt = FakeRuntime(
        action_fn=lambda obs, i: np.full(4, np.nan if i % 2 else 0.5, dtype=np.float32)
    )
    loop, robot, sink, _ = make_loop(rt)
    res = loop.run_episode("explore")
    nan_steps = [s for s in sink.steps if np.isnan(s.commanded).any()]
    assert nan_steps and res.holds == len(nan_steps)
    for s in nan_steps:
        assert s.flags & SafetyFlag.NONFINITE and np.all(s.sent == 0)
    assert all(np.all(np.isfinite(c)) for c in robot.commands)


def test_a_missed_deadline_holds_for_that_period_only() -> None:
    rt = FakeRuntime(
        action_fn=lambda obs, i: np.array([0, 0, -0.5, 0], dtype=np.float32),
        miss_fn=lambda i: i in (3, 4),
    )
    loop, robot, sink, _ = make_loop(rt)
    res = loop.run_episode("exploit")
    assert res.misses == 2 and not res.aborted
    flags = [s.flags for s in sink.steps]
    assert flags[3] & SafetyFlag.NO_REPLY and flags[4] & SafetyFlag.NO_REPLY
    assert not flags[5] & SafetyFlag.NO_REPLY
    assert np.all(robot.commands[3] == 0) and np.all(robot.commands[4] == 0)
    assert np.isnan(sink.steps[3].latency_s)


def test_k_consecutive_misses_stop_the_robot_and_abort() -> None:
    rt = FakeRuntime(
        action_fn=lambda obs, i: np.array([0, 0, -0.5, 0], dtype=np.float32),
        miss_fn=lambda i: i >= 5,
    )
    loop, robot, sink, msgs = make_loop(rt)
    res = loop.run_episode("exploit")
    assert res.aborted and res.abort_reason.startswith("runtime_lost")
    assert res.steps == 5 + 3 and robot.stopped
    # every period after the first miss was a hold: the robot stood still from the first miss
    assert all(np.all(c == 0) for c in robot.commands[5:])
    assert sink.steps[-1].flags & SafetyFlag.RUNTIME_LOST
    assert any("robot stopped" in m for m in msgs)


def test_killed_runtime_safe_stop_then_restore_replays_the_context() -> None:
    rt = FakeRuntime(action_fn=lambda obs, i: np.array([0.1, 0, -0.2, 0], dtype=np.float32))
    loop, robot, _sink, msgs = make_loop(rt)
    first = loop.run_episode("explore")
    assert not first.aborted
    before = rt.get_state()
    rt.kill_after_steps = rt.steps + 4
    second = loop.run_episode("explore")
    assert second.aborted and "runtime_lost" in second.abort_reason
    # the first period without a reply already held the robot
    assert np.all(robot.commands[first.steps + 1 + 4] == 0)
    assert not loop.restore_runtime()  # still dead: gives up after reconnect_timeout_s
    assert any("did not come back" in m for m in msgs)
    rt.alive = True  # restarted, with no sessions
    assert loop.restore_runtime()
    after = rt.get_state()
    # posterior restored: every transition the loop saw, including the aborted episode's
    assert after.count == len(loop.context.rows) == before.count + second.steps
    np.testing.assert_allclose(np.stack(rt.context), np.stack(loop.context.rows))
    assert rt.mode == ("explore", "episode") and rt.sessions_opened == 2
    third = loop.run_episode("exploit")
    assert not third.aborted


def test_force_limit_retracts_then_stops_and_aborts() -> None:
    rt = FakeRuntime(action_fn=lambda obs, i: np.array([0, 0, -1.0, 0], dtype=np.float32))
    limits = SafetyLimits(max_force=5.0, retract_steps=3, max_lin_delta=0.05)  # mock: 10 N
    loop, robot, sink, _msgs = make_loop(rt, safety=limits)
    robot.socket_error = np.array([0.02, 0.0])  # the hole is far off: the plug hits the face
    res = loop.run_episode("exploit")
    assert res.aborted and res.abort_reason.startswith("force_limit") and robot.stopped
    retract = [s for s in sink.steps if s.flags & SafetyFlag.FORCE_STOP]
    assert len(retract) == limits.retract_steps + 1
    for s in retract:
        assert SafetyFlag.FORCE_STOP & s.flags and s.sent[2] > 0  # moving up
    assert res.peak_force > limits.max_force


def test_nan_reading_is_held_and_kept_out_of_the_context() -> None:
    rt = FakeRuntime(action_fn=lambda obs, i: np.array([0, 0, -0.2, 0], dtype=np.float32))
    loop, robot, sink, _ = make_loop(rt)
    robot.max_steps = 6
    robot.fault_nan_reading = True
    res = loop.run_episode("exploit")
    assert res.holds == res.steps
    assert all(s.flags & SafetyFlag.SENSOR_FAULT for s in sink.steps)
    assert all(np.all(np.isfinite(r)) for r in rt.context)


def test_realtime_pacing_sleeps_to_the_period() -> None:
    now = [0.0]
    slept: list[float] = []

    def clock() -> float:
        return now[0]

    def sleep(dt: float) -> None:
        slept.append(dt)
        now[0] += dt

    rt = FakeRuntime()
    loop, robot, _, _ = make_loop(rt, realtime=True, clock=clock, sleep=sleep)
    robot.max_steps = 5
    loop.run_episode("exploit")
    assert len(slept) == 5 and all(d == pytest.approx(0.1) for d in slept)


def test_runtime_down_at_episode_start_aborts_without_moving() -> None:
    rt = FakeRuntime()
    loop, robot, sink, _ = make_loop(rt)
    rt.kill()
    res = loop.run_episode("exploit")
    assert res.aborted and res.steps == 0 and robot.commands == [] and sink.steps == []


def test_update_per_step_records_the_posterior_as_it_moves() -> None:
    rt = FakeRuntime(action_fn=lambda obs, i: np.array([0.2, 0, -0.2, 0], dtype=np.float32))
    loop, _, sink, _ = make_loop(rt, update="step")
    loop.run_episode("explore")
    assert rt.mode == ("explore", "step")
    means = np.stack([s.z_mean for s in sink.steps])
    # the fake's posterior mean is the context mean: it changes as transitions arrive
    assert len({tuple(m) for m in means}) > len(means) // 2


def test_transitions_the_runtime_never_got_are_delivered_at_episode_end() -> None:
    class Refusing(FakeRuntime):
        def step(self, obs, transition=None, *, timeout_s=None, stochastic=False):  # type: ignore[no-untyped-def]
            if self.steps in (4, 9):
                self.steps += 1
                raise ConnectionError("not sent: no connection")  # like RuntimeUnavailable
            return super().step(obs, transition, timeout_s=timeout_s, stochastic=stochastic)

    rt = Refusing(action_fn=lambda obs, i: np.array([0.1, 0, -0.2, 0], dtype=np.float32))
    loop, _, _, _ = make_loop(rt)
    res = loop.run_episode("explore")
    assert res.misses == 2 and not res.aborted
    assert len(rt.context) == len(loop.context.rows) == res.steps


def test_retract_transitions_reach_the_runtime_too() -> None:
    rt = FakeRuntime(action_fn=lambda obs, i: np.array([0, 0, -1.0, 0], dtype=np.float32))
    loop, robot, _, _ = make_loop(rt, safety=SafetyLimits(max_force=5.0, retract_steps=3))
    robot.socket_error = np.array([0.02, 0.0])
    res = loop.run_episode("exploit")
    assert res.aborted and res.abort_reason.startswith("force_limit")
    assert len(rt.context) == len(loop.context.rows) == res.steps
