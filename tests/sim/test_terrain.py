"""TerrainEnv and its task families: check_env on every id, seeded determinism, task switching
changes the dynamics, seeded/disjoint task splits, and task-parameter validation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pybullet as p
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sim.terrain import ENV_IDS, TerrainEnv, register_terrain_envs
from sim.terrain_config import FAMILIES, TASK_PARAMS, FamilyName, TerrainEnvConfig
from sim.terrain_tasks import TerrainTask, TerrainTaskFamily
from zshot.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "terrain"
SHORT = {"max_steps": 30}  # short episodes keep the suite fast


def rollout(env: TerrainEnv, seed: int, n: int = 25, action_seed: int = 0) -> np.ndarray:
    """Observations of `n` steps under a fixed random action sequence, shape (n + 1, obs_dim)."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    out = [obs]
    for _ in range(n):
        obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        out.append(obs)
        if terminated or truncated:
            break
    return np.asarray(out)


# ------------------------------------------------------------------ registration


def test_register_is_idempotent_and_covers_every_family() -> None:
    ids = register_terrain_envs()
    assert register_terrain_envs() == ids
    assert sorted(ENV_IDS.values()) == sorted(FAMILIES)
    for env_id in ids:
        assert env_id in gym.registry


@pytest.mark.filterwarnings("ignore:.*Box observation space m:UserWarning")
@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_check_env_passes_on_every_id(env_id: str) -> None:
    register_terrain_envs()
    env = gym.make(env_id)
    try:
        inner = env.unwrapped
        assert isinstance(inner, TerrainEnv) and inner.config.family == ENV_IDS[env_id]
        check_env(inner, skip_render_check=True)
        assert (len(inner.obs_names),) == inner.observation_space.shape
        assert (len(inner.action_names),) == inner.action_space.shape
    finally:
        env.close()


def test_gym_make_accepts_a_config_override() -> None:
    register_terrain_envs()
    env = gym.make("zshot/CheetahVel-v0", config={"family": "cheetah-vel", "max_steps": 3})
    env.reset(seed=0)
    done = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert done == [False, False, True]
    env.close()


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("family", ["cheetah-vel", "ant-terrain"])
def test_same_seed_and_actions_give_the_same_observations(family: str) -> None:
    env = TerrainEnv({"family": family, **SHORT})
    first = rollout(env, seed=3)
    rollout(env, seed=99, action_seed=5)  # an unrelated episode in between
    again = rollout(env, seed=3)
    fresh = rollout(TerrainEnv({"family": family, **SHORT}), seed=3)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)
    other = rollout(env, seed=4)
    assert not np.array_equal(first[0], other[0]), "the reset seed must change the start state"


def test_a_switched_task_replays_like_a_fresh_env_on_that_task() -> None:
    # Rebuilding only the ground must leave no trace of the previous terrain.
    fam = TerrainTaskFamily(TerrainEnvConfig(family="cheetah-terrain"), seed=0)
    rough = [t for t in fam.test_tasks if t.roughness > 0.01]
    a, b = rough[0], rough[1]
    env = TerrainEnv({"family": "cheetah-terrain", **SHORT}, task=a)
    rollout(env, seed=0)
    env.set_task(b)
    switched = rollout(env, seed=1)
    fresh = rollout(TerrainEnv({"family": "cheetah-terrain", **SHORT}, task=b), seed=1)
    np.testing.assert_allclose(switched, fresh, atol=1e-9)


# ------------------------------------------------------------------ task switching


def test_heightfields_are_reused_and_the_cache_is_bounded() -> None:
    tasks = [_terrain_task("cheetah-terrain", roughness=0.05, terrain_seed=s) for s in (1, 2, 3)]
    env = TerrainEnv({"family": "cheetah-terrain", **SHORT, "heightfield_cache": 2}, task=tasks[0])
    assert env._client is not None
    cid = env._client.client_id
    first = rollout(env, seed=0)
    env.set_task(tasks[1])
    rollout(env, seed=0)
    assert p.getNumBodies(physicsClientId=cid) == 4  # robot, floor, two patches
    env.set_task(tasks[0])  # comes back from the cache: same ground, same episode
    np.testing.assert_allclose(rollout(env, seed=0), first, atol=1e-9)
    assert p.getNumBodies(physicsClientId=cid) == 4
    env.set_task(tasks[2])  # evicts the least recently used patch (seed 2)
    rollout(env, seed=0)
    assert p.getNumBodies(physicsClientId=cid) == 4
    assert list(env._heightfields) == [(0.05, 1), (0.05, 3)]
    env.set_task(_terrain_task("cheetah-terrain"))  # flat: only the floor is active
    rollout(env, seed=0)
    assert env.heightfield is None and env._ground == [env._floor]


