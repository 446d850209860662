"""Universal Robots adapter through ur_rtde (extra `robot`: `pip install 'zshot[robot]'`).

    rtde_control.RTDEControlInterface(host)  : speedL, servoL, moveL, speedStop, servoStop,
                                               triggerProtectiveStop, stopScript, disconnect
    rtde_receive.RTDEReceiveInterface(host)  : getActualTCPPose, getActualTCPSpeed,
                                               getActualTCPForce, isProtectiveStopped

Frames. The believed socket frame is the base frame translated to `socket_position` and
turned by `socket_yaw` about base z. The robot's TCP (set on the pendant) is the plug's
origin, where the sim puts it; the safety box uses the pin tips, `tcp_to_tip` below it.
Commands: the normalised action -> SI twist in the socket frame (ActionSpec) -> base frame ->
speedL (speed mode) or servoL to pose + twist * period (servo mode). A force reading over
`protective_stop_force` triggers the controller's protective stop (independent of, and
above, the safety layer's retract threshold).

ur_rtde is imported in `connect()`, so importing this module never needs it.
"""

from __future__ import annotations

import importlib
import math
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from hardware_bridge.config import URConfig
from hardware_bridge.robot import ActionSpec, RobotError, RobotState
from zshot.reward import InsertionLimits, InsertionMeasurement, insertion_reward

__all__ = ["UR_OBS_NAMES", "URRobot"]

FloatArray = npt.NDArray[np.float64]

# The insertion env's observation layout (sim.insertion.OBS_NAMES; a test checks they agree):
# pose of the plug relative to the believed socket (mm, deg), velocity (mm/s, deg/s),
# wrist force/torque divided by force_ref / torque_ref.
UR_OBS_NAMES: tuple[str, ...] = (
    "x_mm", "y_mm", "z_mm", "roll_deg", "pitch_deg", "yaw_deg",
    "vx_mm_s", "vy_mm_s", "vz_mm_s", "wx_deg_s", "wy_deg_s", "wz_deg_s",
    "fx", "fy", "fz", "tx", "ty", "tz",
)  # fmt: skip


def rotvec_to_matrix(rv: npt.ArrayLike) -> FloatArray:
    """Rodrigues: rotation vector [3] (rad) -> rotation matrix [3, 3]."""
    v = np.asarray(rv, dtype=np.float64)
    theta = float(np.linalg.norm(v))
    if theta < 1e-12:
        return np.eye(3)
    k = v / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * (kx @ kx)


def matrix_to_rpy(m: FloatArray) -> FloatArray:
    """Rotation matrix -> roll, pitch, yaw (rad; R = Rz(yaw) Ry(pitch) Rx(roll), as pybullet)."""
    pitch = math.asin(max(-1.0, min(1.0, -m[2, 0])))
    roll = math.atan2(m[2, 1], m[2, 2])
    yaw = math.atan2(m[1, 0], m[0, 0])
    return np.array([roll, pitch, yaw])


