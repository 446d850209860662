"""The one episode loop: trainer collection, few-shot evaluation and `zshot collect` run it.

`run_episode(env, act, seed)` resets the env with `seed`, steps it with `act(obs)` until it
terminates, truncates or reaches `max_steps`, and returns the whole `Episode` (observations,
actions, rewards, terminal flags, infos; its (s, a, r, s') rows for the context).
`RolloutWorker` runs whole episodes of one task for an `EpisodeActor` (an agent with its
per-episode state: a latent drawn from the prior or a posterior, a demonstrator's plan):
the unit a Ray worker wraps for fanned-out collection (issue #22), since it owns its env
and takes every random draw from the generator it is given.

Seeds: every episode's reset seed is drawn from the generator passed in, after the actor's
`begin_episode` (which may draw from it too). `task_rng(seed, index)` is the per-task
stream that makes a task's episodes independent of which worker runs it or in which order:
`zshot collect` (training.collect.TaskCollector) and few-shot evaluation
(training.evaluate.few_shot_task) draw task i's episodes from `task_rng(seed, i)` alone, so
`--workers N` (training/common/parallel.py) gives the results of one worker. Online PEARL
training draws task i's collection in round r from `task_rng(seed, i, r)`
(training/algos/pearl/collection.py), so `zshot train --workers N` does not change the run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class Episode:
    """One episode as the env produced it."""

    seed: int
    obs: np.ndarray
    """(T + 1, obs) float32: the reset observation, then each step's next observation."""
    actions: np.ndarray  # (T, act) float32
    rewards: np.ndarray  # (T,) float64
    terminated: np.ndarray  # (T,) bool: a true terminal (no bootstrap)
    truncated: np.ndarray  # (T,) bool: the env's time limit or the caller's `max_steps`
    ret: float
    """Sum of rewards, accumulated step by step (the order the reports always used)."""
    reset_info: dict[str, Any] = field(repr=False)
    infos: list[dict[str, Any]] = field(repr=False)

    @property
    def steps(self) -> int:
        """Control steps taken."""
        return len(self.actions)

    @property
    def first_success(self) -> int | None:
        """1-based step of the first `info["is_success"]`, None if there was none."""
        for i, info in enumerate(self.infos):
            if info.get("is_success", False):
                return i + 1
        return None

    @property
    def success(self) -> bool:
        """Whether any step reported `info["is_success"]`."""
        return self.first_success is not None

    def transitions(self) -> np.ndarray:
        """(T, 2*obs + act + 1) float32 rows (s, a, r, s'): the encoder's context."""
        if not self.steps:
            return np.zeros((0, 0), np.float32)
        r = self.rewards.astype(np.float32)[:, None]
        return np.concatenate([self.obs[:-1], self.actions, r, self.obs[1:]], axis=1)


def run_episode(
    env: Any,
    act: Callable[[np.ndarray], np.ndarray],
    seed: int,
    *,
    max_steps: int | None = None,
    on_step: Callable[[np.ndarray], None] | None = None,
) -> Episode:
    """Reset `env` with `seed` and step it with `act(obs)` (obs as the env returns it) to
    the episode's end; `on_step(row)` sees each (s, a, r, s') float32 row as it happens
    (an online posterior update)."""
    obs, reset_info = env.reset(seed=seed)
    observations = [np.asarray(obs, np.float32)]
    actions: list[np.ndarray] = []
    rewards: list[float] = []
    terms: list[bool] = []
    truncs: list[bool] = []
    infos: list[dict[str, Any]] = []
    ret = 0.0
    while True:
        action = act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        ret += float(reward)
        stop = max_steps is not None and len(actions) + 1 >= max_steps
        observations.append(np.asarray(next_obs, np.float32))
        actions.append(np.asarray(action, np.float32))
        rewards.append(float(reward))
        terms.append(bool(terminated))
        truncs.append(bool(truncated or (stop and not terminated)))
        infos.append(info)
        if on_step is not None:
            row = np.concatenate([obs, action, [reward], next_obs]).astype(np.float32)
            on_step(row)
        obs = next_obs
        if terminated or truncated or stop:
            break
    return Episode(
        seed=seed,
        obs=np.stack(observations),
        actions=np.stack(actions),
        rewards=np.asarray(rewards, np.float64),
        terminated=np.asarray(terms, bool),
        truncated=np.asarray(truncs, bool),
        ret=ret,
        reset_info=reset_info,
        infos=infos,
    )