def _terrain_task(family: str, **params: float) -> TerrainTask:
    return TerrainTask(family=family, **params)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"friction": 0.1},
        {"slope": 0.3},
        {"payload": 10.0},
        {"motor_strength": 0.4},
        {"roughness": 0.06, "terrain_seed": 7},
    ],
    ids=lambda c: next(iter(c)),
)
def test_each_terrain_parameter_changes_the_rollout(change: dict[str, float]) -> None:
    env = TerrainEnv({"family": "cheetah-terrain", **SHORT}, task=_terrain_task("cheetah-terrain"))
    nominal = rollout(env, seed=0)
    env.set_task(_terrain_task("cheetah-terrain", **change))
    assert env.task == _terrain_task("cheetah-terrain"), "set_task must wait for reset()"
    changed = rollout(env, seed=0)
    assert env.task == _terrain_task("cheetah-terrain", **change)
    assert np.abs(nominal - changed).max() > 1e-3
    env.set_task(_terrain_task("cheetah-terrain"))
    np.testing.assert_allclose(rollout(env, seed=0), nominal, atol=1e-9)


def _limp_slide(slope: float, friction: float, steps: int = 40) -> float:
    """x displacement (m) of an unpowered cheetah left on a slope."""
    env = TerrainEnv(
        {"family": "cheetah-terrain", "max_steps": steps, "init_noise_scale": 0.0},
        task=_terrain_task("cheetah-terrain", slope=slope, friction=friction),
    )
    env.reset(seed=0)
    x = 0.0
    for _ in range(steps):
        _, _, _, _, info = env.step(np.zeros(6))
        x += info["x_velocity"] * env.dt
    return x


def test_slope_and_friction_act_like_coulomb_sliding() -> None:
    # Gravity tilted by +slope points toward -x. Coulomb: a body slides when tan(slope) > mu.
    flat = _limp_slide(0.0, 0.05)
    ice = _limp_slide(0.4, 0.05)  # tan 0.4 = 0.42 > 0.05: slides away downhill
    rubber = _limp_slide(0.4, 1.0)  # tan 0.4 < 1.0: settles after a small shuffle
    assert abs(flat) < 0.05
    assert ice < -2.0
    assert -1.0 < rubber < 0.0
    assert abs(ice) > 5 * abs(rubber)


def test_heightfield_heights_are_where_the_robot_meets_them() -> None:
    task = _terrain_task("ant-terrain", roughness=0.1, terrain_seed=3)
    env = TerrainEnv(
        {"family": "ant-terrain", "heightfield_length": 6.0, "heightfield_width": 4.0}, task=task
    )
    env.reset(seed=0)
    h = env.heightfield
    assert h is not None and h.shape == (17, 25)  # (y samples, x samples) at 0.25 m
    c = env._client
    assert c is not None
    cell = env.config.heightfield_cell
    for iy, ix in [(8, 12), (2, 20), (15, 3), (10, 5)]:
        x, y = (ix - 12) * cell, (iy - 8) * cell
        hit = c.rayTest([x, y, 2.0], [x, y, -2.0])[0]
        assert hit[0] in env._ground
        assert hit[3][2] == pytest.approx(h[iy, ix], abs=1e-4)
    assert np.abs(h).max() <= 0.1


def test_payload_adds_torso_mass() -> None:
    env = TerrainEnv({"family": "ant-terrain"}, task=_terrain_task("ant-terrain", payload=12.5))
    env.reset(seed=0)
    assert env._client is not None
    mass = env._client.getDynamicsInfo(env._robot, env._torso)[0]
    assert mass == pytest.approx(env._torso_mass + 12.5)
    env.set_task(_terrain_task("ant-terrain"))
    env.reset(seed=0)
    assert env._client.getDynamicsInfo(env._robot, env._torso)[0] == pytest.approx(env._torso_mass)


