"""Typed training batches and the one function that assembles them.

A `MetaBatch` is T tasks' RL transitions (T, B, .) plus each task's encoder context
(T, C, 2*obs + act + 1). Replay buffers (training/common/replay.py) and offline datasets
(training/common/datasets.py) both sample into it through `assemble_batch`, so the online
trainer, the offline trainer and fine-tuning build their batches the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor


class MetaBatch(NamedTuple):
    """One meta-batch: RL transitions and encoder context for T tasks."""

    obs: Tensor  # (T, B, obs)
    actions: Tensor  # (T, B, act)
    rewards: Tensor  # (T, B, 1)
    next_obs: Tensor  # (T, B, obs)
    dones: Tensor  # (T, B, 1), 1.0 only for true terminals (time-outs bootstrap)
    context: Tensor  # (T, C, 2*obs + act + 1), drawn from the encoder buffer


class TransitionSource(Protocol):
    """What `assemble_batch` samples RL transitions from (a replay buffer, a dataset)."""

    def sample(self, tasks: np.ndarray, n: int, rng: np.random.Generator) -> tuple[Any, ...]:
        """n transitions per task: obs, actions, rewards, next_obs, dones, each (T, n, .)."""
        ...


ContextSampler = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
"""(tasks, n, rng) -> n (s, a, r, s') context rows per task (T, n, D): a buffer's
`sample_context`, or a dataset's with its options bound (functools.partial)."""


def assemble_batch(
    transitions: TransitionSource,
    sample_context: ContextSampler,
    tasks: np.ndarray,
    batch_size: int,
    context_size: int,
    rng: np.random.Generator,
) -> MetaBatch:
    """`batch_size` RL transitions per task of `tasks` from `transitions`, then
    `context_size` context rows per task from `sample_context` (in that order from `rng`)."""
    obs, act, rew, nxt, done = transitions.sample(tasks, batch_size, rng)
    ctx = sample_context(tasks, context_size, rng)
    t = torch.from_numpy
    return MetaBatch(t(obs), t(act), t(rew), t(nxt), t(done), t(ctx))


def concat_batches(first: MetaBatch, second: MetaBatch) -> MetaBatch:
    """The tasks of `first`, then those of `second` (same B and C)."""
    return MetaBatch(*(torch.cat([a, b]) for a, b in zip(first, second, strict=True)))
