"""InsertionEnv: Gymnasium API, determinism, task switching and believable contact physics."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim.config import InsertionEnvConfig
from sim.insertion import OBS_DIM, InsertionEnv
from sim.plugs import NAMED_PLUGS
from sim.tasks import InsertionTask


@pytest.mark.parametrize("env_id", sim.ENV_IDS)
def test_check_env_every_registered_id(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (OBS_DIM,)
    env.close()


def test_observation_is_the_same_for_every_plug() -> None:
    env = InsertionEnv()
    for plug in NAMED_PLUGS:
        env.set_task(InsertionTask(plug=plug))
        obs, info = env.reset(seed=0)
        assert obs.shape == (OBS_DIM,) and len(env.obs_names) == OBS_DIM
        assert info["task"]["plug"] == plug
    env.close()


def _rollout(seed: int, plug: str = "UK-AC-plug", n: int = 20) -> np.ndarray:
    env = InsertionEnv(task=InsertionTask(plug=plug, dx=0.001, dy=-0.0005, dyaw=0.01))
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [obs]
    for _ in range(n):
        obs, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        out.append(obs)
    env.close()
    return np.array(out)


def test_seeded_determinism() -> None:
    a, b, c = _rollout(3), _rollout(3), _rollout(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_set_task_takes_effect_at_reset_and_rebuilds_only_what_changed() -> None:
    env = InsertionEnv(task=InsertionTask(plug="UK-AC-plug"))
    env.reset(seed=0)
    assert env.build_counts == {"plug": 1, "socket": 1}
    env.set_task(InsertionTask(plug="UK-AC-plug", dx=0.001, friction=0.5))
    assert env.task.dx == 0.0  # not yet
    _, info = env.reset(seed=0)
    assert info["task"]["dx"] == 0.001
    assert env.build_counts == {"plug": 1, "socket": 1}  # same bodies, moved
    env.set_task(InsertionTask(plug="UK-AC-plug", clearance=0.0004))
    env.reset(seed=0)
    assert env.build_counts == {"plug": 1, "socket": 2}  # socket rebuilt
    env.set_task(InsertionTask(plug="EU-AC-plug"))
    env.reset(seed=0)
    assert env.build_counts == {"plug": 2, "socket": 3}
    env.close()


def _push_down(env: InsertionEnv, steps: int = 50, wiggle: float = 0.0) -> tuple[float, dict]:
    obs, _ = env.reset(seed=0)
    zmin = float("inf")
    info: dict = {}
    for k in range(steps):
        a = np.array([wiggle * np.sin(k / 3), wiggle * np.cos(k / 4), -1.0, 0.0], dtype=np.float32)
        obs, _, term, trunc, info = env.step(a)
        zmin = min(zmin, float(obs[2]))
        if term or trunc:
            break
    return zmin, info


QUIET = dict(start_xy_noise=0.0, start_yaw_noise=0.0, start_z_noise=0.0)


@pytest.mark.parametrize(
    ("plug", "offset"), [("UK-AC-plug", 0.006), ("Car-plug-4p", 0.004), ("Metal-peg-rd", 0.010)]
)
def test_misaligned_plug_cannot_pass_through_the_socket(plug: str, offset: float) -> None:
    """Pushed down at up to 60 N `offset` off the cavities, the pin tips stay within 2 mm of the
    face (Bullet contacts are soft: ~1 mm at 60 N; a pass-through would be >= 5 mm)."""
    cfg = InsertionEnvConfig(**QUIET, force_limit=1000.0, max_force=60.0)
    env = InsertionEnv(cfg, task=InsertionTask(plug=plug, dx=offset))
    zmin, info = _push_down(env)
    length = env.plug_spec.max_pin_length
    assert zmin > length - 2.0, f"pin tips {length - zmin:.2f} mm into the socket face"
    assert not info["is_success"]
    env.close()


@pytest.mark.parametrize(
    "plug", ["UK-AC-plug", "Car-plug-3p", "Metal-peg-sq", "AU-AC-plug", "Hex-peg"]
)
def test_correct_plug_goes_in(plug: str) -> None:
    env = InsertionEnv(InsertionEnvConfig(**QUIET), task=InsertionTask(plug=plug))
    _, info = _push_down(env)
    assert info["is_success"] and info["insertion_depth_mm"] > 0.8 * min(
        p.length for p in env.plug_spec.pins
    )
    env.close()


def test_pin_wider_than_its_cavity_cannot_enter(tmp_path: Path) -> None:
    """A socket built for 4.0 mm pins refuses a plug whose pins are 0.6 mm wider."""
    base = Path(sim.plugs.plug_dir() / "EU-AC-plug.yaml").read_text()
    fat = tmp_path / "fat.yaml"
    fat.write_text(
        base.replace("diameter: 4.0", "diameter: 4.6").replace("name: EU-AC-plug", "name: fat")
    )
    cfg = InsertionEnvConfig(**QUIET, force_limit=1000.0)
    env = InsertionEnv(
        cfg, task=InsertionTask(plug=str(fat), socket_plug="EU-AC-plug", clearance=0.0002)
    )
    zmin, info = _push_down(env)
    assert zmin > env.plug_spec.max_pin_length - 0.6
    assert not info["is_success"]
    env.close()


def test_excessive_force_ends_the_episode_as_a_violation() -> None:
    cfg = InsertionEnvConfig(**QUIET, force_limit=15.0, max_force=28.0)
    env = InsertionEnv(cfg, task=InsertionTask(plug="Metal-peg-sq", dx=0.004))
    _, info = _push_down(env, steps=100)
    assert info["safety_violation"] and info["peak_force"] > 15.0
    env.close()


def test_render_rgb_array() -> None:
    env = InsertionEnv(render_mode="rgb_array", task=InsertionTask(plug="Car-plug-4p"))
    env.reset(seed=0)
    img = env.render()
    assert img is not None and img.shape[2] == 3 and img.dtype == np.uint8
    assert img.std() > 5  # not a blank frame
    env.close()
