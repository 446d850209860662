"""Robot adapters. Each imports its SDK (pybullet via `sim`, ur_rtde) lazily, in its
constructor, so importing this package never needs an optional extra."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hardware_bridge.config import TrialsConfig
    from hardware_bridge.robot import Robot

__all__ = ["make_robot"]


def make_robot(cfg: TrialsConfig, *, obs_names: tuple[str, ...] | None = None) -> Robot:
    """The adapter named by `cfg.robot` (sim, sim-locomotion, mock, ur), configured from `cfg`."""
    if cfg.robot == "sim":
        from hardware_bridge.robots.sim import SimRobot

        return SimRobot(cfg.sim, seed=cfg.seed)
    if cfg.robot == "sim-locomotion":
        from hardware_bridge.robots.locomotion import LocomotionRobot

        return LocomotionRobot(cfg.locomotion, seed=cfg.seed)
    if cfg.robot == "mock":
        from hardware_bridge.robots.mock import MockRobot

        return MockRobot(seed=cfg.seed)
    if cfg.robot == "ur":
        from hardware_bridge.robots.ur import URRobot

        return URRobot(cfg.ur, obs_names=obs_names)
    raise ValueError(f"unknown robot {cfg.robot!r}; expected sim, sim-locomotion, mock or ur")
