"""`TerrainEnv`: half-cheetah and ant locomotion in PyBullet on terrains the policy cannot see.

Bodies come from pybullet_data's MJCF files (`mjcf/half_cheetah.xml`, `mjcf/ant.xml`),
torque-controlled with the torque limits of pybullet_envs (cheetah: 0.9 x MJCF gear; ant:
250 N m per joint, for pybullet's heavier ant). One control step is `substeps` Bullet steps of
`physics_timestep` (default 5 x 0.01 s = 0.05 s, the frame skip of the MuJoCo originals).

Hidden task parameters (`sim.terrain_tasks.TerrainTask`) and how each is applied:

- friction: `changeDynamics(ground, lateralFriction=mu)`; the robot's links are set to 1.0 and
  Bullet multiplies the two, so the contact friction is mu.
- slope: gravity is tilted by `slope` about y (uphill along +x); cheaper than a tilted
  heightfield, and the observations are in the slope's frame (a pitch sensor that reads
  relative to the ground, so slope stays hidden).
- roughness: a `GEOM_HEIGHTFIELD` patch of `heightfield_length` x `heightfield_width` m,
  heights uniform in [-roughness, roughness] every `heightfield_cell` m, seeded by
  `task.terrain_seed`; flat plane beyond it. Roughness 0 uses the plane only.
- payload: added to the torso's mass (inertia scaled with it: a load spread like the torso).
- motor_strength: scales every joint's torque limit.
- target_velocity / direction: the reward (see `TerrainEnv.step`).

`set_task(task)` takes effect at the next `reset()`; only a new heightfield is built (and
the last `heightfield_cache` are kept for reuse); everything else is a
`changeDynamics`/`setGravity` call on the bodies already there.
`reset()` restores a Bullet snapshot taken after the scene was built, so an episode does not
depend on the one before it (seeded determinism).
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
import pybullet_data
from gymnasium import spaces

from sim.terrain_config import FamilyName, TerrainEnvConfig
from sim.terrain_tasks import TerrainTask, TerrainTaskFamily
from zshot.config import load_config

__all__ = ["BODIES", "ENV_IDS", "BodySpec", "TerrainEnv", "register_terrain_envs"]

GRAVITY = 9.81  # m/s²


class _Bullet:
    """One DIRECT Bullet server; `c.fn(...)` is `pybullet.fn(..., physicsClientId=id)`.

    Like pybullet_utils' BulletClient, minus its per-call `functools.partial` (the bound
    function is cached on first use: this is the env's per-step hot path) and its stray
    "argv[0]=" print.
    """

    def __init__(self) -> None:
        self.client_id = p.connect(p.DIRECT)
        if self.client_id < 0:
            raise RuntimeError("could not start a PyBullet DIRECT server")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        fn = functools.partial(getattr(p, name), physicsClientId=self.client_id)
        setattr(self, name, fn)
        return fn

    def disconnect(self) -> None:
        """Shut the server down."""
        p.disconnect(physicsClientId=self.client_id)


_PARK_DEPTH = 1000.0  # m below the world: where unused heightfields wait


@dataclass(frozen=True)
class _Heightfield:
    body: int
    heights: np.ndarray
    z_offset: float
    spawn_lift: float


@dataclass(frozen=True)
class BodySpec:
    """What the env needs to know about one MJCF robot."""

    mjcf: str
    """Path inside pybullet_data."""
    motor_joints: tuple[str, ...]
    """Actuated joints in MJCF definition order (= action and observation order)."""
    max_torque: tuple[float, ...]
    """N m at action ±1 and motor_strength 1, per motor joint."""
    joint_damping: tuple[float, ...]
    """Viscous joint damping, N m s/rad (pybullet's MJCF loader drops the file's values)."""
    torso: str
    """Link name of the torso (payload goes here)."""
    planar: bool
    """True: the root moves on slider/hinge joints in the x-z plane (the cheetah)."""


BODIES: dict[str, BodySpec] = {
    "half_cheetah": BodySpec(
        mjcf="mjcf/half_cheetah.xml",
        motor_joints=("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"),
        # pybullet_envs HalfCheetah: power 0.90 x (120, 90, 60, 140, 60, 30).
        max_torque=(108.0, 81.0, 54.0, 126.0, 54.0, 27.0),
        joint_damping=(6.0, 4.5, 3.0, 4.5, 3.0, 1.5),  # half_cheetah.xml
        torso="torso",
        planar=True,
    ),
    "ant": BodySpec(
        mjcf="mjcf/ant.xml",
        motor_joints=(
            "hip_1",
            "ankle_1",
            "hip_2",
            "ankle_2",
            "hip_3",
            "ankle_3",
            "hip_4",
            "ankle_4",
        ),
        # pybullet_envs Ant: power 2.5 x 100 (pybullet gives this ant ~300 kg at density 5).
        max_torque=(250.0,) * 8,
        joint_damping=(1.0,) * 8,  # ant.xml default joint damping
        torso="torso",
        planar=False,
    ),
}

# Gymnasium ids -> family. Registered by `register_terrain_envs()`.
ENV_IDS: dict[str, FamilyName] = {
    "zshot/CheetahVel-v0": "cheetah-vel",
    "zshot/CheetahDir-v0": "cheetah-dir",
    "zshot/AntDir-v0": "ant-dir",
    "zshot/CheetahTerrain-v0": "cheetah-terrain",
    "zshot/AntTerrain-v0": "ant-terrain",
}


def _obs_unit(name: str) -> str:
    """Unit of a terrain observation entry (names in `TerrainEnv.obs_names`)."""
    if name in ("rootz", "torso_z"):
        return "m"
    if name.startswith("quat_"):
        return "1"
    if name in ("rootx_vel", "rootz_vel") or name.startswith("vel_"):
        return "m/s"
    if name == "rooty" or name.endswith("_pos"):
        return "rad"
    return "rad/s"  # rooty_vel, angvel_*, joint rates


def register_terrain_envs() -> list[str]:
    """Register the terrain env ids with Gymnasium (idempotent); returns the ids.

    Each id builds `TerrainEnv(config=TerrainEnvConfig(family=...))`; pass `config=` (a
    `TerrainEnvConfig`, a mapping or a YAML path) to `gym.make` to override it whole (and
    `max_episode_steps=` with it when its `max_steps` differs from the family default's,
    which the spec states).
    """
    for env_id, family in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="sim.terrain:TerrainEnv",
            kwargs={"config": {"family": family}},
            max_episode_steps=TerrainEnvConfig(family=family).max_steps,
        )
    return list(ENV_IDS)


def _as_config(
    config: TerrainEnvConfig | Mapping[str, Any] | str | Path | None,
) -> TerrainEnvConfig:
    if config is None:
        return TerrainEnvConfig()
    if isinstance(config, TerrainEnvConfig):
        return config
    if isinstance(config, (str, Path)):
        return load_config(TerrainEnvConfig, config)
    if isinstance(config, Mapping):
        return TerrainEnvConfig.model_validate(dict(config))
    raise TypeError(
        f"config must be a TerrainEnvConfig, a mapping or a YAML path, got {type(config).__name__}"
    )


class TerrainEnv(gym.Env):
    """Gymnasium env: a PyBullet half-cheetah or ant on a hidden terrain / target task.

    Observations (float32, names in `obs_names`), classic MuJoCo layouts without x/y position:

    - half-cheetah (17): rootz (m, relative to start), rooty (pitch, rad), 6 joint angles,
      root x/z velocity (m/s), pitch rate, 6 joint rates.
    - ant (27): torso z (m), torso quaternion (x, y, z, w), 8 joint angles, torso linear
      (m/s) and angular (rad/s) velocity in the world frame, 8 joint rates.

    `observation_space` is ±inf except the quaternion's [-1, 1] (`_obs_bounds`).

    Actions: `Box(-1, 1, (n_motors,))`, fraction of each joint's torque limit (times the
    task's motor strength). Rewards, with v the torso velocity over the control step and
    ctrl = ctrl_cost_weight * |a|²:

    - `*-vel`: -|v_x - target_velocity| - ctrl
    - `*-dir`, `*-terrain`: v_xy · (cos direction, sin direction) - ctrl + survive_reward
      (the cheetah has v_y = 0, so this is ±v_x for direction 0 / π)

    The ant terminates when its torso leaves `healthy_z_range`; every episode truncates after
    `max_steps`. `info` has "task" (the task's dict), "x_velocity", "y_velocity",
    "forward_reward", "ctrl_cost".
    """

    # An instance attribute in gymnasium.Env (render_fps is set per instance from dt).
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}  # noqa: RUF012

    def __init__(
        self,
        config: TerrainEnvConfig | Mapping[str, Any] | str | Path | None = None,
        task: TerrainTask | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        """Build the scene for `config.family`; `task` defaults to the family's first train task."""
        super().__init__()
        self.config = _as_config(config)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode {render_mode!r} not supported; use one of {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode
        self.body = BODIES[self.config.body]
        self.dt = self.config.dt
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}

        if task is None:
            task = TerrainTaskFamily(self.config, seed=0).train_tasks[0]
        self._task = self._check_task(task)
        self._pending_task: TerrainTask | None = None

        n_act = len(self.body.motor_joints)
        self.action_names: list[str] = list(self.body.motor_joints)
        if self.body.planar:
            self.obs_names: list[str] = (
                ["rootz", "rooty"]
                + [f"{j}_pos" for j in self.body.motor_joints]
                + ["rootx_vel", "rootz_vel", "rooty_vel"]
                + [f"{j}_vel" for j in self.body.motor_joints]
            )
        else:
            self.obs_names = (
                ["torso_z", "quat_x", "quat_y", "quat_z", "quat_w"]
                + [f"{j}_pos" for j in self.body.motor_joints]
                + ["vel_x", "vel_y", "vel_z", "angvel_x", "angvel_y", "angvel_z"]
                + [f"{j}_vel" for j in self.body.motor_joints]
            )
        self.obs_units: list[str] = [_obs_unit(n) for n in self.obs_names]
        self.action_units: list[str] = ["1"] * n_act  # fraction of the joint's torque limit
        self.action_space = spaces.Box(-1.0, 1.0, (n_act,), dtype=np.float32)
        self.observation_space = spaces.Box(*self._obs_bounds(), dtype=np.float32)
        self._max_torque = np.asarray(self.body.max_torque, dtype=np.float64)

        self._client: _Bullet | None = _Bullet()
        self._build_world()
        self._steps = 0
        self._needs_reset = True

    def _obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Finite bounds where the quantity has them: the ant's torso quaternion components
        lie in [-1, 1]. Joint angles get none: Bullet does not hold these MJCF joints to
        their ranges under torque control (random actions drive the cheetah's 0.8 rad past
        them), and heights, pitch and rates are unbounded."""
        low = np.full(len(self.obs_names), -np.inf, np.float32)
        high = np.full(len(self.obs_names), np.inf, np.float32)
        for i, name in enumerate(self.obs_names):
            if name.startswith("quat_"):
                low[i], high[i] = -1.0, 1.0
        return low, high

    # ------------------------------------------------------------------ tasks

    def _check_task(self, task: TerrainTask | Mapping[str, Any]) -> TerrainTask:
        if isinstance(task, Mapping):
            task = TerrainTask.model_validate(dict(task))
        if not isinstance(task, TerrainTask):
            raise TypeError(f"task must be a TerrainTask or its dict, got {type(task).__name__}")
        if task.family != self.config.family:
            raise ValueError(
                f"task family {task.family!r} does not match this env's family "
                f"{self.config.family!r} (the family fixes body and reward)"
            )
        return task

    @property
    def task(self) -> TerrainTask:
        """The task of the current episode (a pending `set_task` shows after `reset`)."""
        return self._task

    def set_task(self, task: TerrainTask | Mapping[str, Any]) -> None:
        """Switch to `task` from the next `reset()` on; rebuilds the ground only if it changed."""
        self._pending_task = self._check_task(task)

    # ------------------------------------------------------------------ scene

    def _build_world(self) -> None:
        c = self._client
        assert c is not None
        cfg = self.config
        c.resetSimulation()
        c.setPhysicsEngineParameter(
            fixedTimeStep=cfg.dt,
            numSubSteps=cfg.substeps,  # torques persist over the internal substeps
            numSolverIterations=cfg.solver_iterations,
            deterministicOverlappingPairs=1,
        )
        path = str(Path(pybullet_data.getDataPath()) / self.body.mjcf)
        flags = p.URDF_USE_SELF_COLLISION | p.URDF_USE_SELF_COLLISION_EXCLUDE_ALL_PARENTS
        self._robot = c.loadMJCF(path, flags=flags)[0]

        joints: dict[str, int] = {}
        links: dict[str, int] = {}
        movable = []
        for j in range(c.getNumJoints(self._robot)):
            info = c.getJointInfo(self._robot, j)
            joints[info[1].decode()] = j
            links[info[12].decode()] = j
            if info[2] in (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC):
                movable.append(j)
        # Bullet's default velocity motors would hold every joint still: switch them off.
        c.setJointMotorControlArray(
            self._robot, movable, p.VELOCITY_CONTROL, forces=[0.0] * len(movable)
        )
        self._motors = [joints[name] for name in self.body.motor_joints]
        for j, damping in zip(self._motors, self.body.joint_damping, strict=True):
            c.changeDynamics(self._robot, j, jointDamping=damping)
        for link in range(-1, c.getNumJoints(self._robot)):
            c.changeDynamics(self._robot, link, lateralFriction=1.0)
        # The cheetah's root: slider x (ignorex), slider z (ignorez), hinge pitch (ignorey).
        self._root = (
            [joints["ignorex"], joints["ignorez"], joints["ignorey"]] if self.body.planar else []
        )
        # The ant's torso is the base (link -1); the cheetah's hangs off its root joints.
        self._torso = links.get(self.body.torso, -1)
        dyn = c.getDynamicsInfo(self._robot, self._torso)
        self._torso_mass, self._torso_inertia = float(dyn[0]), tuple(dyn[2])
        self._init_base = c.getBasePositionAndOrientation(self._robot)
        # A flat floor under everything (moved to the heightfield's lowest height, so the
        # robot does not fall off the patch's edge) plus at most one active heightfield.
        self._floor = c.createMultiBody(0, c.createCollisionShape(p.GEOM_PLANE))
        self._ground: list[int] = [self._floor]
        # Built heightfields, least recently used first: key -> (body, heights, z offset, lift).
        self._heightfields: OrderedDict[tuple[float, int], _Heightfield] = OrderedDict()
        self._ground_key: tuple[float, int] | None = None
        self._spawn_lift = 0.0
        self.heightfield: np.ndarray | None = None
        """Ground heights of the active patch, (ny, nx) m, or None on flat ground."""
        self._state_id: int | None = None
        self._set_ground(self._task)

    def _set_ground(self, task: TerrainTask) -> None:
        # Switching terrain: park the old heightfield out of reach, bring in (or build) the new
        # one. Building costs ~2-5 ms per 1000 samples, so up to `heightfield_cache` patches
        # are kept; a parked patch is 1 km below and collides with nothing.
        c = self._client
        assert c is not None
        key = (task.roughness, task.terrain_seed) if task.roughness > 0 else (0.0, 0)
        if key == self._ground_key:
            return
        if self._state_id is not None:
            # Put the robot back to its built pose before snapshotting the new scene.
            c.restoreState(self._state_id)
        parked = self._heightfields.get(self._ground_key) if self._ground_key else None
        if parked is not None:
            c.resetBasePositionAndOrientation(parked.body, [0, 0, -_PARK_DEPTH], [0, 0, 0, 1])
        c.resetBasePositionAndOrientation(self._floor, [0, 0, -task.roughness], [0, 0, 0, 1])
        self._ground = [self._floor]
        self._spawn_lift = 0.0
        self.heightfield = None
        if task.roughness > 0:
            hf = self._heightfields.get(key)
            if hf is None:
                hf = self._build_heightfield(task)
                self._heightfields[key] = hf
                while len(self._heightfields) > self.config.heightfield_cache:
                    _, old = self._heightfields.popitem(last=False)
                    c.removeBody(old.body)
            else:
                c.resetBasePositionAndOrientation(hf.body, [0, 0, hf.z_offset], [0, 0, 0, 1])
            self._heightfields.move_to_end(key)
            self._ground.append(hf.body)
            self._spawn_lift = hf.spawn_lift
            self.heightfield = hf.heights
        self._ground_key = key
        if self._state_id is not None:
            c.removeState(self._state_id)
        # Snapshot the scene: reset() restores it so episodes are independent.
        self._state_id = c.saveState()

    def _build_heightfield(self, task: TerrainTask) -> _Heightfield:
        c = self._client
        assert c is not None
        cfg = self.config
        cell = cfg.heightfield_cell
        # Odd sample counts put a sample row/column through the origin (the start).
        nx = 2 * round(0.5 * cfg.heightfield_length / cell) + 1
        ny = 2 * round(0.5 * cfg.heightfield_width / cell) + 1
        rng = np.random.default_rng(task.terrain_seed)
        # heights[iy, ix] is the ground height at x = (ix - nx//2) * cell, y = (iy - ny//2) * cell:
        # Bullet's fast (row) axis is x, so the C-order ravel of a (ny, nx) array fits.
        heights = rng.uniform(-task.roughness, task.roughness, size=(ny, nx))
        shape = c.createCollisionShape(
            p.GEOM_HEIGHTFIELD,
            meshScale=[cell, cell, 1.0],
            heightfieldData=heights.ravel().tolist(),
            numHeightfieldRows=nx,
            numHeightfieldColumns=ny,
        )
        # Bullet centres a heightfield on its AABB: shift by the height midpoint so that
        # world z equals the sampled heights.
        mid = float(0.5 * (heights.max() + heights.min()))
        body = c.createMultiBody(0, shape, basePosition=[0, 0, mid])
        # Start above the highest point within 1 m of the start so no foot is buried.
        k = math.ceil(1.0 / cell)
        cx, cy = nx // 2, ny // 2
        near = heights[max(0, cy - k) : cy + k + 1, max(0, cx - k) : cx + k + 1]
        return _Heightfield(body, heights, mid, float(max(0.0, near.max())))

    def _apply_task_dynamics(self, task: TerrainTask) -> None:
        c = self._client
        assert c is not None
        for body in self._ground:
            c.changeDynamics(body, -1, lateralFriction=task.friction)
        scale = (self._torso_mass + task.payload) / self._torso_mass
        c.changeDynamics(
            self._robot,
            self._torso,
            mass=self._torso_mass + task.payload,
            localInertiaDiagonal=[scale * i for i in self._torso_inertia],
        )
        c.setGravity(-GRAVITY * math.sin(task.slope), 0.0, -GRAVITY * math.cos(task.slope))

    # ------------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on the current (or newly set) task; joint noise from `seed`."""
        super().reset(seed=seed)
        if options:
            unknown = sorted(set(options) - {"task"})
            if unknown:
                raise ValueError(f"unknown reset options {unknown}; supported: 'task'")
            self.set_task(options["task"])
        if self._client is None:
            raise RuntimeError("the env is closed")
        if self._pending_task is not None:
            self._task, self._pending_task = self._pending_task, None
        c = self._client
        self._set_ground(self._task)
        assert self._state_id is not None
        c.restoreState(self._state_id)
        self._apply_task_dynamics(self._task)

        noise = self.config.init_noise_scale
        n = len(self._motors)
        q0 = self.np_random.uniform(-noise, noise, size=n)
        qd0 = noise * self.np_random.standard_normal(size=n)
        for j, q, qd in zip(self._motors, q0, qd0, strict=True):
            c.resetJointState(self._robot, j, float(q), float(qd))
        if self.body.planar:
            c.resetJointState(self._robot, self._root[1], self._spawn_lift, 0.0)
        else:
            pos, orn = self._init_base
            c.resetBasePositionAndOrientation(
                self._robot, [pos[0], pos[1], pos[2] + self._spawn_lift], orn
            )
        self._steps = 0
        self._needs_reset = False
        self._xy = self._torso_xy()
        return self._observe(), {"task": self._task.model_dump()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply torques for one control step (`substeps` physics steps) and score it."""
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action has non-finite entries: {a}")
        a = np.clip(a, -1.0, 1.0)
        c = self._client
        assert c is not None
        torques = self._task.motor_strength * self._max_torque * a
        c.setJointMotorControlArray(
            self._robot, self._motors, p.TORQUE_CONTROL, forces=torques.tolist()
        )
        c.stepSimulation()  # runs `substeps` Bullet steps with these torques
        self._steps += 1

        xy = self._torso_xy()
        vx, vy = (xy - self._xy) / self.dt
        self._xy = xy
        ctrl_cost = self.config.ctrl_cost_weight * float(np.sum(np.square(a)))
        task = self._task
        if self.config.family.endswith("-vel"):
            forward = -abs(vx - task.target_velocity)
        else:
            forward = vx * math.cos(task.direction) + vy * math.sin(task.direction)
        obs = self._observe()
        healthy = bool(np.all(np.isfinite(obs)))
        z_range = self.config.healthy_z_range
        if z_range is not None and healthy:
            z = self._torso_z()
            healthy = z_range[0] <= z <= z_range[1]
        reward = forward - ctrl_cost + (self.config.survive_reward if healthy else 0.0)
        terminated = not healthy
        truncated = self._steps >= self.config.max_steps
        self._needs_reset = terminated or truncated
        info = {
            "task": task.model_dump(),
            "x_velocity": float(vx),
            "y_velocity": float(vy),
            "forward_reward": float(forward),
            "ctrl_cost": ctrl_cost,
        }
        return obs, float(reward), terminated, truncated, info

    # ------------------------------------------------------------------ state

    def _torso_xy(self) -> np.ndarray:
        c = self._client
        assert c is not None
        if self.body.planar:
            return np.array([c.getJointState(self._robot, self._root[0])[0], 0.0])
        pos = c.getBasePositionAndOrientation(self._robot)[0]
        return np.array(pos[:2])

    def _torso_z(self) -> float:
        c = self._client
        assert c is not None
        if self.body.planar:
            return float(c.getLinkState(self._robot, self._torso)[0][2])
        return float(c.getBasePositionAndOrientation(self._robot)[0][2])

    def _observe(self) -> np.ndarray:
        c = self._client
        assert c is not None
        motor = c.getJointStates(self._robot, self._motors)
        q = [s[0] for s in motor]
        qd = [s[1] for s in motor]
        if self.body.planar:
            root = c.getJointStates(self._robot, self._root)
            obs = [root[1][0], root[2][0], *q, root[0][1], root[1][1], root[2][1], *qd]
        else:
            pos, orn = c.getBasePositionAndOrientation(self._robot)
            lin, ang = c.getBaseVelocity(self._robot)
            obs = [pos[2], *orn, *q, *lin, *ang, *qd]
        return np.asarray(obs, dtype=np.float32)

    # ------------------------------------------------------------------ misc

    def render(self) -> np.ndarray | None:
        """An RGB frame (H, W, 3) uint8 from a camera following the torso (rgb_array mode)."""
        if self.render_mode != "rgb_array" or self._client is None:
            return None
        c = self._client
        x, y = self._torso_xy()
        view = c.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=[float(x), float(y), 0.4],
            distance=3.0,
            yaw=0.0,
            pitch=-20.0,
            roll=0.0,
            upAxisIndex=2,
        )
        width, height = 320, 240
        proj = c.computeProjectionMatrixFOV(
            fov=60.0, aspect=width / height, nearVal=0.05, farVal=50.0
        )
        _, _, rgba, _, _ = c.getCameraImage(width, height, view, proj, renderer=p.ER_TINY_RENDERER)
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3]

    def close(self) -> None:
        """Disconnect from the Bullet server (idempotent)."""
        if self._client is not None:
            try:
                self._client.disconnect()
            finally:
                self._client = None
        super().close()
