"""MockRobot: a kinematic point robot above a socket, for tests and examples.

The TCP integrates the commanded twist exactly (x += v * dt). The hidden socket sits at
`socket_error` from the believed one; below the socket's top face (z < 0) the plug is either
in the hole (|xy - socket_error| <= clearance: free to go down to `depth_success`) or
pressing on the face, which pushes back with a spring force k * penetration and stops it.
Every command and hold is kept in `.commands` so tests can check what reached the robot.
Reward and success are zshot.reward's, from the believed-frame pose, depth and force.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

from hardware_bridge.robot import ActionSpec, RobotError, RobotState
from zshot.reward import InsertionLimits, InsertionMeasurement, RewardConfig, insertion_reward

__all__ = ["MOCK_OBS_NAMES", "MockRobot"]

MOCK_OBS_NAMES: tuple[str, ...] = ("x", "y", "z", "vx", "vy", "vz", "fx", "fy", "fz")


class MockRobot:
    """A deterministic Robot: obs = [x, y, z, vx, vy, vz, fx, fy, fz] in the believed socket frame."""

    def __init__(
        self,
        *,
        seed: int = 0,
        control_hz: float = 10.0,
        max_steps: int = 50,
        start: tuple[float, float, float] = (0.0, 0.0, 0.02),
        clearance: float = 0.002,
        depth_success: float = 0.01,
        stiffness: float = 5_000.0,
        pose_error_range: float = 0.004,
        action_spec: ActionSpec | None = None,
    ) -> None:
        """Units: m, s, N/m. `pose_error_range` bounds the hidden socket xy error per task."""
        self.obs_names = MOCK_OBS_NAMES
        self.action_spec = action_spec or ActionSpec(
            names=("vx", "vy", "vz", "wz"), scale=(0.02, 0.02, 0.02, 0.3)
        )
        self.control_hz = control_hz
        self.max_steps = max_steps
        self._seed = seed
        self._start = np.asarray(start, dtype=np.float64)
        self._clearance = clearance
        self._depth = depth_success
        self._k = stiffness
        self._err_range = pose_error_range
        self._m = self.action_spec.matrix()
        self.connected = False
        self.stopped = False
        self.commands: list[npt.NDArray[np.float64]] = []
        self.socket_error = np.zeros(2)
        self.task: dict[str, Any] = {}
        self.fault_nan_reading = False  # tests: the next readings carry NaN
        # the hole is within pose_error_range + clearance of the believed socket; its floor
        # (depth_success) is reached only in the hole, so depth there means inserted
        self.reward_config = RewardConfig(success_radius=pose_error_range * 2**0.5 + clearance)
        self._limits = InsertionLimits(
            success_depth_m=depth_success - 1e-9, max_steps=max_steps, force_limit_n=1e9
        )
        self.extra_force = np.zeros(3)  # tests: an external push [N]
        self._pos = self._start.copy()
        self._vel = np.zeros(3)
        self._force = np.zeros(3)
        self._steps = 0
        self._peak_force = 0.0
        self._last_reward = 0.0

    def connect(self) -> None:
        """Nothing to open; marks the robot connected."""
        self.connected = True

    def set_task(self, plug: str, index: int) -> dict[str, Any]:
        """Task `index` of `plug`: a hidden socket xy error drawn from (seed, plug, index)."""
        key = sum(ord(c) for c in plug)
        rng = np.random.default_rng([self._seed, key, index])
        self.socket_error = rng.uniform(-self._err_range, self._err_range, size=2)
        self.task = {
            "plug": plug,
            "index": index,
            "socket_dx": float(self.socket_error[0]),
            "socket_dy": float(self.socket_error[1]),
            "clearance": self._clearance,
        }
        return dict(self.task)

    def reset(self) -> RobotState:
        """Back to the start pose, at rest."""
        self._require()
        self._pos = self._start.copy()
        self._vel = np.zeros(3)
        self._force = np.zeros(3)
        self._steps = 0
        self._peak_force = 0.0
        self._last_reward = 0.0
        self.stopped = False
        return self.observe()

    def observe(self) -> RobotState:
        """The current reading."""
        self._require()
        force = self._force + self.extra_force
        obs = np.concatenate([self._pos, self._vel, force]).astype(np.float32)
        if self.fault_nan_reading:
            obs[:] = np.nan
        success = self._measure()[1]
        return RobotState(
            t=time.monotonic(),
            obs=obs,
            # the true float64 position (a real encoder reading), not the float32 obs: the
            # box constraint is only as exact as the position it is given
            tcp_position=np.full(3, np.nan) if self.fault_nan_reading else self._pos.copy(),
            wrench=np.concatenate([force, np.zeros(3)]) * (np.nan if self.fault_nan_reading else 1),
            reward=self._last_reward,
            success=success,
            terminated=success,
            truncated=self._steps >= self.max_steps,
            info={"peak_force": self._peak_force},
        )

    def command(self, action: npt.NDArray[np.float64]) -> None:
        """Integrate one period of the normalised twist `action`."""
        self._require()
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_spec.act_dim,) or not np.all(np.isfinite(a)):
            raise RobotError(f"MockRobot.command: refusing non-finite or mis-shaped action {a}")
        self.commands.append(a.copy())
        if self.stopped:
            a = np.zeros_like(a)
        self._integrate(self._m @ a)

    def hold(self) -> None:
        """Zero twist for one period."""
        self._require()
        self.commands.append(np.zeros(self.action_spec.act_dim))
        self._integrate(np.zeros(6))

    def stop(self) -> None:
        """Stand still until the next reset."""
        self.stopped = True
        self._vel = np.zeros(3)

    def disconnect(self) -> None:
        """Marks the robot disconnected."""
        self.connected = False

    def _require(self) -> None:
        if not self.connected:
            raise RobotError("MockRobot: not connected (call connect() first)")

    def _integrate(self, twist: npt.NDArray[np.float64]) -> None:
        dt = 1.0 / self.control_hz
        v = twist[:3]
        new = self._pos + v * dt
        lateral = float(np.linalg.norm(new[:2] - self.socket_error))
        self._force = np.zeros(3)
        if new[2] < 0.0 and lateral > self._clearance:
            # Pressing on the socket face: stopped at z = 0, spring force on the penetration.
            self._force[2] = self._k * (0.0 - new[2])
            new[2] = 0.0
        elif new[2] < -self._depth:
            new[2] = -self._depth  # bottom of the hole
        self._vel = (new - self._pos) / dt
        self._pos = new
        self._steps += 1
        self._peak_force = max(self._peak_force, float(np.linalg.norm(self._force)))
        self._last_reward = self._measure()[0]

    def _measure(self) -> tuple[float, bool]:
        """(reward, success) by zshot.reward from what the mock's sensors give: the pose
        relative to the believed socket, depth below its face (-z), |F|; never socket_error."""
        force = float(np.linalg.norm(self._force))
        m = InsertionMeasurement(
            lateral_m=float(np.linalg.norm(self._pos[:2])),
            yaw_rad=0.0,
            depth_m=float(-self._pos[2]),
            force_n=force,
            peak_force_n=force,
        )
        reward, success, _ = insertion_reward(self.reward_config, m, self._limits)
        return reward, success
