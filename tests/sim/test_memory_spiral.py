"""The spiral search with memory (`sim.spiral.MemorySpiralPolicy`): re-entry at the remembered
pose, per-task memory, nothing privileged, the yaw schedule, bounded commands."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import InsertionEnvConfig
from sim.insertion import OBS_DIM, OBS_INDEX, InsertionEnv
from sim.spiral import MemorySpiralParams, MemorySpiralPolicy
from sim.tasks import InsertionTask

CFG = InsertionEnvConfig()
TASK = InsertionTask(plug="Car-plug-4p", dx=0.0011, dy=-0.0007, dyaw=0.004)


def _episode(
    env: InsertionEnv, pol: MemorySpiralPolicy, seed: int
) -> tuple[bool, list[str], list[np.ndarray], list[np.ndarray]]:
    """One episode: success, the phases the policy went through, observations, actions."""
    obs, _ = env.reset(seed=seed)
    pol.reset_episode()
    phases, seen, acts = [], [], []
    info: dict = {}
    for _ in range(CFG.max_steps):
        a = pol.act(obs)
        phases.append(pol.phase)
        seen.append(obs)
        acts.append(a)
        obs, _, term, trunc, info = env.step(a)
        if term or trunc:
            break
    pol.end_episode(bool(info["is_success"]), obs)
    return bool(info["is_success"]), phases, seen, acts


def _obs(x: float = 0.0, y: float = 0.0, z: float = 30.0, yaw: float = 0.0, fz: float = 0.0):
    o = np.zeros(OBS_DIM, np.float32)
    o[OBS_INDEX["x_mm"]], o[OBS_INDEX["y_mm"]], o[OBS_INDEX["z_mm"]] = x, y, z
    o[OBS_INDEX["yaw_deg"]] = yaw
    o[OBS_INDEX["fz"]] = fz / CFG.force_ref
    return o


def test_a_success_is_remembered_and_the_next_episode_goes_straight_there() -> None:
    pol = MemorySpiralPolicy(CFG)
    pol.end_episode(True, _obs(1.2, -0.7, 10.0, 1.5))
    assert pol.memory == pytest.approx((1.2, -0.7, 1.5))
    pol.reset_episode()
    a = pol.act(_obs(-0.5, 0.4, 30.0, 0.0))
    # heading for the remembered pose (+x, -y, +yaw), not the believed socket's centre
    assert pol.phase == "transit" and pol.after == "peck"
    assert pol.goal == pytest.approx((1.2, -0.7, 1.5))
    assert a[0] > 0 and a[1] < 0 and a[3] > 0
    pol.end_episode(False)  # a failure keeps the memory
    assert pol.memory == pytest.approx((1.2, -0.7, 1.5))
    pol.reset_task()  # a new task forgets it: back to the spiral around the believed socket
    assert pol.memory is None and pol.passes == 0
    pol.act(_obs(-0.5, 0.4, 30.0, 0.0))
    assert pol.after == "search" and pol.goal == pytest.approx((0.0, 0.0, 0.0))


def test_after_a_success_the_same_task_re_enters_without_searching() -> None:
    env = InsertionEnv(CFG, task=TASK)
    pol = MemorySpiralPolicy(CFG)
    try:
        for seed in range(6):  # search until the first success
            ok, phases, _, _ = _episode(env, pol, seed)
            if ok:
                break
        assert ok and "search" in phases and pol.memory is not None
        mx, my, _ = pol.memory
        ok, phases, seen, _ = _episode(env, pol, 100)
        assert ok and "search" not in phases and phases[-1] == "insert"
        # no spiral: once over the remembered pose the plug stays within the local search
        near_face = [o for o in seen if o[OBS_INDEX["z_mm"]] < pol.z_face + pol.params.hover]
        assert near_face
        assert (
            max(math.hypot(o[OBS_INDEX["x_mm"]] - mx, o[OBS_INDEX["y_mm"]] - my) for o in near_face)
            < pol.params.local_radius + 0.3
        )
        pol.reset_task()  # a new task (here: the same socket, but the policy cannot know)
        _, phases, _, _ = _episode(env, pol, 101)
        assert "search" in phases and "peck" not in phases
    finally:
        env.close()


def test_actions_depend_on_the_observations_only() -> None:
    """Two tasks that differ only in the hidden socket pose: the policy acts identically while
    the observations are identical (free space), and replaying one task's observations to a
    fresh policy gives that task's actions whatever task the env holds."""
    other = TASK.model_copy(update={"dx": -0.0015, "dy": 0.0012, "dyaw": -0.03})
    runs = []
    for task in (TASK, other):
        env = InsertionEnv(CFG, task=task)
        try:
            runs.append(_episode(env, MemorySpiralPolicy(CFG), seed=7))
        finally:
            env.close()
    (_, _, obs_a, act_a), (_, _, obs_b, act_b) = runs
    same = 0
    while same < min(len(obs_a), len(obs_b)) and np.array_equal(obs_a[same], obs_b[same]):
        assert np.array_equal(act_a[same], act_b[same])
        same += 1
    assert same >= 3  # the free-space approach
    assert same < min(len(obs_a), len(obs_b))  # then contact tells the tasks apart
    replay = MemorySpiralPolicy(CFG)
    replay.reset_episode()
    for o, a in zip(obs_a, act_a, strict=True):
        assert np.array_equal(replay.act(o), a)