def _rz(yaw: float) -> FloatArray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class URRobot:
    """A UR arm (e-Series or CB3) as a Robot, via ur_rtde."""

    def __init__(
        self,
        config: URConfig | None = None,
        *,
        obs_names: tuple[str, ...] | None = None,
        force_ref: float = 20.0,
        torque_ref: float = 1.0,
    ) -> None:
        """`obs_names`: the policy's observation layout (default: the insertion env's);
        `force_ref`/`torque_ref`: the env's F/T normalisation [N], [N m] (sim config)."""
        self.cfg = config or URConfig()
        self.obs_names = tuple(obs_names or UR_OBS_NAMES)
        unknown = [n for n in self.obs_names if n not in UR_OBS_NAMES]
        if unknown:
            raise RobotError(
                f"URRobot: cannot measure observation entries {unknown}; supported: {UR_OBS_NAMES}"
            )
        c = self.cfg
        self.action_spec = ActionSpec(
            names=("vx", "vy", "vz", "wz"),
            scale=(c.action_scale_lin, c.action_scale_lin, c.action_scale_lin, c.action_scale_ang),
        )
        self.control_hz = float(c.control_hz)
        self.max_steps = c.max_steps
        self._force_ref = force_ref
        self._torque_ref = torque_ref
        self._R = _rz(c.socket_yaw)  # socket frame -> base frame
        self._limits = InsertionLimits(
            success_depth_m=c.insertion_depth,
            max_steps=c.max_steps,
            force_ref_n=force_ref,
            force_limit_n=c.force_limit,
        )
        self._origin = np.asarray(c.socket_position, dtype=np.float64)
        self._ctrl: Any = None
        self._recv: Any = None
        self._steps = 0
        self._stopped = False
        self._pstop_triggered = False
        self.task: dict[str, Any] = {}

    # -- lifecycle ------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the RTDE control and receive interfaces (imports ur_rtde here)."""
        if self._ctrl is not None:
            return
        try:
            rtde_control = importlib.import_module("rtde_control")
            rtde_receive = importlib.import_module("rtde_receive")
        except ImportError as exc:
            raise RobotError(
                f"URRobot needs ur_rtde ({exc}); install the extra: pip install 'zshot[robot]'"
            ) from None
        host, hz = self.cfg.host, self.cfg.rtde_frequency
        try:
            self._recv = rtde_receive.RTDEReceiveInterface(host, hz)
            self._ctrl = rtde_control.RTDEControlInterface(host, hz)
        except RuntimeError as exc:
            raise RobotError(f"URRobot: cannot connect to {host}: {exc}") from None

    def set_task(self, plug: str, index: int) -> dict[str, Any]:
        """A real task is the plug in the gripper: recorded, nothing to change in software."""
        self.task = {"plug": plug, "index": index, "robot": "ur", "host": self.cfg.host}
        return dict(self.task)

    def reset(self) -> RobotState:
        """moveL to the start pose above the believed socket (current tool orientation)."""
        ctrl, recv = self._require()
        if self._protective_stopped():
            raise RobotError(
                "URRobot.reset: the robot is protective-stopped; clear it on the pendant first"
            )
        pose = np.asarray(recv.getActualTCPPose(), dtype=np.float64)
        start = self._origin + self._R @ np.asarray(self.cfg.start_offset)
        target = [*start.tolist(), *pose[3:].tolist()]
        if not ctrl.moveL(target, self.cfg.start_speed, self.cfg.acceleration):
            raise RobotError(f"URRobot.reset: moveL to {target} was refused")
        self._steps = 0
        self._stopped = False
        self._pstop_triggered = False
        return self.observe()

    def observe(self) -> RobotState:
        """Read pose, speed and wrench; trigger a protective stop on excessive force."""
        ctrl, recv = self._require()
        pose = np.asarray(recv.getActualTCPPose(), dtype=np.float64)
        speed = np.asarray(recv.getActualTCPSpeed(), dtype=np.float64)
        wrench_b = np.asarray(recv.getActualTCPForce(), dtype=np.float64)
        rt = self._R.T  # base -> socket frame
        pos = rt @ (pose[:3] - self._origin)
        rpy = matrix_to_rpy(rt @ rotvec_to_matrix(pose[3:]))
        lin, ang = rt @ speed[:3], rt @ speed[3:]
        wrench = np.concatenate([rt @ wrench_b[:3], rt @ wrench_b[3:]])
        fnorm = float(np.linalg.norm(wrench[:3]))
        if fnorm > self.cfg.protective_stop_force and not self._pstop_triggered:
            ctrl.triggerProtectiveStop()
            self._pstop_triggered = True
        pstop = self._pstop_triggered or self._protective_stopped()
        values = {
            **dict(zip(("x_mm", "y_mm", "z_mm"), pos * 1000.0, strict=True)),
            **dict(zip(("roll_deg", "pitch_deg", "yaw_deg"), np.degrees(rpy), strict=True)),
            **dict(zip(("vx_mm_s", "vy_mm_s", "vz_mm_s"), lin * 1000.0, strict=True)),
            **dict(zip(("wx_deg_s", "wy_deg_s", "wz_deg_s"), np.degrees(ang), strict=True)),
            **dict(zip(("fx", "fy", "fz"), wrench[:3] / self._force_ref, strict=True)),
            **dict(zip(("tx", "ty", "tz"), wrench[3:] / self._torque_ref, strict=True)),
        }
        obs = np.array([values[n] for n in self.obs_names], dtype=np.float32)
        tip = pos - np.array([0.0, 0.0, self.cfg.tcp_to_tip])
        reward, success, violation = self.reward_of(pos, float(rpy[2]), fnorm)
        return RobotState(
            t=time.monotonic(),
            obs=obs,
            tcp_position=tip,
            wrench=wrench,
            reward=reward,
            success=success,
            # a protective stop is the loop's to report (an abort), not an ordinary ending
            terminated=success or (violation and not pstop),
            truncated=self._steps >= self.max_steps,
            protective_stop=bool(pstop),
            info={"force_n": fnorm, "peak_force": fnorm, "safety_violation": violation},
        )

    def reward_of(
        self, tcp_in_socket: FloatArray, yaw: float, force_n: float
    ) -> tuple[float, bool, bool]:
        """(reward, success, violation) by zshot.reward: the TCP (plug origin) position and
        yaw relative to the believed socket [m, rad], |F| [N]; the sim's definition."""
        if not (np.all(np.isfinite(tcp_in_socket)) and math.isfinite(yaw + force_n)):
            # a faulty reading: the loop holds and never trains on its transition
            return float("nan"), False, False
        m = InsertionMeasurement(
            lateral_m=math.hypot(float(tcp_in_socket[0]), float(tcp_in_socket[1])),
            yaw_rad=abs((yaw + math.pi) % (2 * math.pi) - math.pi),
            depth_m=self.cfg.tcp_to_tip - float(tcp_in_socket[2]),  # pin tips below the face
            force_n=force_n,
            peak_force_n=force_n,  # one reading per period: its |F| is the period's peak
        )
        return insertion_reward(self.cfg.reward, m, self._limits)

    def command(self, action: npt.NDArray[np.float64]) -> None:
        """Send one normalised twist for one period (speedL, or servoL towards pose + v * dt)."""
        ctrl, recv = self._require()
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_spec.act_dim,) or not np.all(np.isfinite(a)):
            raise RobotError(f"URRobot.command: refusing non-finite or mis-shaped action {a}")
        self._steps += 1
        if self._stopped:
            return
        tw = self.action_spec.to_twist(a)
        twist_b = np.concatenate([self._R @ tw[:3], self._R @ tw[3:]])
        period = 1.0 / self.control_hz
        if self.cfg.mode == "speed":
            ctrl.speedL(twist_b.tolist(), self.cfg.acceleration, period)
        else:
            pose = np.asarray(recv.getActualTCPPose(), dtype=np.float64)
            target = pose.copy()
            target[:3] += twist_b[:3] * period
            # small-angle: compose the rotation increment about base axes with the pose
            dr = rotvec_to_matrix(twist_b[3:] * period) @ rotvec_to_matrix(pose[3:])
            target[3:] = _matrix_to_rotvec(dr)
            ctrl.servoL(
                target.tolist(), 0.0, 0.0, period, self.cfg.servo_lookahead_s, self.cfg.servo_gain
            )

    def hold(self) -> None:
        """Zero twist for one period."""
        self.command(np.zeros(self.action_spec.act_dim))

    def stop(self) -> None:
        """Decelerate to standstill (speedStop / servoStop); commands are ignored until reset."""
        ctrl, _ = self._require()
        if self.cfg.mode == "servo":
            ctrl.servoStop(self.cfg.acceleration * 4)
        else:
            ctrl.speedStop(self.cfg.acceleration * 4)
        self._stopped = True

    def disconnect(self) -> None:
        """Stop, end the control script, close both interfaces."""
        if self._ctrl is None:
            return
        try:
            self.stop()
            self._ctrl.stopScript()
        finally:
            self._ctrl.disconnect()
            self._recv.disconnect()
            self._ctrl = self._recv = None

    # -- helpers ----------------------------------------------------------------------------
    def _require(self) -> tuple[Any, Any]:
        if self._ctrl is None or self._recv is None:
            raise RobotError("URRobot: not connected (call connect() first)")
        return self._ctrl, self._recv

    def _protective_stopped(self) -> bool:
        check = getattr(self._recv, "isProtectiveStopped", None)
        return bool(check()) if callable(check) else False


def _matrix_to_rotvec(m: FloatArray) -> FloatArray:
    """Rotation matrix [3, 3] -> rotation vector [3] (rad)."""
    cos = max(-1.0, min(1.0, (float(np.trace(m)) - 1.0) / 2.0))
    theta = math.acos(cos)
    if theta < 1e-9:
        return np.zeros(3)
    if math.pi - theta < 1e-6:
        # near pi: axis from the diagonal (the antisymmetric part vanishes)
        axis = np.sqrt(np.maximum((np.diag(m) + 1.0) / 2.0, 0.0))
        axis[1] = math.copysign(axis[1], m[0, 1] + m[1, 0]) if axis[0] > 0 else axis[1]
        axis[2] = math.copysign(axis[2], m[0, 2] + m[2, 0]) if axis[0] > 0 else axis[2]
        return axis / np.linalg.norm(axis) * theta
    axis = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])
    return axis / (2.0 * math.sin(theta)) * theta
