"""The contact-torque yaw search (`sim.contact_search.ContactSpiralPolicy`): which way it turns
yaw for a given torque sign, the yaw bounds its stalls set, bounded commands, and that it reads
nothing privileged (the observation and its own commands only)."""

from __future__ import annotations

import ast
import inspect
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.contact_search as contact_search
from sim.config import InsertionEnvConfig
from sim.contact_search import ContactSpiralParams, ContactSpiralPolicy
from sim.insertion import OBS_DIM, OBS_INDEX, InsertionEnv
from sim.spiral import MemorySpiralPolicy
from sim.tasks import InsertionTask

CFG = InsertionEnvConfig()
TASK = InsertionTask(plug="US-AC-plug", dx=0.0009, dy=-0.0012, dyaw=0.04)


def _obs(z: float, fz: float = 10.0, tz: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    o = np.zeros(OBS_DIM, np.float32)
    o[OBS_INDEX["z_mm"]] = z
    o[OBS_INDEX["yaw_deg"]] = yaw
    o[OBS_INDEX["fz"]] = fz / CFG.force_ref
    o[OBS_INDEX["tz"]] = tz / CFG.torque_ref
    return o


def _pressing(pol: ContactSpiralPolicy, tz: float, steps: int) -> list[float]:
    """Touch the face at z = 20, drop 1 mm (the pins in), then stall there with torque `tz`
    (N·m); the yaw targets of the press-in, step by step."""
    pol.reset_episode()
    pol.act(_obs(30.0, fz=0.0))
    pol.act(_obs(20.0))  # first contact: the face height
    assert math.isfinite(pol.z_face)
    yaws = []
    for _ in range(steps):
        pol.act(_obs(19.0, tz=tz))
        assert pol.phase == "insert"
        yaws.append(pol.insert_yaw)
    return yaws


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_yaw_target_follows_the_torque_while_pressing_in(sign: float) -> None:
    """A torque about z while the pins are in turns the yaw target its way (admittance)."""
    pol = ContactSpiralPolicy(CFG, ContactSpiralParams(torque_wiggle=False))
    yaws = _pressing(pol, sign * 0.02, 3)
    assert sign * (yaws[-1] - yaws[0]) > 0
    # at most yaw_step_max per step
    assert max(abs(b - a) for a, b in itertools.pairwise(yaws)) <= 0.5 + 1e-9


def test_a_torque_inside_the_deadband_does_not_turn_yaw() -> None:
    pol = ContactSpiralPolicy(CFG)
    yaws = _pressing(pol, 0.001, 3)  # below the 0.003 N·m deadband, before any stall
    assert yaws == [yaws[0]] * 3


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_stall_wiggles_to_the_torque_side_first_and_bounds_the_yaw(sign: float) -> None:
    prm = ContactSpiralParams(yaw_admittance=0.0)  # the wiggle alone
    pol = ContactSpiralPolicy(CFG, prm)
    yaws = _pressing(pol, sign * 0.05, prm.stall_steps + 2)
    first = next(y for y in yaws if y != yaws[0])
    assert sign * (first - yaws[0]) == pytest.approx(prm.wiggle)
    # the memory spiral wiggles to + first whatever the torque
    base = MemorySpiralPolicy(CFG, prm)
    base.reset_episode()
    base.act(_obs(30.0, fz=0.0))
    base.act(_obs(20.0))
    byaws = [(base.act(_obs(19.0, tz=sign * 0.05)), base.insert_yaw)[1] for _ in yaws]
    assert next(y for y in byaws if y != byaws[0]) - byaws[0] == pytest.approx(prm.wiggle)
    # the stall's cue: the socket's yaw is on the torque's side of the stall yaw
    assert pol.cues and math.copysign(1.0, pol.cues[0][1]) == sign
    if sign > 0:
        assert pol.yaw_lo == pytest.approx(pol.stall_yaw - prm.cue_margin)
        assert pol.yaw_hi == math.inf
    else:
        assert pol.yaw_hi == pytest.approx(pol.stall_yaw + prm.cue_margin)
        assert pol.yaw_lo == -math.inf


def test_the_next_passes_search_inside_the_yaw_bounds_first() -> None:
    pol = ContactSpiralPolicy(CFG)
    assert pol.yaw_offset == 0.0  # pass 0: the cycle's first
    pol.yaw_lo = 0.5  # a stall said: above +0.5 deg
    chosen = []
    for k in range(1, 8):
        pol.passes = k
        chosen.append(pol.yaw_offset)
    # the untried offsets inside the bound first, in the cycle's order, then the others;
    # all seven tried (0 at pass 0), a new cycle starts inside the bound again
    assert chosen == [1.0, 2.0, 3.0, -1.0, -2.0, -3.0, 1.0]
    pol.passes = 3
    assert pol.yaw_offset == 3.0  # chosen once per pass
    off = ContactSpiralPolicy(CFG, ContactSpiralParams(yaw_bounds=False))
    off.yaw_lo = 0.5
    off.passes = 1
    assert off.yaw_offset == 1.0 and (setattr(off, "passes", 2) or off.yaw_offset) == -1.0


def test_a_contradicting_cue_is_not_applied() -> None:
    pol = ContactSpiralPolicy(CFG)
    pol.tz = 0.05
    pol._cue(2.0, 1.0)  # above 1.5
    pol.tz = -0.05
    pol._cue(0.0, -1.0)  # below 0.5: contradicts, ignored
    assert (pol.yaw_lo, pol.yaw_hi) == (pytest.approx(1.5), math.inf)
    pol.reset_task()
    assert (pol.yaw_lo, pol.yaw_hi, pol.cues) == (-math.inf, math.inf, [])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-50, 50, allow_nan=False), min_size=OBS_DIM, max_size=OBS_DIM),
        min_size=1,
        max_size=60,
    ),
    st.booleans(),
)
def test_commands_are_bounded_and_finite(rows: list[list[float]], success: bool) -> None:
    pol = ContactSpiralPolicy(CFG)
    for k, row in enumerate(rows):
        a = pol.act(np.asarray(row, np.float32))
        assert a.shape == (4,) and a.dtype == np.float32
        assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
        if k == len(rows) // 2:
            pol.end_episode(success, np.asarray(row, np.float32))
            pol.reset_episode()


