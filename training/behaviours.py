"""Behaviours: scripted experts, demonstrators and baselines that act without training.

- for `zshot collect` (`act(obs)` with `reset(task)`): `ScriptedBehaviour` (the industrial
  expert with noise: insertion's spiral search, the point task's go-to-goal),
  `TeleopBehaviour` (a demonstrator told the task) and `RandomBehaviour` (filtered noise);
- as `FewShotAgent`s (training/common/agents.py) for evaluation and fine-tuning:
  `DemoAgent` (a demonstrator as the context source of `training.evaluate.context_eval`),
  `SpiralAgent` and `MemorySpiralAgent` (the scripted baselines of `zshot eval spiral*`).

Insertion's experts come from `sim` (imported when one is built: sim stays optional for
the toy task).
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from training.common.agents import AgentBase
from training.common.rollout import Episode
from training.common.toy_env import PointGoalEnv
from training.config import FinetuneConfig


class Behaviour(Protocol):
    """A data-collection behaviour (`zshot collect`): acts on raw observations."""

    def reset(self, task: Any) -> None:
        """A new episode on `task`: draw the episode's state."""
        ...

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action for `obs` (float32)."""
        ...

    def end_episode(self, transitions: np.ndarray) -> None:
        """The episode's (s, a, r, s') rows (a policy's posterior learns from them)."""
        ...

    def latent(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The episode's z and its variance (recorded with the data); None: no latent."""
        ...


class NoMemory:
    """Hooks of a behaviour without latent or memory."""

    def end_episode(self, transitions: np.ndarray) -> None:
        """Nothing to learn."""

    def latent(self) -> tuple[np.ndarray, np.ndarray] | None:
        """No latent."""
        return None


class BehaviourActor:
    """A `Behaviour` on one task as the rollout worker's `EpisodeActor`."""

    def __init__(self, behaviour: Behaviour, task: Any) -> None:
        self.behaviour, self.task = behaviour, task

    def begin_episode(self, rng: np.random.Generator) -> None:
        """Reset the behaviour (it draws from its own generator)."""
        self.behaviour.reset(self.task)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The behaviour's action."""
        return self.behaviour.act(np.asarray(obs, np.float32))

    def end_episode(self, episode: Episode) -> None:
        """Hand the behaviour the episode's transitions."""
        self.behaviour.end_episode(episode.transitions())


class ScriptedBehaviour(NoMemory):
    """The expert with noise: spiral search (insertion) or go-to-goal (point).

    Which expert is told by the env's type: a `PointGoalEnv` goes to its goal; an
    `InsertionEnv` (sim.insertion) gets the insertion expert; any other env (terrain) has no
    scripted expert and is refused (TypeError naming it)."""

    def __init__(self, env: Any, noise: float, rng: np.random.Generator) -> None:
        self.env, self.noise, self.rng = env, noise, rng
        self.expert: Any = None
        base = env.unwrapped if isinstance(env, gym.Env) else env  # inside any wrapper
        if not isinstance(base, PointGoalEnv):
            self.expert = self._insertion_expert(_insertion_env(base).config)
        self.task: Any = None

    def _insertion_expert(self, config: Any) -> Any:
        from sim.spiral import SpiralSearchPolicy  # lazy: sim is needed for insertion only

        return SpiralSearchPolicy(config)

    def _reset_expert(self, task: Any) -> None:
        self.expert.reset()  # the spiral does not know the task

    def reset(self, task: Any) -> None:
        """New episode on `task`."""
        self.task = task
        if self.expert is not None:
            self._reset_expert(task)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Expert action + N(0, noise^2), clipped to [-1, 1]."""
        if self.expert is not None:
            a = np.asarray(self.expert.act(obs), np.float64)
        else:
            # point: head for the goal at full speed (the env scales by the hidden gain)
            goal = np.array([self.task.goal_x, self.task.goal_y])
            a = (goal - obs) / 0.1
        a = a + self.noise * self.rng.standard_normal(a.shape)
        return np.clip(a, -1.0, 1.0).astype(np.float32)


def _insertion_env(env: Any) -> Any:
    """`env` as an InsertionEnv, or a TypeError naming what it is."""
    try:
        from sim.insertion import InsertionEnv  # lazy: sim is needed for insertion only
    except ImportError as exc:
        raise TypeError(
            f"no scripted expert for {type(env).__name__} (insertion's needs sim: {exc})"
        ) from None
    if not isinstance(env, InsertionEnv):
        raise TypeError(
            f"no scripted expert for {type(env).__name__}: they exist for the insertion "
            "env (sim.insertion.InsertionEnv) and the point task (PointGoalEnv)"
        )
    return env


class TeleopBehaviour(ScriptedBehaviour):
    """A demonstrator told the task (sim.teleop on insertion, go-to-goal on point) + noise."""

    def _insertion_expert(self, config: Any) -> Any:
        from sim.teleop import TeleopDemonstrator  # lazy: sim for insertion only

        return TeleopDemonstrator(config)

    def _reset_expert(self, task: Any) -> None:
        self.expert.reset(task)  # it sees the hidden socket pose


class RandomBehaviour(NoMemory):
    """a_t = s a_{t-1} + (1 - s) u_t, u_t ~ U(-1, 1)."""

    def __init__(self, act_dim: int, smoothing: float, rng: np.random.Generator) -> None:
        self.act_dim, self.s, self.rng = act_dim, smoothing, rng
        self.prev = np.zeros(act_dim)

    def reset(self, task: Any) -> None:
        """New episode (starts from rest)."""
        self.prev = np.zeros(self.act_dim)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The next filtered random action."""
        u = self.rng.uniform(-1.0, 1.0, self.act_dim)
        self.prev = self.s * self.prev + (1.0 - self.s) * u
        return np.clip(self.prev, -1.0, 1.0).astype(np.float32)


class DemoAgent(AgentBase):
    """A demonstrator behind the FewShotAgent interface: the noisy scripted expert
    ("scripted") or the teleop demonstrator told the task ("teleop"); no encoder."""

    def __init__(
        self, env: Any, task: Any, noise: float, rng: np.random.Generator, kind: str = "scripted"
    ) -> None:
        kinds = {"scripted": ScriptedBehaviour, "teleop": TeleopBehaviour}
        if kind not in kinds:
            raise ValueError(f"demonstrations are 'scripted' or 'teleop', not {kind!r}")
        self.behaviour = kinds[kind](env, noise, rng)
        self.task = task
        self.latent_dim = 1

    def reset_episode(self) -> None:
        """Restart the demonstrator on the task."""
        self.behaviour.reset(self.task)

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The demonstrator's noisy action."""
        return self.behaviour.act(obs)


def demo_noise(ft: FinetuneConfig) -> dict[str, float]:
    """Action noise per demonstrator kind, from the fine-tuning config."""
    return {"scripted": ft.scripted_noise, "teleop": ft.teleop_noise}


class SpiralAgent(AgentBase):
    """The scripted spiral-search baseline (sim.spiral) in the same protocol.

    It has no latent: exploration episodes change nothing, so its figures are those of
    N independent attempts per task.
    """

    def __init__(self, sim_config: Any) -> None:
        from sim.spiral import SpiralSearchPolicy  # lazy: sim for insertion only

        self.policy = SpiralSearchPolicy(sim_config)

    def reset_episode(self) -> None:
        """Restart the spiral."""
        self.policy.reset()

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The spiral's next twist."""
        return np.asarray(self.policy.act(obs), np.float32)


class MemorySpiralAgent(SpiralAgent):
    """The spiral search with memory (sim.spiral.MemorySpiralPolicy) in the same protocol.

    Its memory is per task: `reset_task` at each new test task, `end_episode` after every
    episode (exploration and evaluation alike, as an integrator's script keeps learning).
    """

    def __init__(self, sim_config: Any, *, memory: bool = True) -> None:
        from sim.spiral import MemorySpiralParams, MemorySpiralPolicy  # lazy: as above

        params = MemorySpiralParams(memory=memory)  # memory=False: the search alone
        self.policy = MemorySpiralPolicy(sim_config, params)  # type: ignore[assignment]

    def reset_task(self) -> None:
        """A new task: forget the remembered pose and the search position."""
        self.policy.reset_task()  # type: ignore[attr-defined]

    def reset_episode(self) -> None:
        """A new attempt at the same task (memory kept)."""
        self.policy.reset_episode()  # type: ignore[attr-defined]

    def end_episode(self, success: bool, final_obs: np.ndarray) -> None:
        """Tell the script how the episode ended (a success is remembered)."""
        self.policy.end_episode(success, final_obs)  # type: ignore[attr-defined]


class ContactSpiralAgent(MemorySpiralAgent):
    """The memory spiral whose yaw search reads the contact torque
    (sim.contact_search.ContactSpiralPolicy) in the same protocol; the same memory API."""

    def __init__(self, sim_config: Any, **params: Any) -> None:
        from sim.contact_search import ContactSpiralParams, ContactSpiralPolicy  # lazy: as above

        self.policy = ContactSpiralPolicy(sim_config, ContactSpiralParams(**params))  # type: ignore[assignment]
