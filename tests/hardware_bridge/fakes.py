"""Fake runtimes behind the loop's Policy seam: scripted actions, misses, NaN, disappearance.

The fake keeps a real "posterior" (the running mean of every transition it absorbed and
their count) so tests can check that a restore replays the context exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class FakeState:
    mean: npt.NDArray[np.float32]
    var: npt.NDArray[np.float32]
    count: int


class FakeRuntime:
    """A Policy whose behaviour per step is scripted.

    `action_fn(obs, step_index)` gives the action; `miss_fn(step_index)` says whether that
    step's reply misses its deadline (raises TimeoutError); `alive=False` makes every call
    fail as a dead server does (TimeoutError), until set back to True, at which point the
    server has lost every session (like a restarted process) and needs a new hello.
    """

    def __init__(
        self,
        act_dim: int = 4,
        latent_dim: int = 2,
        action_fn: Callable[[npt.NDArray[np.float32], int], Any] | None = None,
        miss_fn: Callable[[int], bool] | None = None,
    ) -> None:
        self.act_dim = act_dim
        self.latent_dim = latent_dim
        self.action_fn = action_fn or (lambda obs, i: np.zeros(act_dim, dtype=np.float32))
        self.miss_fn = miss_fn or (lambda i: False)
        self.alive = True
        self.session = 0
        self.sessions_opened = 0
        self.steps = 0
        self.stochastic_steps = 0  # steps that asked for a sampled action
        self.context: list[npt.NDArray[np.float32]] = []
        self.mode = ("exploit", "episode")
        self.calls: list[str] = []
        self.kill_after_steps: int | None = None
        self.descriptors: list[list[float] | None] = []  # one per reset_task

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if not self.alive:
            raise TimeoutError(f"{name}: no reply (fake runtime is down)")
        if self.session == 0 and name != "hello":
            raise RuntimeError(f"{name}: unknown session (fake runtime restarted)")

    def kill(self) -> None:
        """The server process dies: sessions and posteriors are gone."""
        self.alive = False
        self.session = 0
        self.context = []

    def hello(self, **_: Any) -> dict[str, int]:
        self._check("hello")
        self.sessions_opened += 1
        self.session = self.sessions_opened
        self.context = []
        return {"session_id": self.session, "latent_dim": self.latent_dim}

    def step(
        self,
        obs: npt.ArrayLike,
        transition: npt.ArrayLike | None = None,
        *,
        timeout_s: float | None = None,
        stochastic: bool = False,
    ) -> npt.NDArray[np.float32]:
        self.stochastic_steps += int(stochastic)
        if self.kill_after_steps is not None and self.steps >= self.kill_after_steps:
            self.kill()
            self.kill_after_steps = None
        self._check("step")
        i = self.steps
        self.steps += 1
        if transition is not None:
            self.context.append(np.asarray(transition, dtype=np.float32))
        if self.miss_fn(i):
            raise TimeoutError(f"step {i}: no reply within {timeout_s}")
        return np.asarray(self.action_fn(np.asarray(obs, dtype=np.float32), i))

    def observe(self, transitions: npt.ArrayLike) -> int:
        self._check("observe")
        for row in np.atleast_2d(np.asarray(transitions, dtype=np.float32)):
            self.context.append(row)
        return len(self.context)

    def reset_task(self, descriptor: npt.ArrayLike | None = None) -> None:
        self._check("reset_task")
        self.context = []
        self.descriptors.append(None if descriptor is None else np.asarray(descriptor).tolist())

    def reset_episode(self) -> None:
        self._check("reset_episode")

    def set_mode(self, mode: str, update: str = "episode") -> None:
        self._check("set_mode")
        self.mode = (mode, update)

    def get_state(self) -> FakeState:
        self._check("get_state")
        if self.context:
            ctx = np.stack(self.context)
            mean = ctx.mean(axis=0)[: self.latent_dim]
        else:
            mean = np.zeros(self.latent_dim, dtype=np.float32)
        var = np.full(self.latent_dim, 1.0 / (1 + len(self.context)), dtype=np.float32)
        return FakeState(mean=mean.astype(np.float32), var=var, count=len(self.context))
