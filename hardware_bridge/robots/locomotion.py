"""LocomotionRobot: the PyBullet terrain env (`sim.terrain.TerrainEnv`) behind the Robot protocol.

A legged robot's action is not a Cartesian twist but one torque per joint (normalised: the
fraction of each joint's torque limit, the env's Box(-1, 1)). So it declares a
`JointActionSpec` and brings its own safety layer (`JointSafetyLayer`): torque/action
clipping, an optional per-step rate limit, and a hold (zero torque: motors passive) on any
non-finite or mis-shaped command or reading. The workspace box and force retract of the
insertion layer have no meaning here. The hidden terrain (friction, slope, roughness,
payload, motor strength) and targets stay inside the env: the policy infers them from its
own transitions, as on a real robot.

`sim` (pybullet, gymnasium) is imported in the constructor only, so importing this module
stays light.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hardware_bridge.config import LocomotionLimits, LocomotionRobotConfig, SafetyLimits
from hardware_bridge.robot import ActionSpec, RobotError, RobotState, check_obs
from hardware_bridge.robots.env_robot import EnvRobot
from hardware_bridge.safety import SafeCommand, SafetyFlag, SafetyLayer

__all__ = ["JointActionSpec", "JointSafetyLayer", "LocomotionRobot"]

FloatArray = npt.NDArray[np.float64]
REPO_ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "test")


@dataclass(frozen=True)
class JointActionSpec(ActionSpec):
    """Joint-space actions: `names[i]` is a joint, `scale[i]` its torque limit [N m] per unit
    of action i; `low`/`high` the normalised bounds. It drives no Cartesian twist, so the
    twist maps of `ActionSpec` refuse (only the insertion safety layer uses them)."""

    def __post_init__(self) -> None:
        """Check names, scales and bounds; 0 (zero torque) must be a valid action."""
        n = len(self.names)
        if n == 0:
            raise RobotError("JointActionSpec: no joint names")
        if len(set(self.names)) != n:
            raise RobotError(f"JointActionSpec: duplicate joint names in {self.names}")
        if len(self.scale) != n or not all(np.isfinite(s) and s > 0 for s in self.scale):
            raise RobotError(f"JointActionSpec: need {n} positive finite scales, got {self.scale}")
        if not self.low:
            object.__setattr__(self, "low", (-1.0,) * n)
        if not self.high:
            object.__setattr__(self, "high", (1.0,) * n)
        if len(self.low) != n or len(self.high) != n:
            raise RobotError(f"JointActionSpec: low/high must have {n} entries")
        if not all(lo < 0.0 < hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise RobotError(
                f"JointActionSpec: need low < 0 < high, got low {self.low} high {self.high}"
            )

    def matrix(self) -> FloatArray:
        """Refused: joint torques have no twist map."""
        raise RobotError("JointActionSpec: joint-space actions drive no Cartesian twist")

    def to_twist(self, action: npt.ArrayLike) -> FloatArray:
        """Refused: joint torques have no twist map."""
        raise RobotError("JointActionSpec: joint-space actions drive no Cartesian twist")

    def to_action(self, twist: npt.ArrayLike) -> FloatArray:
        """Refused: joint torques have no twist map."""
        raise RobotError("JointActionSpec: joint-space actions drive no Cartesian twist")


class JointSafetyLayer(SafetyLayer):
    """The safety layer of a torque-controlled legged robot, in normalised joint units.

    Whatever the input, the sent command is finite, within the spec's bounds and within
    ±`max_action`, and (with `max_action_delta`) moves no joint's command by more than the
    delta per step, except to hold: zero torque is always allowed. Order:
      1. no reply / wrong shape / NaN or Inf in the command   -> hold (zero torque)
      2. NaN or Inf in the robot's own reading                -> hold
      3. clip to [low, high] and to ±max_action                (RANGE)
      4. per-step change limit                                 (DELTA)
    `twist` of every SafeCommand is zeros [6]: nothing Cartesian is commanded.
    """

    def __init__(self, limits: LocomotionLimits, spec: JointActionSpec, control_hz: float) -> None:
        """`control_hz` is kept for the interface (the rate limit is per step, not per s)."""
        if not (np.isfinite(control_hz) and control_hz > 0):
            raise ValueError(f"control_hz must be positive, got {control_hz}")
        self.joint_limits = limits
        self.spec = spec
        self.dt = 1.0 / control_hz
        cap = limits.max_action
        self._low = np.maximum(np.asarray(spec.low, dtype=np.float64), -cap)
        self._high = np.minimum(np.asarray(spec.high, dtype=np.float64), cap)
        self._prev = np.zeros(spec.act_dim)

    @property
    def previous_action(self) -> FloatArray:
        """The normalised action sent last [act_dim] (zeros after `reset` or a hold)."""
        return self._prev.copy()

    @property
    def previous_twist(self) -> FloatArray:
        """Always zeros [6]: a joint-space robot is never sent a twist."""
        return np.zeros(6)

    def reset(self) -> None:
        """Start of an episode: the motors are passive."""
        self._prev = np.zeros(self.spec.act_dim)

    def hold(self, flags: SafetyFlag = SafetyFlag.NO_REPLY) -> SafeCommand:
        """Zero torque with `flags`, recorded like any other command."""
        return self._emit(np.full(self.spec.act_dim, np.nan), np.zeros(self.spec.act_dim), flags)

    def retract(self, state: RobotState, commanded: npt.ArrayLike | None = None) -> SafeCommand:
        """No retract move exists for a legged robot: a hold flagged FORCE_STOP."""
        n = self.spec.act_dim
        raw = _as_vector(commanded)
        cmd = raw if raw is not None and raw.shape == (n,) else np.full(n, np.nan)
        return self._emit(cmd, np.zeros(n), SafetyFlag.FORCE_STOP)

    def filter(self, commanded: npt.ArrayLike | None, state: RobotState) -> SafeCommand:
        """The joint command to send for `commanded` (None: no reply) in `state`."""
        n = self.spec.act_dim
        raw = _as_vector(commanded)
        cmd = raw if raw is not None and raw.shape == (n,) else np.full(n, np.nan)
        if commanded is None:
            return self._emit(cmd, np.zeros(n), SafetyFlag.NO_REPLY)
        if raw is None or raw.shape != (n,) or not np.all(np.isfinite(raw)):
            return self._emit(cmd, np.zeros(n), SafetyFlag.NONFINITE)
        obs = np.asarray(state.obs, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(obs)):
            return self._emit(cmd, np.zeros(n), SafetyFlag.SENSOR_FAULT)
        flags = SafetyFlag.NONE
        action = np.clip(cmd, self._low, self._high)
        if not np.array_equal(action, cmd):
            flags |= SafetyFlag.RANGE
        dmax = self.joint_limits.max_action_delta
        if dmax is not None:
            # Per joint (not a norm): each motor's torque ramps by at most dmax per step.
            # Both ends are inside [low, high], so every clipped point between them is too.
            limited = np.clip(action, self._prev - dmax, self._prev + dmax)
            if not np.array_equal(limited, action):
                flags |= SafetyFlag.DELTA
            action = limited
        return self._emit(cmd, action, flags)

    def _emit(self, commanded: FloatArray, sent: FloatArray, flags: SafetyFlag) -> SafeCommand:
        sent = np.clip(sent, self._low, self._high)
        self._prev = sent
        return SafeCommand(commanded=commanded, sent=sent, twist=np.zeros(6), flags=flags)


def _as_vector(x: npt.ArrayLike | None) -> FloatArray | None:
    """x as a flat float64 vector, or None if it is not numeric at all."""
    if x is None:
        return None
    try:
        return np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None


class LocomotionRobot(EnvRobot):
    """A simulated legged robot on hidden terrain; one `command` advances one control period.

    Tasks are named by split and index: `set_task("test", 3)` is test task 3 (mod the number
    of test tasks), `set_task("test/3", i)` the same whatever `i`. `metric = "return"`: the
    trials table reports episode return, not success. Actions are normalised joint torques
    (`hold`: zero torque, motors passive); once the env ends an episode (fall or time limit),
    commands are no-ops until the next reset.
    """

    metric = "return"
    _label = "LocomotionRobot"
    _idle_when_done = True

    def __init__(self, config: LocomotionRobotConfig | None = None, *, seed: int = 0) -> None:
        """Build the env (imports sim/pybullet here); `seed` seeds joint noise per episode."""
        # importlib, not `import sim...`: the sim is loaded only here, and mypy checks this
        # package against the Robot protocol, not against sim's types.
        terrain = importlib.import_module("sim.terrain")
        terrain_tasks = importlib.import_module("sim.terrain_tasks")
        terrain_config = importlib.import_module("sim.terrain_config")
        zshot_config = importlib.import_module("zshot.config")

        self.cfg = config or LocomotionRobotConfig()
        if self.cfg.terrain_config is None:
            env_cfg: Any = terrain_config.TerrainEnvConfig()
        else:
            path = Path(self.cfg.terrain_config)
            if not path.is_absolute() and not path.is_file() and (REPO_ROOT / path).is_file():
                path = REPO_ROOT / path
            if not path.is_file():
                raise RobotError(
                    f"LocomotionRobot: terrain_config {self.cfg.terrain_config!r}: no such file"
                )
            env_cfg = zshot_config.load_config(terrain_config.TerrainEnvConfig, path)
        super().__init__(
            terrain.TerrainEnv(env_cfg),
            terrain_tasks.TerrainTaskFamily(env_cfg, seed=seed),
            seed=seed,
        )
        n = len(self.env.action_names)
        self.action_spec = JointActionSpec(
            names=tuple(self.env.action_names),
            scale=tuple(float(t) for t in self.env.body.max_torque),
            low=tuple(float(x) for x in self.env.action_space.low),
            high=tuple(float(x) for x in self.env.action_space.high),
        )
        assert self.action_spec.act_dim == n
        self.control_hz = 1.0 / float(self.env.dt)
        self.max_steps = int(env_cfg.max_steps)

    def make_safety_layer(self, limits: SafetyLimits, control_hz: float) -> JointSafetyLayer:
        """The loop's safety layer for this robot: joint limits from its own config (the
        Cartesian `limits` of the insertion layer do not apply to joint torques)."""
        spec = self.action_spec
        assert isinstance(spec, JointActionSpec)
        return JointSafetyLayer(self.cfg.limits, spec, control_hz)

    def set_task(self, plug: str, index: int) -> dict[str, Any]:
        """Task `index` of split `plug` ("train" / "test"), or the task id "test/3"."""
        split, _, number = plug.partition("/")
        if split not in SPLITS or (number and not number.isdigit()):
            raise RobotError(
                f"LocomotionRobot: unknown task {plug!r}; name a split ('train', 'test') "
                "or a task id such as 'test/3'"
            )
        tasks = self.family.train_tasks if split == "train" else self.family.test_tasks
        if not tasks:
            raise RobotError(f"LocomotionRobot: the family has no {split} tasks")
        i = int(number) if number else index
        if number and i >= len(tasks):
            raise RobotError(f"LocomotionRobot: {plug!r}: only {len(tasks)} {split} tasks")
        task = tasks[i % len(tasks)]
        self.env.set_task(task)
        self.task = {**task.model_dump(), "index": i % len(tasks), "name": task.name}
        return dict(self.task)

    def _reading(
        self, obs: Any, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> RobotState:
        o = check_obs(obs, self.obs_names)
        # tcp_position: the torso in the world frame [m] (x along the run); no wrist wrench.
        torso = np.array([*self.env._torso_xy(), self.env._torso_z()], dtype=np.float64)
        return RobotState(
            t=time.monotonic(),
            obs=o,
            tcp_position=torso,
            wrench=np.zeros(6),
            reward=reward,
            success=False,
            terminated=bool(terminated),
            truncated=bool(truncated),
            info={
                "x_velocity": float(info.get("x_velocity", 0.0)),
                "forward_reward": float(info.get("forward_reward", 0.0)),
            },
        )