def test_task_of_another_family_is_rejected_by_name() -> None:
    env = TerrainEnv({"family": "cheetah-vel"})
    with pytest.raises(ValueError, match="ant-dir.*cheetah-vel"):
        env.set_task(TerrainTask(family="ant-dir"))


def test_step_before_reset_and_bad_actions_are_clear_errors() -> None:
    env = TerrainEnv({"family": "cheetah-dir"})
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(6))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(5))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full(6, np.nan))
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"tsk": None})


# ------------------------------------------------------------------ rewards


def test_velocity_reward_is_minus_the_speed_error_minus_ctrl_cost() -> None:
    env = TerrainEnv(
        {"family": "cheetah-vel"}, task=TerrainTask(family="cheetah-vel", target_velocity=2.0)
    )
    env.reset(seed=0)
    a = np.full(6, 0.5)
    _, r, _, _, info = env.step(a)
    ctrl = 0.05 * float(np.sum(a**2))
    assert info["ctrl_cost"] == pytest.approx(ctrl)
    assert r == pytest.approx(-abs(info["x_velocity"] - 2.0) - ctrl)
    assert info["task"] == env.task.model_dump()


def test_direction_flips_the_sign_of_the_forward_reward() -> None:
    def first_reward(direction: float) -> tuple[float, float]:
        env = TerrainEnv(
            {"family": "cheetah-dir"}, task=TerrainTask(family="cheetah-dir", direction=direction)
        )
        env.reset(seed=0)
        _, _, _, _, info = env.step(np.full(6, 0.3))
        return info["forward_reward"], info["x_velocity"]

    fwd, v = first_reward(0.0)
    back, v2 = first_reward(math.pi)
    assert v == pytest.approx(v2) and abs(v) > 1e-4
    assert fwd == pytest.approx(v) and back == pytest.approx(-v)


def test_ant_dir_scores_velocity_along_the_heading_plus_survive() -> None:
    env = TerrainEnv(
        {"family": "ant-dir"}, task=TerrainTask(family="ant-dir", direction=math.pi / 2)
    )
    env.reset(seed=0)
    a = np.zeros(8)
    _, r, terminated, _, info = env.step(a)
    assert not terminated
    assert info["forward_reward"] == pytest.approx(info["y_velocity"], abs=1e-9)
    assert r == pytest.approx(info["forward_reward"] + 1.0)


def test_ant_terminates_when_the_torso_leaves_the_healthy_band() -> None:
    env = TerrainEnv({"family": "ant-dir", "healthy_z_range": [0.9, 2.0]})
    env.reset(seed=0)
    terminated = False
    for _ in range(40):  # the torso settles to ~0.36 m, below the band
        _, r, terminated, _, _ = env.step(np.zeros(8))
        if terminated:
            break
    assert terminated
    assert r < 1.0  # no survive bonus on the terminal step
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(8))


