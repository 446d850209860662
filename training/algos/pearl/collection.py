"""PEARL's online collection as units a rollout worker runs (issue #22).

A unit is one train task's share of one collection round: the initial collection (round 1:
`initial_steps` with z from the prior) or iteration k's refresh (round k + 2: `steps_prior`
with z from the prior, `steps_posterior` and `steps_extra_posterior` with z from the
posterior). The task's encoder buffer is cleared before a refresh, so the posterior a unit
samples from is built from that unit's own episodes alone: a worker rebuilds it in a
one-task buffer of its own and the trainer never has to send a buffer. Every draw of a
unit (z, the env's reset seeds, action noise, the context rows of the posterior) comes
from `task_rng(seed, task, round)` and it runs on a fresh env (the insertion env keeps
PyBullet state across `set_task`), so a unit's episodes are the same whichever worker runs
it and in whichever order: a run does not depend on `workers`.

`PearlCollector.collect(unit, weights)` returns the unit's transitions per phase as arrays
(no per-step info dicts: that is what crosses the process boundary); the trainer writes
them into its buffers in unit order. With Ray, `weights` is the policy's and the encoder's
state dicts, `ray.put` once per round (training.algos.pearl.trainer); in the trainer's own
process the collector shares the trainer's networks and `weights` is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from training.algos.pearl.losses import product_of_gaussians
from training.algos.pearl.networks import PearlNets, make_nets
from training.common.replay import MultiTaskReplayBuffer
from training.common.rollout import Episode, RolloutWorker, task_rng
from training.common.tasks import make_task_source, observation_index
from training.config import TrainConfig


@dataclass(frozen=True)
class Phase:
    """Steps of one kind within a unit: z from the prior or the posterior; into the encoder
    buffer too (`to_enc`) or the RL buffer only."""

    steps: int
    z_from: str
    to_enc: bool


@dataclass(frozen=True)
class Unit:
    """Train task `task`'s collection in round `round` (>= 1; module doc)."""

    task: int
    round: int
    phases: tuple[Phase, ...]


@dataclass
class PhaseData:
    """One phase's episodes as (s, a, r, s', done) rows, in the order they were played."""

    to_enc: bool
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    dones: np.ndarray
    returns: list[float]
    successes: int
    steps: int


def refresh_phases(cfg: TrainConfig) -> tuple[Phase, ...]:
    """An iteration's phases of one task (those with steps > 0)."""
    phases = (
        Phase(cfg.steps_prior, "prior", True),
        Phase(cfg.steps_posterior, "posterior", True),
        Phase(cfg.steps_extra_posterior, "posterior", False),
    )
    return tuple(p for p in phases if p.steps > 0)


def initial_phases(cfg: TrainConfig) -> tuple[Phase, ...]:
    """The initial collection of one task: `initial_steps` (at least 1) from the prior."""
    return (Phase(max(cfg.initial_steps, 1), "prior", True),)


def _phase_data(to_enc: bool, episodes: list[Episode], obs_dim: int, act_dim: int) -> PhaseData:
    if episodes:
        obs = np.concatenate([ep.obs[:-1] for ep in episodes])
        nxt = np.concatenate([ep.obs[1:] for ep in episodes])
        act = np.concatenate([ep.actions for ep in episodes])
        rew = np.concatenate([ep.rewards for ep in episodes])
        done = np.concatenate([ep.terminated for ep in episodes])
    else:
        obs = nxt = np.zeros((0, obs_dim), np.float32)
        act = np.zeros((0, act_dim), np.float32)
        rew, done = np.zeros(0), np.zeros(0, bool)
    return PhaseData(
        to_enc,
        obs,
        act,
        rew,
        nxt,
        done,
        [ep.ret for ep in episodes],
        sum(ep.success for ep in episodes),
        sum(ep.steps for ep in episodes),
    )


