"""EnvRobot: the shared part of the adapters that put a Gymnasium env behind the Robot protocol.

`SimRobot` (insertion) and `LocomotionRobot` (terrain) subclass it. It owns the lifecycle:
`connect`, `reset` (seeded per episode: `seed * 100_003 + episode`), `observe`, `command`
(shape and finite check, zero action after `stop`), `hold`, `stop`, `disconnect`. A subclass
builds the env and task family in its constructor (importing `sim` there, via importlib, so
importing this package stays light), declares its action spec, rates and task selection, and
turns an env step into a `RobotState` (`_reading`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from hardware_bridge.robot import ActionSpec, RobotError, RobotState

__all__ = ["EnvRobot"]


class EnvRobot(ABC):
    """A Gymnasium env as a simulated robot; one `command` advances the env by one step."""

    _label: ClassVar[str] = "EnvRobot"
    """The adapter's name in error messages."""
    _idle_when_done: ClassVar[bool] = False
    """True: once the env ends an episode (and before the first reset), commands are no-ops
    until the next reset. False: every command steps the env."""

    env: Any
    family: Any
    obs_names: tuple[str, ...]
    action_spec: ActionSpec
    control_hz: float
    max_steps: int

    def __init__(self, env: Any, family: Any, *, seed: int) -> None:
        """Wrap the built `env` and its task `family`; `seed` seeds the episodes."""
        self.env = env
        self.family = family
        self.obs_names = tuple(env.obs_names)
        self._seed = seed
        self._episode = 0
        self._connected = False
        self._stopped = False
        self._done = self._idle_when_done  # no episode running yet
        self._state: RobotState | None = None
        self.task: dict[str, Any] = {}

    @abstractmethod
    def set_task(self, plug: str, index: int) -> dict[str, Any]:
        """Prepare task `index` of `plug`; returns its (JSON-serialisable) description."""

    @abstractmethod
    def _reading(
        self, obs: Any, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> RobotState:
        """The RobotState for one env observation (after reset or a step)."""

    def connect(self) -> None:
        """Nothing to open (the env exists); marks the robot usable."""
        self._connected = True

    def set_episode_number(self, n: int) -> None:
        """The episode counter the next `reset` seeds from: a trials worker starting at a
        later (plug, task) unit draws that unit's start poses, as one robot running the
        session from its start would (`zshot trials --workers`)."""
        self._episode = int(n)

    def reset(self) -> RobotState:
        """New episode on the current task, seeded from the seed and the episode counter."""
        self._require()
        obs, info = self.env.reset(seed=self._seed * 100_003 + self._episode)
        self._episode += 1
        self._stopped = False
        self._done = False
        self._state = self._reading(obs, 0.0, False, False, info)
        return self._state

    def observe(self) -> RobotState:
        """The reading after the last command."""
        self._require()
        if self._state is None:
            raise RobotError(f"{self._label}.observe: reset() first")
        return self._state

    def command(self, action: npt.NDArray[np.float64]) -> None:
        """One control period of the normalised `action`."""
        self._require()
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_spec.act_dim,) or not np.all(np.isfinite(a)):
            raise RobotError(f"{self._label}.command: refusing non-finite or mis-shaped action {a}")
        if self._done:
            return  # the episode ended: nothing runs until reset
        if self._stopped:
            a = np.zeros_like(a)
        obs, reward, terminated, truncated, info = self.env.step(a.astype(np.float32))
        self._done = self._idle_when_done and bool(terminated or truncated)
        self._state = self._reading(obs, float(reward), terminated, truncated, info)

    def hold(self) -> None:
        """A zero action for one period."""
        self.command(np.zeros(self.action_spec.act_dim))

    def stop(self) -> None:
        """Further commands are zero until the next reset."""
        self._stopped = True

    def disconnect(self) -> None:
        """Close the env (pybullet client)."""
        if self._connected:
            self.env.close()
        self._connected = False

    def _require(self) -> None:
        if not self._connected:
            raise RobotError(f"{self._label}: not connected (call connect() first)")