def test_rgb_render_has_the_camera_shape() -> None:
    env = TerrainEnv({"family": "cheetah-vel"}, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame is not None and frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert frame.std() > 0
    env.close()
    env.close()


# ------------------------------------------------------------------ task families


@pytest.mark.parametrize("family", FAMILIES)
def test_task_split_is_seeded(family: FamilyName) -> None:
    cfg = TerrainEnvConfig(family=family)
    a, b = TerrainTaskFamily(cfg, seed=5), TerrainTaskFamily(cfg, seed=5)
    assert a.train_tasks == b.train_tasks and a.test_tasks == b.test_tasks
    assert len(a.train_tasks) == cfg.n_train_tasks and len(a.test_tasks) == cfg.n_test_tasks
    assert all(t.family == family for t in a.train_tasks + a.test_tasks)
    c = TerrainTaskFamily(cfg, seed=6)
    if cfg.train.directions is None:  # the dir families are the same two headings anyway
        assert a.train_tasks != c.train_tasks


@pytest.mark.parametrize("family", ["cheetah-terrain", "ant-terrain"])
def test_outside_heldout_tasks_are_outside_the_train_ranges(family: FamilyName) -> None:
    cfg = TerrainEnvConfig(family=family, n_test_tasks=200)
    fam = TerrainTaskFamily(cfg, seed=1)
    for task in fam.train_tasks:
        assert all(cfg.train.range_of(n).contains(getattr(task, n)) for n in TASK_PARAMS)
    for task in fam.test_tasks:
        assert all(cfg.test.range_of(n).contains(getattr(task, n)) for n in TASK_PARAMS)
        assert not all(cfg.train.range_of(n).contains(getattr(task, n)) for n in TASK_PARAMS)
        assert fam.is_held_out(task)
    assert not any(fam.is_held_out(t) for t in fam.train_tasks)
    train_params = {tuple(t.params()) for t in fam.train_tasks}
    assert not train_params & {tuple(t.params()) for t in fam.test_tasks}


def test_inside_heldout_tasks_are_unseen_but_in_range() -> None:
    cfg = TerrainEnvConfig(family="cheetah-vel")
    fam = TerrainTaskFamily(cfg, seed=0)
    velocities = [t.target_velocity for t in fam.train_tasks + fam.test_tasks]
    assert all(0.0 <= v <= 3.0 for v in velocities)
    assert not {t.target_velocity for t in fam.train_tasks} & {
        t.target_velocity for t in fam.test_tasks
    }


def test_direction_families_cover_both_headings() -> None:
    fam = TerrainTaskFamily(TerrainEnvConfig(family="cheetah-dir"), seed=0)
    assert sorted(t.direction for t in fam.train_tasks) == pytest.approx([0.0, math.pi])
    assert [t.task_id for t in fam.train_tasks] == ["train/0", "train/1"]
    assert not any(fam.is_held_out(t) for t in fam.test_tasks)
    assert fam.is_held_out(TerrainTask(family="cheetah-dir", direction=1.0))


def test_changing_the_test_count_keeps_the_train_tasks() -> None:
    a = TerrainTaskFamily(TerrainEnvConfig(family="ant-terrain", n_test_tasks=3), seed=2)
    b = TerrainTaskFamily(TerrainEnvConfig(family="ant-terrain", n_test_tasks=9), seed=2)
    assert a.train_tasks == b.train_tasks and a.test_tasks == b.test_tasks[:3]


def test_outside_heldout_without_any_wider_range_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="heldout='outside'"):
        TerrainEnvConfig(family="cheetah-vel", heldout="outside")


def test_ranges_producing_invalid_tasks_are_named() -> None:
    cfg = TerrainEnvConfig.model_validate(
        {"family": "cheetah-terrain", "train": {"friction": {"low": -1.0, "high": 0.5}}}
    )
    with pytest.raises(ValueError, match="friction"):
        TerrainTaskFamily(cfg, seed=0)


def test_yaml_configs_load_and_build_their_family() -> None:
    files = sorted(CONFIGS.glob("*.yaml"))
    assert {load_config(TerrainEnvConfig, f).family for f in files} == set(FAMILIES)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(TerrainEnvConfig, None, ["train.frition.low=1"])


def test_config_defaults_follow_the_family() -> None:
    ant = TerrainEnvConfig(family="ant-dir")
    assert ant.body == "ant" and ant.ctrl_cost_weight == 0.5 and ant.survive_reward == 1.0
    cheetah = TerrainEnvConfig.model_validate(
        {"family": "cheetah-vel", "train": {"friction": {"low": 0.5, "high": 0.9}}}
    )
    # A partial range table keeps the family's other ranges.
    assert cheetah.train.target_velocity.high == 3.0 and cheetah.train.friction.low == 0.5
    assert cheetah.dt == pytest.approx(0.05)


