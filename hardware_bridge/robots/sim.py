"""SimRobot: the PyBullet insertion env (`sim.insertion.InsertionEnv`) behind the Robot protocol.

The hidden socket pose error of each task stays inside the env: the robot reports poses
relative to the *believed* socket, as a real one would. `sim` (and so pybullet and gymnasium)
is imported in the constructor only, so importing this module stays light.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import numpy as np
from pydantic import ValidationError

from hardware_bridge.config import SimRobotConfig
from hardware_bridge.robot import ActionSpec, RobotError, RobotState, check_obs
from hardware_bridge.robots.env_robot import EnvRobot
from zshot.config import format_validation_error, load_yaml_mapping

__all__ = ["SimRobot"]

MM = 1000.0  # the env's observation is in mm


class SimRobot(EnvRobot):
    """A simulated insertion robot; one `command` advances the simulation by one period.

    `hold` is a zero twist (the compliant controller keeps the pose). Commands step the env
    even after it ends an episode; the loop stops on `terminated`/`truncated`."""

    _label = "SimRobot"

    def __init__(self, config: SimRobotConfig | None = None, *, seed: int = 0) -> None:
        """Build the env (imports sim/pybullet here); `seed` seeds start poses per episode."""
        # importlib, not `import sim...`: the sim (pybullet, gymnasium) is loaded only here,
        # and mypy checks this package against the Robot protocol, not against sim's types.
        sim_config = importlib.import_module("sim.config")
        sim_insertion = importlib.import_module("sim.insertion")
        sim_tasks = importlib.import_module("sim.tasks")

        self.cfg = config or SimRobotConfig()
        data = load_yaml_mapping(self.cfg.sim_config) if self.cfg.sim_config else {}
        data = sim_config.with_profile(data, self.cfg.profile)
        try:
            env_cfg: Any = sim_config.InsertionEnvConfig.model_validate(data)
        except ValidationError as exc:
            where = self.cfg.sim_config or "sim defaults"
            raise RobotError(
                format_validation_error(exc, f"{where} (profile {self.cfg.profile})")
            ) from None
        self._sim_tasks = sim_tasks
        super().__init__(
            sim_insertion.InsertionEnv(env_cfg), sim_tasks.TaskFamily(env_cfg, seed=seed), seed=seed
        )
        names = tuple(self.env.action_names)
        # The env scales a normalised action by max_lin_speed (m/s) / max_yaw_rate (rad/s).
        scale = tuple(
            env_cfg.max_lin_speed if n.startswith("v") else env_cfg.max_yaw_rate for n in names
        )
        low = tuple(float(x) for x in self.env.action_space.low)
        high = tuple(float(x) for x in self.env.action_space.high)
        self.action_spec = ActionSpec(names=names, scale=scale, low=low, high=high)
        self.control_hz = float(env_cfg.control_hz)
        self.max_steps = int(env_cfg.max_steps)
        self._force_ref = float(env_cfg.force_ref)
        self._torque_ref = float(env_cfg.torque_ref)
        self._idx = {n: self.obs_names.index(n) for n in ("x_mm", "y_mm", "z_mm", "fx", "tx")}

    def check_plugs(self, plugs: list[str]) -> None:
        """RobotError naming the first plug that has no tasks here or whose file fails its
        spec check (before a session starts, so a typo costs no episodes)."""
        for plug in plugs:
            self._tasks_of(plug)

    def set_task(self, plug: str, index: int) -> dict[str, Any]:
        """Task `index` (mod the number available) of `plug` from the seeded task family.
        `plug` is a shipped name or a plug spec file; a file outside the family becomes a
        held-out, test-only plug of its own (the family's other tasks stay as they were).
        The description's `label` is the plug's name (what tables show)."""
        tasks = self._tasks_of(plug)
        task = tasks[index % len(tasks)]
        self.env.set_task(task)
        self.task = {**task.model_dump(), "index": index, "label": self._sim_tasks.plug_label(plug)}
        return dict(self.task)

    def _tasks_of(self, plug: str) -> list[Any]:
        split = "test" if self.cfg.test_tasks else "train"
        if self._sim_tasks.is_plug_file(plug):
            try:
                self._sim_tasks.check_plug(plug)
            except ValueError as exc:
                raise RobotError(f"SimRobot: {exc}") from None
            if split == "test" and not self.family.tasks_for(plug, split):
                self.family = self.family.with_test_plugs([plug])
        tasks: list[Any] = self.family.tasks_for(plug, split)
        if not tasks:
            raise RobotError(
                f"SimRobot: no {split} tasks for plug {plug!r} "
                f"(known plugs: {', '.join(self.family.test_plugs)})"
            )
        return tasks

    def _reading(
        self, obs: Any, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> RobotState:
        o = check_obs(obs, self.obs_names)
        i = self._idx
        pin = float(self.env.plug_spec.max_pin_length)  # mm: plug origin to pin tips
        # TCP = pin tips, relative to the believed socket's top face, in m.
        tcp = np.array([o[i["x_mm"]], o[i["y_mm"]], o[i["z_mm"]] - pin], dtype=np.float64) / MM
        wrench = np.concatenate(
            [
                o[i["fx"] : i["fx"] + 3].astype(np.float64) * self._force_ref,
                o[i["tx"] : i["tx"] + 3].astype(np.float64) * self._torque_ref,
            ]
        )
        return RobotState(
            t=time.monotonic(),
            obs=o,
            tcp_position=tcp,
            wrench=wrench,
            reward=reward,
            success=bool(info.get("is_success", False)),
            terminated=bool(terminated),
            truncated=bool(truncated),
            info={
                "peak_force": float(info.get("peak_force", 0.0)),
                "safety_violation": bool(info.get("safety_violation", False)),
            },
        )