def test_yaw_offsets_cycle_one_per_pass() -> None:
    """Pressed on the face (contact force, no drop), the spiral runs pass after pass; each
    pass holds one yaw offset (within the dither), cycling 0, +1, -1, +2, -2, +3, -3 deg."""
    prm = MemorySpiralParams()
    pol = MemorySpiralPolicy(CFG, prm)
    pol.reset_episode()
    yaws: dict[int, list[float]] = {}
    for _ in range(2000):
        pol.act(_obs(z=20.0, fz=prm.search_force))  # the plug rests on the face
        if pol.phase == "search":
            yaws.setdefault(pol.passes, []).append(pol.cmd_yaw)
        if pol.passes > 8:
            break
    assert pol.passes > 8
    expected = [0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.0, 1.0]
    assert [pol.params.yaw_offsets[k % 7] for k in range(9)] == expected
    for k, want in enumerate(expected):
        settled = yaws[k][len(yaws[k]) // 2 :]  # after the turn from the last pass's yaw
        assert max(abs(y - want) for y in settled) <= prm.yaw_dither + 1e-6


def test_the_search_resumes_where_the_last_episode_stopped() -> None:
    pol = MemorySpiralPolicy(CFG)
    pol.reset_episode()
    for _ in range(30):
        pol.act(_obs(z=20.0, fz=8.0))
    theta, passes = pol.theta, pol.passes
    assert theta > 0
    pol.end_episode(False)
    pol.reset_episode()
    pol.act(_obs(z=30.0))
    assert (pol.theta, pol.passes) == (theta, passes)  # the next episode starts there
    assert pol.goal[:2] == pytest.approx(pol._spiral_point()[:2])


finite = st.floats(-60.0, 60.0, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(finite, min_size=OBS_DIM, max_size=OBS_DIM), min_size=1, max_size=60),
    st.lists(st.booleans(), min_size=1, max_size=4),
)
def test_commands_are_finite_and_within_the_action_box(
    rows: list[list[float]], outcomes: list[bool]
) -> None:
    pol = MemorySpiralPolicy(CFG)
    for ok in outcomes:
        pol.reset_episode()
        for row in rows:
            a = pol.act(np.asarray(row, np.float32))
            assert a.shape == (4,) and a.dtype == np.float32
            assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
        pol.end_episode(ok, np.asarray(rows[-1], np.float32))


def _press_until(pol: MemorySpiralPolicy, done, steps: int = 2000) -> list[str]:
    """Act with the plug resting on the face at the believed socket (contact, no drop) until
    `done(pol)`; the phases seen."""
    phases = []
    for _ in range(steps):
        pol.act(_obs(z=20.0, fz=pol.params.search_force))
        phases.append(pol.phase)
        if done(pol):
            return phases
    raise AssertionError(f"not reached in {steps} steps: phases {sorted(set(phases))}")