def task_rng(seed: int, task_index: int, round: int | None = None) -> np.random.Generator:
    """The random stream of one task of a run: the same whichever worker runs it, in any order.

    `round` (>= 1): a task visited again and again (online training's collection rounds)
    gets a stream per visit. Not 0: numpy's seed sequence pads with zeros, so [s, i, 0]
    would be the round-less stream [s, i]."""
    if round is None:
        return np.random.default_rng([seed, task_index])
    if round < 1:
        raise ValueError(f"task_rng: round must be >= 1, got {round}")
    return np.random.default_rng([seed, task_index, round])


class EpisodeActor(Protocol):
    """An agent with its per-episode state, as a `RolloutWorker` drives it."""

    def begin_episode(self, rng: np.random.Generator) -> None:
        """Before the env's reset seed is drawn: choose the episode's state (e.g. z)."""
        ...

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action for `obs` (raw, as the env returns it)."""
        ...

    def end_episode(self, episode: Episode) -> None:
        """After the episode (e.g. add its transitions to the task's posterior)."""
        ...


# glibc's mallopt parameters (malloc.h) and the values `retain_freed_memory` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20
"""Blocks below 32 MiB (glibc's largest dynamic threshold) come from the heap, not mmap."""
TRIM_THRESHOLD = 256 << 20
"""Up to 256 MiB freed at the heap's top stays with the process."""


def retain_freed_memory() -> bool:
    """Keep the memory an env frees for the next env instead of handing it back to the OS
    (glibc's `mallopt`; False, and nothing changed, where that is not glibc).

    A fresh env per task (`zshot collect`: training.collect.TaskCollector) allocates ~28 MB
    in PyBullet and frees it on close; with glibc's defaults the larger blocks are mmap'ed
    and unmapped each time, so every env build faults ~7,000 fresh pages in: 20 of its 24
    ms in the kernel (bench/collect_profile.py). With the blocks taken from the heap and the
    heap kept, a build takes ~5 ms and faults none. Process-wide and harmless to results (it
    changes where memory comes from, not what is computed); the process keeps its peak
    memory (~tens of MB) instead of returning it between tasks."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


class RolloutWorker:
    """Whole episodes of the tasks of one env family for an `EpisodeActor`.

    It owns one env (`make_env()`); `run` sets the task and plays episodes until
    `num_steps` steps or `num_episodes` episodes are done, each episode's reset seed drawn
    from `rng` after the actor's `begin_episode`."""

    def __init__(self, make_env: Callable[[], Any], max_steps: int | None = None) -> None:
        self.env = make_env()
        self.max_steps = max_steps

    def run(
        self,
        task: Any,
        actor: EpisodeActor,
        rng: np.random.Generator,
        *,
        num_steps: int | None = None,
        num_episodes: int | None = None,
        on_episode: Callable[[Episode], None] | None = None,
        on_step: Callable[[np.ndarray], None] | None = None,
    ) -> list[Episode]:
        """Episodes of `task` until `num_steps` steps (whole episodes) or `num_episodes`;
        `on_episode` sees each as it ends (after the actor's `end_episode`), `on_step`
        each step's (s, a, r, s') row (a recurrent policy's previous action and reward)."""
        if (num_steps is None) == (num_episodes is None):
            raise ValueError("give exactly one of num_steps and num_episodes")
        self.env.set_task(task)
        out: list[Episode] = []
        steps = 0
        while (num_steps is not None and steps < num_steps) or (
            num_episodes is not None and len(out) < num_episodes
        ):
            actor.begin_episode(rng)
            seed = int(rng.integers(2**31))
            ep = run_episode(self.env, actor.act, seed, max_steps=self.max_steps, on_step=on_step)
            actor.end_episode(ep)
            if on_episode is not None:
                on_episode(ep)
            steps += ep.steps
            out.append(ep)
        return out

    def close(self) -> None:
        """Close the env."""
        self.env.close()
