"""The safety layer between the runtime and the robot.

`SafetyLayer.filter(commanded, state)` returns the command actually sent, with flags saying
which limits acted. Whatever the input (NaN, Inf, huge, wrong shape, no reply at all) and
whatever the state, the sent command is finite, inside the action bounds, under the speed
limits, and keeps the TCP inside the workspace box for the next period (or, if the TCP is
already outside, never moves it further out). Per-step change limits hold except when
braking for the box, holding, or retracting: stopping is always allowed.

The box holds for the position the robot *reports*: it is exact up to that reading's error
(a float32 reading in mm: ~2e-9 m per step near the wall).

Order of the checks, most severe first:
  1. no reply / wrong shape / NaN or Inf in the command   -> hold (zero twist)
  2. NaN or Inf in the robot's own reading                -> hold
  3. |force| or |torque| over threshold                   -> retract (straight up), episode ends
  4. clip to action bounds, speed norms, per-step change   (smooth limits)
  5. workspace box (last, so nothing after it can undo it)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hardware_bridge.config import SafetyLimits
from hardware_bridge.robot import ActionSpec, RobotState

__all__ = ["SafeCommand", "SafetyFlag", "SafetyLayer"]

FloatArray = npt.NDArray[np.float64]


class SafetyFlag(enum.IntFlag):
    """Which limits acted on a command (stored per step in recordings as an int)."""

    NONE = 0
    NO_REPLY = 1 << 0  # the runtime missed its deadline (watchdog hold)
    NONFINITE = 1 << 1  # NaN/Inf or wrong shape in the command -> hold
    SENSOR_FAULT = 1 << 2  # NaN/Inf in the robot's reading -> hold
    FORCE_STOP = 1 << 3  # force/torque over threshold -> retract
    RANGE = 1 << 4  # clipped to the action bounds
    SPEED = 1 << 5  # scaled down to the speed limits
    DELTA = 1 << 6  # per-step change limited
    WORKSPACE = 1 << 7  # a component clamped to stay in the box
    RUNTIME_LOST = 1 << 8  # K consecutive misses: stopped (set by the loop)
    PROTECTIVE_STOP = 1 << 9  # the robot's own controller stopped (set by the loop)

    @property
    def holds(self) -> bool:
        """The command was replaced by a hold (zero twist)."""
        return bool(self & (SafetyFlag.NO_REPLY | SafetyFlag.NONFINITE | SafetyFlag.SENSOR_FAULT))


@dataclass(frozen=True)
class SafeCommand:
    """What the runtime asked for and what was sent.

    `commanded` is [act_dim] float64 (NaN-filled when there was no usable reply);
    `sent` is [act_dim] float64 in normalised action units; `twist` is `sent` in SI [6].
    """

    commanded: FloatArray
    sent: FloatArray
    twist: FloatArray
    flags: SafetyFlag


class SafetyLayer:
    """Stateful filter: remembers the last twist sent, for the per-step change limit."""

    def __init__(self, limits: SafetyLimits, spec: ActionSpec, control_hz: float) -> None:
        """`control_hz` sets the period over which the box constraint looks ahead."""
        if not (np.isfinite(control_hz) and control_hz > 0):
            raise ValueError(f"control_hz must be positive, got {control_hz}")
        self.limits = limits
        self.spec = spec
        self.dt = 1.0 / control_hz
        self._m = spec.matrix()  # [6, act_dim]
        self._low = np.asarray(spec.low, dtype=np.float64)
        self._high = np.asarray(spec.high, dtype=np.float64)
        self._box_lo = np.asarray(limits.workspace_low, dtype=np.float64)
        self._box_hi = np.asarray(limits.workspace_high, dtype=np.float64)
        self._prev_twist = np.zeros(6)

    @property
    def previous_twist(self) -> FloatArray:
        """The SI twist [6] sent last (zeros after `reset`)."""
        return self._prev_twist.copy()

    def reset(self) -> None:
        """Start of an episode: the robot is at rest."""
        self._prev_twist = np.zeros(6)

    def hold(self, flags: SafetyFlag = SafetyFlag.NO_REPLY) -> SafeCommand:
        """A zero command with `flags` (no reply, runtime lost): recorded like any other."""
        return self._emit(np.full(self.spec.act_dim, np.nan), np.zeros(6), flags)

    def filter(self, commanded: npt.ArrayLike | None, state: RobotState) -> SafeCommand:
        """The command to send for `commanded` (normalised action, or None: no reply) in `state`."""
        # Absurd readings (1e308 m) overflow to inf in norms; inf compares as "over the
        # limit", which is the safe reading, so the warning itself carries no information.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._filter(commanded, state)

    def _filter(self, commanded: npt.ArrayLike | None, state: RobotState) -> SafeCommand:
        n = self.spec.act_dim
        raw = _as_vector(commanded)
        cmd = raw if raw is not None and raw.shape == (n,) else np.full(n, np.nan)
        if commanded is None:
            return self._emit(cmd, np.zeros(6), SafetyFlag.NO_REPLY)
        if raw is None or raw.shape != (n,) or not np.all(np.isfinite(raw)):
            return self._emit(cmd, np.zeros(6), SafetyFlag.NONFINITE)

        pos = np.asarray(state.tcp_position, dtype=np.float64).reshape(-1)
        wrench = np.asarray(state.wrench, dtype=np.float64).reshape(-1)
        if (
            pos.shape != (3,)
            or wrench.shape != (6,)
            or not (np.all(np.isfinite(pos)) and np.all(np.isfinite(wrench)))
        ):
            return self._emit(cmd, np.zeros(6), SafetyFlag.SENSOR_FAULT)

        lim = self.limits
        if (
            np.linalg.norm(wrench[:3]) > lim.max_force
            or np.linalg.norm(wrench[3:]) > lim.max_torque
        ):
            return self.retract(state, cmd)

        flags = SafetyFlag.NONE
        action = np.clip(cmd, self._low, self._high)
        if not np.array_equal(action, cmd):
            flags |= SafetyFlag.RANGE
        twist = self._m @ action  # [6] SI

        # Speed norms: scale the linear and angular parts separately (direction kept).
        for part, vmax in ((slice(0, 3), lim.max_lin_speed), (slice(3, 6), lim.max_ang_speed)):
            speed = float(np.linalg.norm(twist[part]))
            if speed > vmax:
                twist[part] *= vmax / speed
                flags |= SafetyFlag.SPEED

        # Per-step change: move from the previous twist towards the target by at most the
        # limit. Both ends are under the speed limit, so every point between them is too.
        for part, dmax in ((slice(0, 3), lim.max_lin_delta), (slice(3, 6), lim.max_ang_delta)):
            delta = twist[part] - self._prev_twist[part]
            size = float(np.linalg.norm(delta))
            if size > dmax:
                twist[part] = self._prev_twist[part] + delta * (dmax / size)
                flags |= SafetyFlag.DELTA

        twist, boxed = self._clamp_box(twist, pos)
        if boxed:
            flags |= SafetyFlag.WORKSPACE
        return self._emit(cmd, twist, flags)

    def retract(self, state: RobotState, commanded: npt.ArrayLike | None = None) -> SafeCommand:
        """Straight up at retract_speed (kept in the box), flagged FORCE_STOP.

        Used on a force/torque stop and by the loop for the periods after it. A reading with
        no finite position gives a hold instead: moving blind is never safe.
        """
        n = self.spec.act_dim
        raw = _as_vector(commanded)
        cmd = raw if raw is not None and raw.shape == (n,) else np.full(n, np.nan)
        pos = np.asarray(state.tcp_position, dtype=np.float64).reshape(-1)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            return self._emit(cmd, np.zeros(6), SafetyFlag.FORCE_STOP | SafetyFlag.SENSOR_FAULT)
        up = np.zeros(6)
        up[2] = self.limits.retract_speed  # away from the socket
        with np.errstate(over="ignore", invalid="ignore"):
            twist, _ = self._clamp_box(self._driven(up), pos)
        return self._emit(cmd, twist, SafetyFlag.FORCE_STOP)

    def _driven(self, twist: FloatArray) -> FloatArray:
        """Zero the twist components no action drives (the robot cannot be told them)."""
        return self._m @ self.spec.to_action(twist) if twist.any() else twist

    def _clamp_box(self, twist: FloatArray, pos: FloatArray) -> tuple[FloatArray, bool]:
        """Clamp vx, vy, vz so pos + v * dt stays in the box; outside, never move further out.

        Clamping a component only shrinks it towards 0, so speed norms still hold.
        """
        v = twist[:3]
        # Allowed velocity interval per axis. Inside the box: reach at most the wall in one
        # period. Outside (below lo): vmin = 0 (no further out), vmax from the far wall.
        vmin = np.minimum(0.0, (self._box_lo - pos) / self.dt)
        vmax = np.maximum(0.0, (self._box_hi - pos) / self.dt)
        clamped = np.clip(v, vmin, vmax)
        changed = not np.array_equal(clamped, v)
        out = twist.copy()
        out[:3] = clamped
        return out, changed

    def _emit(self, commanded: FloatArray, twist: FloatArray, flags: SafetyFlag) -> SafeCommand:
        sent = np.clip(self.spec.to_action(twist), self._low, self._high)
        twist = self._m @ sent  # what the robot will actually do, in SI
        self._prev_twist = twist
        return SafeCommand(commanded=commanded, sent=sent, twist=twist, flags=flags)


def _as_vector(x: npt.ArrayLike | None) -> FloatArray | None:
    """x as a flat float64 vector, or None if it is not numeric at all."""
    if x is None:
        return None
    try:
        return np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