def test_actions_depend_on_the_observations_only() -> None:
    """Replaying one task's observations to a fresh policy, whatever task the env holds, gives
    that task's actions: nothing but the observation (and its own state) reaches it."""
    env = InsertionEnv(CFG, task=TASK)
    pol = ContactSpiralPolicy(CFG)
    seen, acts = [], []
    try:
        obs, _ = env.reset(seed=3)
        pol.reset_episode()
        for _ in range(CFG.max_steps):
            a = pol.act(obs)
            seen.append(obs)
            acts.append(a)
            obs, _, term, trunc, _ = env.step(a)
            if term or trunc:
                break
    finally:
        env.close()
    other = InsertionEnv(CFG, task=TASK.model_copy(update={"dx": -0.0015, "dyaw": -0.03}))
    try:
        other.reset(seed=3)
        replay = ContactSpiralPolicy(CFG)
        replay.reset_episode()
        for o, a in zip(seen, acts, strict=True):
            assert np.array_equal(replay.act(o), a)
    finally:
        other.close()


def test_it_reads_no_privileged_field() -> None:
    """The module never names the env, the task or the true socket pose (privileged)."""
    tree = ast.parse(inspect.getsource(contact_search))
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    privileged = {"task", "_socket_pose", "_errors", "dx", "dy", "dyaw", "InsertionEnv", "info"}
    assert not (names | imported) & privileged


def test_search_variants_bench_takes_the_contact_fields_only_with_contact() -> None:
    """bench/search_variants.py --contact: ContactSpiralParams fields are accepted there and
    refused, by name, for the memory spiral."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "search_variants.py"
    spec = importlib.util.spec_from_file_location("search_variants", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    got = mod.parse_params(["yaw_admittance=5", "yaw_bounds=false", "pitch=0.25"], True)
    assert got == {"yaw_admittance": 5.0, "yaw_bounds": False, "pitch": 0.25}
    ContactSpiralParams(**got)
    with pytest.raises(ValueError, match="'yaw_admittance=5'.*MemorySpiralParams"):
        mod.parse_params(["yaw_admittance=5"])
