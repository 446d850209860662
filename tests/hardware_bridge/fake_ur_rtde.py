"""A fake of the ur_rtde interfaces (rtde_control / rtde_receive) for adapter tests.

A kinematic TCP: speedL integrates the base-frame twist over its `time` argument, servoL
jumps to the target, moveL jumps to the target. Every call is logged in `calls`.
"""

from __future__ import annotations

import types
from typing import Any


class FakeArm:
    def __init__(self) -> None:
        self.pose = [0.4, 0.0, 0.2, 3.14159, 0.0, 0.0]
        self.speed = [0.0] * 6
        self.force = [0.0] * 6
        self.protective_stopped = False
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.connected_to: list[tuple[str, float]] = []


ARM = FakeArm()


class RTDEControlInterface:
    def __init__(self, host: str, frequency: float = 500.0) -> None:
        ARM.connected_to.append((host, frequency))

    def _log(self, name: str, *args: Any) -> None:
        ARM.calls.append((name, args))

    def speedL(self, xd: list[float], acceleration: float = 0.25, time: float = 0.0) -> bool:
        self._log("speedL", list(xd), acceleration, time)
        if ARM.protective_stopped:
            return False
        ARM.speed = list(xd)
        for i in range(6):
            ARM.pose[i] += xd[i] * time if i < 3 else 0.0
        return True

    def servoL(self, pose: list[float], speed: float, acceleration: float, time: float,
               lookahead_time: float, gain: float) -> bool:  # fmt: skip
        self._log("servoL", list(pose), speed, acceleration, time, lookahead_time, gain)
        ARM.pose = list(pose)
        return True

    def moveL(self, pose: list[float], speed: float = 0.25, acceleration: float = 1.2,
              asynchronous: bool = False) -> bool:  # fmt: skip
        self._log("moveL", list(pose), speed, acceleration)
        ARM.pose = list(pose)
        ARM.speed = [0.0] * 6
        return True

    def speedStop(self, a: float = 10.0) -> None:
        self._log("speedStop", a)
        ARM.speed = [0.0] * 6

    def servoStop(self, a: float = 10.0) -> None:
        self._log("servoStop", a)

    def triggerProtectiveStop(self) -> bool:
        self._log("triggerProtectiveStop")
        ARM.protective_stopped = True
        return True

    def stopScript(self) -> None:
        self._log("stopScript")

    def disconnect(self) -> None:
        self._log("disconnect_control")


class RTDEReceiveInterface:
    def __init__(self, host: str, frequency: float = 500.0) -> None:
        pass

    def getActualTCPPose(self) -> list[float]:
        return list(ARM.pose)

    def getActualTCPSpeed(self) -> list[float]:
        return list(ARM.speed)

    def getActualTCPForce(self) -> list[float]:
        return list(ARM.force)

    def isProtectiveStopped(self) -> bool:
        return ARM.protective_stopped

    def disconnect(self) -> None:
        ARM.calls.append(("disconnect_receive", ()))


def modules() -> tuple[types.ModuleType, types.ModuleType, FakeArm]:
    """Fresh `rtde_control` and `rtde_receive` fake modules sharing a new FakeArm."""
    global ARM
    ARM = FakeArm()
    ctrl = types.ModuleType("rtde_control")
    ctrl.RTDEControlInterface = RTDEControlInterface  # type: ignore[attr-defined]
    recv = types.ModuleType("rtde_receive")
    recv.RTDEReceiveInterface = RTDEReceiveInterface  # type: ignore[attr-defined]
    return ctrl, recv, ARM