# ------------------------------------------------------------------ task validation (hypothesis)

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(
    family=st.sampled_from(FAMILIES),
    friction=finite,
    slope=finite,
    roughness=finite,
    payload=finite,
    motor_strength=finite,
)
def test_task_validation_accepts_exactly_the_physical_ranges(
    family: str,
    friction: float,
    slope: float,
    roughness: float,
    payload: float,
    motor_strength: float,
) -> None:
    ok = (
        0 < friction <= 10
        and -0.6 <= slope <= 0.6
        and 0 <= roughness <= 0.3
        and 0 <= payload <= 500
        and 0 < motor_strength <= 5
    )
    kwargs = {
        "family": family,
        "friction": friction,
        "slope": slope,
        "roughness": roughness,
        "payload": payload,
        "motor_strength": motor_strength,
    }
    if ok:
        task = TerrainTask(**kwargs)  # type: ignore[arg-type]
        # JSON round trip: tasks travel in checkpoints and recordings.
        assert TerrainTask.model_validate(json.loads(task.model_dump_json())) == task
        assert task.params().shape == (len(TASK_PARAMS),)
    else:
        with pytest.raises(ValidationError):
            TerrainTask(**kwargs)  # type: ignore[arg-type]


@given(value=st.sampled_from([math.nan, math.inf, -math.inf]), name=st.sampled_from(TASK_PARAMS))
def test_task_rejects_non_finite_values(value: float, name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        TerrainTask(family="ant-terrain", **{name: value})  # type: ignore[arg-type]


def test_task_rejects_unknown_keys_and_families() -> None:
    with pytest.raises(ValidationError, match="frictoin"):
        TerrainTask(family="ant-terrain", frictoin=1.0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="family"):
        TerrainTask(family="hopper-vel")  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_test=st.integers(0, 20))
def test_every_sampled_task_is_valid_and_json_serialisable(seed: int, n_test: int) -> None:
    cfg = TerrainEnvConfig(family="cheetah-terrain", n_train_tasks=5, n_test_tasks=n_test)
    fam = TerrainTaskFamily(cfg, seed=seed)
    for task in fam.train_tasks + fam.test_tasks:
        assert TerrainTask.model_validate(task.model_dump()) == task


interval = st.tuples(
    st.floats(0.05, 5.0, allow_nan=False), st.floats(0.0, 3.0, allow_nan=False)
).map(lambda t: (t[0], t[0] + t[1]))


def _friction_split(train: tuple[float, float], test: tuple[float, float]) -> dict:
    """A cheetah-terrain config (heldout 'outside') where only friction varies."""
    fixed = {name: {"low": 0.0, "high": 0.0} for name in ("slope", "roughness", "payload")}
    return {
        "family": "cheetah-terrain",
        "n_train_tasks": 8,
        "n_test_tasks": 8,
        "heldout": "outside",
        "train": fixed
        | {
            "friction": {"low": train[0], "high": train[1]},
            "motor_strength": {"low": 1, "high": 1},
        },
        "test": fixed
        | {"friction": {"low": test[0], "high": test[1]}, "motor_strength": {"low": 1, "high": 1}},
    }


@settings(max_examples=60, deadline=None)
@given(train=interval, test=interval, seed=st.integers(0, 10_000))
def test_outside_split_property_for_any_ranges(
    train: tuple[float, float], test: tuple[float, float], seed: int
) -> None:
    # Property: with heldout='outside', train tasks lie in the train range, test tasks in the
    # test range and outside the train range, whatever the two intervals are; a config where
    # the test range does not reach beyond the train range is refused up front.
    data = _friction_split(train, test)
    if not (test[0] < train[0] or test[1] > train[1]):
        with pytest.raises(ValidationError, match="outside"):
            TerrainEnvConfig.model_validate(data)
        return
    fam = TerrainTaskFamily(TerrainEnvConfig.model_validate(data), seed=seed)
    assert all(train[0] <= t.friction <= train[1] for t in fam.train_tasks)
    for t in fam.test_tasks:
        assert test[0] <= t.friction <= test[1]
        assert not train[0] <= t.friction <= train[1]


def test_outside_split_when_the_test_range_reaches_one_ulp_beyond() -> None:
    # found by hypothesis in CI: a test range 1 ulp below the train range's low end; a draw
    # of lo + u rounded onto the train range, i.e. a "held-out" task inside the training set
    train, test = (0.05000000000000001, 1.05), (0.05, 1.05)
    data = _friction_split(train, test)
    for seed in range(5):
        fam = TerrainTaskFamily(TerrainEnvConfig.model_validate(data), seed=seed)
        assert all(not train[0] <= t.friction <= train[1] for t in fam.test_tasks)
