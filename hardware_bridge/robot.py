"""The `Robot` protocol every adapter implements, and the typed records it returns.

Units and frames. The runtime's policy speaks the env's *normalised* action units (each
entry in [-1, 1]); a robot declares, per action entry, which Cartesian twist component it
drives and its scale to SI (`ActionSpec`). The safety layer converts to SI, applies the
limits, and converts back, so what is recorded is in the same units the training data uses.
Poses and wrenches are expressed in the frame of the *believed* socket pose (x, y centred on
the socket, z up from its top face): the robot never knows the hidden pose error.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "TWIST_NAMES",
    "ActionSpec",
    "Robot",
    "RobotError",
    "RobotState",
]

FloatArray = npt.NDArray[np.float64]

# Index of each Cartesian twist component in a 6-vector [vx, vy, vz, wx, wy, wz].
TWIST_NAMES: tuple[str, ...] = ("vx", "vy", "vz", "wx", "wy", "wz")


class RobotError(RuntimeError):
    """A robot adapter could not do what was asked (connection, protective stop, bad spec)."""


@dataclass(frozen=True)
class ActionSpec:
    """How a normalised policy action maps onto a Cartesian twist in SI units.

    `names[i]` is one of TWIST_NAMES; `scale[i]` is SI units (m/s or rad/s) per unit of
    action i. `low`/`high` are the action bounds in normalised units (the env's Box).
    """

    names: tuple[str, ...]
    scale: tuple[float, ...]
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0:
            raise RobotError("ActionSpec: no action names")
        unknown = [name for name in self.names if name not in TWIST_NAMES]
        if unknown:
            raise RobotError(
                f"ActionSpec: action names {unknown} are not twist components {TWIST_NAMES}"
            )
        if len(set(self.names)) != n:
            raise RobotError(f"ActionSpec: duplicate action names in {self.names}")
        if len(self.scale) != n or not all(np.isfinite(s) and s > 0 for s in self.scale):
            raise RobotError(f"ActionSpec: need {n} positive finite scales, got {self.scale}")
        # Defaults: the env's normalised Box(-1, 1).
        if not self.low:
            object.__setattr__(self, "low", (-1.0,) * n)
        if not self.high:
            object.__setattr__(self, "high", (1.0,) * n)
        if len(self.low) != n or len(self.high) != n:
            raise RobotError(f"ActionSpec: low/high must have {n} entries")
        # 0 must be a valid action: holding still is how every fault ends.
        if not all(lo < 0.0 < hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise RobotError(
                f"ActionSpec: need low < 0 < high, got low {self.low} high {self.high}"
            )

    @property
    def act_dim(self) -> int:
        """Number of action entries."""
        return len(self.names)

    def matrix(self) -> FloatArray:
        """[6, act_dim] map: twist_SI = M @ action (each column has one non-zero)."""
        return self._matrix.copy()

    @functools.cached_property
    def _matrix(self) -> FloatArray:
        m = np.zeros((6, self.act_dim))
        for i, (name, s) in enumerate(zip(self.names, self.scale, strict=True)):
            m[TWIST_NAMES.index(name), i] = s
        return m

    @functools.cached_property
    def _index(self) -> npt.NDArray[np.intp]:
        return np.array([TWIST_NAMES.index(name) for name in self.names], dtype=np.intp)

    @functools.cached_property
    def _scale(self) -> FloatArray:
        return np.asarray(self.scale, dtype=np.float64)

    def to_twist(self, action: npt.ArrayLike) -> FloatArray:
        """Normalised action [act_dim] -> SI twist [6] (components not driven are 0)."""
        return self._matrix @ np.asarray(action, dtype=np.float64)

    def to_action(self, twist: npt.ArrayLike) -> FloatArray:
        """SI twist [6] -> normalised action [act_dim] (components not driven are dropped)."""
        tw = np.asarray(twist, dtype=np.float64)
        return tw[self._index] / self._scale


@dataclass(frozen=True)
class RobotState:
    """One reading of the robot, after the last command took effect.

    `obs` is the policy observation (the env's layout, raw units); the other fields are what
    the safety layer and the recorder need, in the believed-socket frame.
    """

    t: float
    """time.monotonic() of the reading [s]."""
    obs: npt.NDArray[np.float32]
    """[obs_dim] policy observation."""
    tcp_position: FloatArray
    """[3] x, y, z of the TCP (plug tip) relative to the believed socket [m]."""
    wrench: FloatArray
    """[6] fx, fy, fz [N], tx, ty, tz [N m] measured at the wrist."""
    reward: float = 0.0
    """Reward of the transition that led here (0 after reset)."""
    success: bool = False
    """Inserted to depth."""
    terminated: bool = False
    """The episode ended on its own (success, or a failure the robot detects)."""
    truncated: bool = False
    """The episode's time limit was reached."""
    protective_stop: bool = False
    """The robot's own controller stopped (real robots); no command moves it until reset."""
    info: dict[str, Any] = field(default_factory=dict)
    """Adapter-specific extras (JSON-serialisable), e.g. the sim's peak force."""


@runtime_checkable
class Robot(Protocol):
    """A robot the bridge can drive: sim, mock or real hardware.

    Lifecycle: connect -> (set_task -> reset -> (command|hold, observe)*)* -> disconnect.
    A simulated robot advances one control period per `command`/`hold`; a real one moves
    in real time and the loop paces it.
    `command` takes a normalised action that has already passed the safety layer; an
    adapter must still refuse non-finite input (defence in depth).
    """

    obs_names: tuple[str, ...]
    action_spec: ActionSpec
    control_hz: float
    max_steps: int

    def connect(self) -> None:
        """Open the connection to the robot (idempotent)."""
        ...

    def set_task(self, plug: str, index: int) -> dict[str, Any]:
        """Prepare task `index` of `plug`; returns its (JSON-serialisable) description."""
        ...

    def reset(self) -> RobotState:
        """Move to the start pose of the current task and return the first reading."""
        ...

    def observe(self) -> RobotState:
        """The latest reading (does not move the robot)."""
        ...

    def command(self, action: npt.NDArray[np.float64]) -> None:
        """Send one normalised twist action for one control period (read it with `observe`)."""
        ...

    def hold(self) -> None:
        """Zero twist for one control period: keep position."""
        ...

    def stop(self) -> None:
        """Decelerate to standstill and stay there until the next reset."""
        ...

    def disconnect(self) -> None:
        """Stop and release the robot (idempotent)."""
        ...


def check_obs(obs: npt.ArrayLike, obs_names: Sequence[str]) -> npt.NDArray[np.float32]:
    """`obs` as float32 [len(obs_names)], or RobotError naming the mismatch."""
    arr = np.asarray(obs, dtype=np.float32).reshape(-1)
    if arr.shape != (len(obs_names),):
        raise RobotError(f"observation has shape {arr.shape}, expected ({len(obs_names)},)")
    return arr
