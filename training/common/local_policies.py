"""What the algorithms that train a set of local policies and distil a central one from
them share (Distral, training/algos/distral; Divide-and-Conquer, training/algos/dnc):

- `LocalPolicyNets`: `num_policies` tanh-Gaussian local policies (`task_policies`: one per
  train task for Distral, one per context for DnC; each told `local_z_dim` task inputs,
  0 for none), the central policy `shared` told the one-hot task id (the exported one),
  twin soft Q over (s, a, one-hot id) and their Polyak targets;
- `flatten` / `twin_soft_q_loss`: a multi-task batch as rows told their one-hot id, and
  the twin soft Q's Bellman error with the algorithm's own soft bonus at (s', a');
- `local_policy_dist` / `reparameterised`: the local policy of each row-block of an
  `MTBatch` at that block's states, and a reparameterised draw from it;
- `shared_log_prob`, `gaussian_kl`: the central policy's log-likelihood of another
  policy's action, and the exact KL between two tanh-Gaussians (tanh is a bijection, so it
  is the KL of the pre-tanh diagonal Gaussians);
- `LocalPolicyActor`: a local policy as the collection actor;
- `export_central_policy`: the central policy as a `conditioned` artifact told the one-hot
  id (training/common/conditioned_export.py), checked against torch on every one-hot (the
  registry's exporter of both);
- `LocalPolicyOptimizers`: Adam for the critic, the local policies and the central one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from training.common.conditioned_export import export_conditioned_policy, one_hot_names
from training.common.multitask import MTBatch
from training.common.networks import (
    ObsNormaliser,
    QFunction,
    TanhGaussianPolicy,
    tanh_gaussian_log_prob,
)
from training.common.rollout import Episode
from training.config import SACConfig, TrainConfig


def empty_z(n: int) -> Tensor:
    """A task input of no entries: (n, 0)."""
    return torch.zeros(n, 0)


class LocalPolicyNets(nn.Module):
    """pi_1..pi_K (`task_policies`), the central pi_0 (`shared`), Q1, Q2 and their targets
    over `num_tasks` train tasks."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        num_tasks: int,
        hidden: list[int],
        local_hidden: list[int],
        *,
        num_policies: int,
        local_z_dim: int = 0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.num_tasks = obs_dim, act_dim, num_tasks
        self.local_z_dim = local_z_dim
        self.task_policies = nn.ModuleList(
            TanhGaussianPolicy(obs_dim, local_z_dim, act_dim, local_hidden)
            for _ in range(num_policies)
        )
        self.shared = TanhGaussianPolicy(obs_dim, num_tasks, act_dim, hidden)
        self.qf1 = QFunction(obs_dim, act_dim, num_tasks, hidden)
        self.qf2 = QFunction(obs_dim, act_dim, num_tasks, hidden)
        self.target_qf1 = QFunction(obs_dim, act_dim, num_tasks, hidden)
        self.target_qf2 = QFunction(obs_dim, act_dim, num_tasks, hidden)
        self.target_qf1.load_state_dict(self.qf1.state_dict())
        self.target_qf2.load_state_dict(self.qf2.state_dict())
        for p in [*self.target_qf1.parameters(), *self.target_qf2.parameters()]:
            p.requires_grad_(False)  # targets move only by Polyak averaging

    @property
    def num_policies(self) -> int:
        """How many local policies."""
        return len(self.task_policies)

    def one_hot(self, tasks: Tensor) -> Tensor:
        """Task indices (N,) -> their one-hot ids (N, num_tasks)."""
        return nn.functional.one_hot(tasks.long(), self.num_tasks).float()

    def local_z(self, tasks: Tensor) -> Tensor:
        """The local policies' task input for task indices (N,): the one-hot id when they
        take one (`local_z_dim` = num_tasks), else (N, 0)."""
        return self.one_hot(tasks) if self.local_z_dim else empty_z(len(tasks))

    def task_policy(self, index: int) -> TanhGaussianPolicy:
        """Local policy `index`."""
        policy = self.task_policies[index]
        assert isinstance(policy, TanhGaussianPolicy)  # what __init__ puts there
        return policy

    def task_policy_parameters(self) -> list[nn.Parameter]:
        """Every local policy's parameters."""
        return list(self.task_policies.parameters())

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic loss trains: the twin Q."""
        return [*self.qf1.parameters(), *self.qf2.parameters()]

    def manifest_training(self, cfg: TrainConfig) -> dict[str, Any]:
        """What the exported artifact's manifest `training` states for this algorithm."""
        raise NotImplementedError

    def set_obs_stats(self, mean: Tensor, std: Tensor) -> None:
        """Give every network the same frozen observation normalisation."""
        nets = (self.shared, self.qf1, self.qf2, self.target_qf1, self.target_qf2)
        norms: list[ObsNormaliser] = [n.normaliser for n in (*self.task_policies, *nets)]
        for norm in norms:
            norm.set_stats(mean, std)