def test_a_failed_re_entry_falls_back_to_the_full_search_in_the_same_episode() -> None:
    """The remembered pose does not go in (the socket moved): after the pecks and the local
    spiral the full search starts from its centre and first pass in that same episode; a
    second such episode and the memory is no longer trusted: no re-entry, the search alone."""
    prm = MemorySpiralParams()
    pol = MemorySpiralPolicy(CFG, prm)
    pol.end_episode(True, _obs(0.0, 0.0, 10.0, 0.0))  # a success at the believed socket
    for failure in (1, 2):
        pol.reset_episode()
        pol.theta, pol.passes = 5.0, 3  # somewhere in the task's search
        phases = _press_until(pol, lambda p: p.reentry_failed)
        assert "peck" in phases and pol.local is False  # pecked, then the local spiral
        assert (pol.theta, pol.passes) == (0.0, 0)  # the full search, from its start
        _press_until(pol, lambda p: p.phase == "search" and p.theta > 1.0, steps=50)
        assert not pol.local and pol.memory is not None
        pol.end_episode(False)
        assert pol.reentry_failures == failure
        assert pol.trusted is (failure < prm.distrust_after)
    pol.reset_episode()
    pol.act(_obs(z=30.0))
    assert not pol.reentering and pol.after == "search"  # straight to the search


def test_success_poses_that_scatter_mean_the_memory_is_not_trusted() -> None:
    pol = MemorySpiralPolicy(CFG)
    pol.end_episode(True, _obs(0.1, 0.0, 10.0, 0.5))
    pol.end_episode(True, _obs(0.2, 0.05, 10.0, 0.3))  # within the clearance: trusted
    assert pol.trusted
    pol.end_episode(True, _obs(1.1, -0.6, 10.0, 1.0))  # a millimetre off: the socket moves
    assert not pol.trusted
    assert pol.centre == pytest.approx((1.4 / 3, -0.55 / 3, 0.6))  # search around their mean
    pol.reset_episode()
    pol.theta, pol.passes = 7.0, 2
    pol.reset_episode()  # each episode's search starts from its centre and first pass
    assert (pol.theta, pol.passes) == (0.0, 0) and not pol.pecks
    pol.act(_obs(z=30.0))
    assert pol.goal == pytest.approx(pol.centre)
    pol.reset_task()
    assert pol.trusted and pol.centre == (0.0, 0.0, 0.0)


def test_memory_off_is_the_search_alone() -> None:
    pol = MemorySpiralPolicy(CFG, MemorySpiralParams(memory=False))
    pol.reset_episode()
    for _ in range(30):
        pol.act(_obs(z=20.0, fz=8.0))
    assert pol.theta > 0
    pol.end_episode(True, _obs(1.2, -0.7, 10.0, 1.5))
    assert pol.memory is None and pol.successes == [] and pol.trusted
    pol.reset_episode()
    pol.act(_obs(z=30.0))
    # no re-entry, and the search starts again from the believed socket (no resume)
    assert not pol.pecks and pol.after == "search" and (pol.theta, pol.passes) == (0.0, 0)
    assert pol.goal == pytest.approx((0.0, 0.0, 0.0))


@settings(max_examples=30, deadline=None)
@given(box=st.floats(0.3, 2.5), pass_turn=st.floats(0.0, 1.0), arc=st.floats(0.05, 1.5))
def test_box_bounds_the_task_search_and_passes_still_end(
    box: float, pass_turn: float, arc: float
) -> None:
    """With `box` the task search's points stay in the square (the prior's support) and a
    pass still ends at `max_radius`; the default (inf) leaves the disc as it was."""
    pol = MemorySpiralPolicy(CFG, MemorySpiralParams(box=box, pass_turn=pass_turn))
    passes = pol.passes
    for _ in range(20_000):
        if pol._advance(arc):
            break
        x, y, _ = pol._spiral_point()
        assert max(abs(x), abs(y)) <= box + 1e-9
    assert pol.passes == passes + 1
    disc = MemorySpiralPolicy(CFG)
    outside = 0
    while not disc._advance(0.1):
        x, y, _ = disc._spiral_point()
        outside += max(abs(x), abs(y)) > 2.5
    assert outside > 0


def test_search_variants_bench_parses_params_and_refuses_unknown_ones() -> None:
    """bench/search_variants.py: FIELD=VALUE -> MemorySpiralParams kwargs (tuples from
    commas, the field's type otherwise); a field that does not exist is refused by name."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "search_variants.py"
    spec = importlib.util.spec_from_file_location("search_variants", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    got = mod.parse_params(["box=2.2", "yaw_offsets=0,1.5,-1.5", "memory=false", "peck_points=4"])
    assert got == {"box": 2.2, "yaw_offsets": (0.0, 1.5, -1.5), "memory": False, "peck_points": 4}
    MemorySpiralParams(**got)
    with pytest.raises(ValueError, match="'boxx=1'"):
        mod.parse_params(["boxx=1"])
    with pytest.raises(ValueError, match="'box'"):
        mod.parse_params(["box"])