class _Sampling:
    """The unit's `EpisodeActor`: z once per episode from the prior or from the posterior
    of the unit's encoder buffer, stochastic actions; every draw from the unit's stream."""

    def __init__(
        self, collector: PearlCollector, z_from: str, enc: MultiTaskReplayBuffer, rng: Any
    ) -> None:
        self.c, self.z_from, self.enc, self.rng = collector, z_from, enc, rng
        self.z = torch.zeros(1, collector.nets.latent_dim)

    def begin_episode(self, rng: np.random.Generator) -> None:
        """Draw the episode's z (zeros without the latent)."""
        L = self.c.nets.latent_dim
        if not self.c.cfg.use_latent:
            z = np.zeros(L, np.float32)
        else:
            mean, var = (np.zeros(L), np.ones(L)) if self.z_from == "prior" else self._posterior()
            z = (mean + np.sqrt(var) * rng.standard_normal(L)).astype(np.float32)
        self.z = torch.from_numpy(z)[None]

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        L, cfg = self.c.nets.latent_dim, self.c.cfg
        if self.enc.sizes[0] == 0:
            return np.zeros(L), np.ones(L)
        ctx = self.enc.sample_context(np.array([0]), cfg.context_size, self.rng)
        with torch.no_grad():
            mu_n, var_n = self.c.nets.encoder(torch.from_numpy(ctx))  # (1, C, L)
            mean, var = product_of_gaussians(mu_n, var_n, prior=cfg.encoder.prior_in_posterior)
        return mean[0].numpy(), var[0].numpy()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """A sampled action of the current policy."""
        act_dim = self.c.act_dim
        with torch.no_grad():
            eps = torch.from_numpy(self.rng.standard_normal(act_dim).astype(np.float32))
            a, _ = self.c.nets.policy.sample(torch.as_tensor(obs)[None], self.z, eps[None])
        return a[0].numpy()

    def end_episode(self, episode: Episode) -> None:
        """Nothing: the collector keeps the episode."""


class PearlCollector:
    """A rollout worker of PEARL's online collection: its own task source and networks (or
    the trainer's `nets`, in the trainer's process); `collect(unit, weights)` plays one
    unit (module doc)."""

    def __init__(
        self, cfg: TrainConfig, obs_dim: int, act_dim: int, nets: PearlNets | None = None
    ) -> None:
        if nets is None:  # a worker of its own: one intra-op thread, batch-1 forward passes
            torch.set_num_threads(cfg.torch_threads)
            nets = make_nets(obs_dim, act_dim, cfg, observation_index(cfg))
        self.cfg, self.obs_dim, self.act_dim, self.nets = cfg, obs_dim, act_dim, nets
        self.source = make_task_source(cfg)

    def collect(self, unit: Unit, weights: dict[str, Any] | None = None) -> list[PhaseData]:
        """The unit's phases, each its episodes' rows; `weights` (the policy's and the
        encoder's state dicts) replaces the networks' first, None keeps them."""
        if weights is not None:
            self.nets.policy.load_state_dict(weights["policy"])
            self.nets.encoder.load_state_dict(weights["encoder"])
        cfg = self.cfg
        rng = task_rng(cfg.seed, unit.task, unit.round)
        enc = MultiTaskReplayBuffer(1, cfg.buffer_capacity, self.obs_dim, self.act_dim)
        worker = RolloutWorker(self.source.make_env, cfg.max_episode_steps)
        task = self.source.train_tasks[unit.task]
        out = []
        try:
            for phase in unit.phases:
                # the posterior of every later episode sees this phase's episodes as they end
                keep = (lambda ep: _add_episode(enc, ep)) if phase.to_enc else None
                actor = _Sampling(self, phase.z_from, enc, rng)
                episodes = worker.run(task, actor, rng, num_steps=phase.steps, on_episode=keep)
                out.append(_phase_data(phase.to_enc, episodes, self.obs_dim, self.act_dim))
        finally:
            worker.close()
        return out

    def close(self) -> None:
        """Nothing to close: each unit's env is closed when it ends."""


def collection_weights(nets: PearlNets) -> dict[str, Any]:
    """What a worker needs of the trainer's networks to collect: the policy and the encoder
    (their obs normalisers included; the critics stay with the learner)."""
    return {"policy": nets.policy.state_dict(), "encoder": nets.encoder.state_dict()}


def _add_episode(buffer: MultiTaskReplayBuffer, ep: Episode) -> None:
    buffer.add_rows(0, ep.obs[:-1], ep.actions, ep.rewards, ep.obs[1:], ep.terminated)


def store(buffer: MultiTaskReplayBuffer, task: int, data: PhaseData) -> None:
    """`data`'s rows into `task`'s buffer, in order."""
    buffer.add_rows(task, data.obs, data.actions, data.rewards, data.next_obs, data.dones)