class FlatBatch(NamedTuple):
    """An `MTBatch`'s T x B rows flattened to T*B, with each row's one-hot task id `d`."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    dones: Tensor
    d: Tensor


def flatten(batch: MTBatch, nets: LocalPolicyNets) -> FlatBatch:
    """`batch` as T*B rows (row-block t first), each told its task's one-hot id."""
    T, B, _ = batch.obs.shape
    return FlatBatch(
        obs=batch.obs.reshape(T * B, -1),
        actions=batch.actions.reshape(T * B, -1),
        rewards=batch.rewards.reshape(T * B, 1),
        next_obs=batch.next_obs.reshape(T * B, -1),
        dones=batch.dones.reshape(T * B, 1),
        d=nets.one_hot(batch.tasks.long().repeat_interleave(B)),
    )


def twin_soft_q_loss(
    nets: LocalPolicyNets,
    flat: FlatBatch,
    a_next: Tensor,
    soft_bonus: Tensor,
    sac: SACConfig,
    reduce: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """The twin-Q Bellman error to r_scale * r + (1 - done) * gamma * (min Q'(s', a', i) +
    `soft_bonus`), the bonus being the algorithm's entropy / KL terms at (s', a'); returns
    (the loss, Q1(s, a) for diagnostics)."""
    q1 = nets.qf1(flat.obs, flat.actions, flat.d)
    q2 = nets.qf2(flat.obs, flat.actions, flat.d)
    with torch.no_grad():
        target_q = torch.min(
            nets.target_qf1(flat.next_obs, a_next, flat.d),
            nets.target_qf2(flat.next_obs, a_next, flat.d),
        )
        target_v = target_q + soft_bonus
        q_target = sac.reward_scale * flat.rewards + (1.0 - flat.dones) * sac.gamma * target_v
    return reduce((q1 - q_target) ** 2) + reduce((q2 - q_target) ** 2), q1


def local_policy_dist(
    nets: LocalPolicyNets, obs: Tensor, tasks: Tensor, policies: Tensor
) -> tuple[Tensor, Tensor]:
    """Row-block t of obs (T, B, obs) through local policy `policies[t]`, told train task
    `tasks[t]`: (pre-tanh mean, log_std), both flattened to (T*B, A)."""
    T, B, _ = obs.shape
    means, log_stds = [], []
    for t in range(T):
        z = nets.local_z(tasks[t].repeat(B))
        mean, log_std = nets.task_policy(int(policies[t]))(obs[t], z)
        means.append(mean)
        log_stds.append(log_std)
    return torch.cat(means), torch.cat(log_stds)


def reparameterised(mean: Tensor, log_std: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A reparameterised draw u ~ N(mean, std): (u, log pi(tanh u) (N, 1), tanh u)."""
    u = mean + log_std.exp() * torch.randn_like(mean)
    return u, tanh_gaussian_log_prob(mean, log_std, u), torch.tanh(u)


def shared_log_prob(nets: LocalPolicyNets, obs: Tensor, d: Tensor, u: Tensor) -> Tensor:
    """log pi_0(tanh u | s, d) (N, 1)."""
    mean, log_std = nets.shared(obs, d)
    return tanh_gaussian_log_prob(mean, log_std, u)


def gaussian_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """KL(p || q) (N, 1) of two diagonal Gaussians, = the KL of their tanh-squashed
    policies (an invertible map leaves a KL unchanged)."""
    var_ratio = torch.exp(2 * (log_std_p - log_std_q))
    mahalanobis = ((mean_p - mean_q) * torch.exp(-log_std_q)).pow(2)
    kl = 0.5 * (var_ratio + mahalanobis - 1.0) - (log_std_p - log_std_q)
    return kl.sum(-1, keepdim=True)


class _Collecting(Protocol):
    rng: np.random.Generator
    act_dim: int


class LocalPolicyActor:
    """A collection actor (`EpisodeActor`): one local policy told `task`, sampled."""

    def __init__(self, trainer: _Collecting, nets: LocalPolicyNets, policy: int, task: int):
        self.trainer = trainer
        self.policy = nets.task_policy(policy)
        self.z = nets.local_z(torch.tensor([task]))

    def begin_episode(self, rng: np.random.Generator) -> None:
        """Nothing: a local policy has no per-episode state."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """A sampled action of the local policy."""
        t = self.trainer
        with torch.no_grad():
            eps = torch.from_numpy(t.rng.standard_normal(t.act_dim).astype(np.float32))
            a, _ = self.policy.sample(torch.as_tensor(obs)[None], self.z, eps[None])
        return a[0].numpy()

    def end_episode(self, episode: Episode) -> None:
        """Nothing: the trainer stores the episode."""


def export_central_policy(
    nets: LocalPolicyNets,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    name: str,
    algorithm: str,
    run_dir: str | Path,
    counters: Mapping[str, int],
    force: bool = False,
    verbose: bool = False,
) -> tuple[Any, dict[str, float]]:
    """The registry's exporter of Distral and DnC: pi_0 as a conditioned artifact directory
    (descriptor = the train task's one-hot id; the manifest's `training` adds
    `nets.manifest_training(cfg)`), checked against torch with onnxruntime on every
    one-hot. Returns (Artifact, parity errors)."""
    return export_conditioned_policy(
        nets.shared,
        cfg,
        out_dir,
        obs_dim=nets.obs_dim,
        act_dim=nets.act_dim,
        descriptor_names=one_hot_names(cfg),
        parity_descriptors=torch.eye(nets.num_tasks),
        name=name,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        training={"task_input": "onehot", **nets.manifest_training(cfg)},
        force=force,
        verbose=verbose,
    )


Opts = TypeVar("Opts", bound="LocalPolicyOptimizers")


@dataclass
class LocalPolicyOptimizers:
    """Adam for the twin Q, the local policies and the central policy; a subclass says
    where its config keeps the distillation's learning rate (`distill_lr`)."""

    critic: torch.optim.Optimizer
    policy: torch.optim.Optimizer
    distill: torch.optim.Optimizer

    @staticmethod
    def distill_lr(cfg: TrainConfig) -> float:
        """The central policy's learning rate in `cfg`."""
        raise NotImplementedError

    @classmethod
    def create(cls: type[Opts], nets: LocalPolicyNets, cfg: TrainConfig) -> Opts:
        """Adam per learner: sac.qf_lr, sac.policy_lr, `distill_lr(cfg)`."""
        return cls(
            critic=torch.optim.Adam(nets.critic_parameters(), lr=cfg.sac.qf_lr),
            policy=torch.optim.Adam(nets.task_policy_parameters(), lr=cfg.sac.policy_lr),
            distill=torch.optim.Adam(nets.shared.parameters(), lr=cls.distill_lr(cfg)),
        )

    def state_dict(self) -> dict[str, Any]:
        """All optimizer states (for checkpoints)."""
        return {k: getattr(self, k).state_dict() for k in ("critic", "policy", "distill")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`."""
        for k in ("critic", "policy", "distill"):
            getattr(self, k).load_state_dict(state[k])
