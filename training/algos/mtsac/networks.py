"""MT-SAC's networks (training/common/networks.py's policy and Q, with the task input in the
place of PEARL's z): policy, twin Q, their targets, log alpha, and what tells them the task
(`mtsac.task_input`):

    onehot      policy and Q see the train task's one-hot id (Yu et al. 2019)
    embedding   Q sees the one-hot id; the policy sees z ~ N(mu_t, sigma_t), a learned
                Gaussian embedding per task id (Hausman et al. 2018, `TaskEmbedding`)
    descriptor  policy and Q see the task's descriptor (a fixed-size vector from data a
                user has: insertion's plug spec, zshot/plug_descriptor.py), stored per train
                task in the `descriptors` buffer

`mtsac.heads: per_task` (one-hot only) replaces the policy's output heads and the Q's last
layer by one per task (`MultiHeadPolicy`, `MultiHeadQ`: Yu et al. 2019's MT-MH-SAC), the
head picked by the one-hot (a weighted sum of the heads' outputs, so the ONNX graph is
plain matrix products). `make_nets` builds them for a config.

What the exported artifact is told (`descriptor`, `descriptor_dim` entries) is the one-hot
id (onehot, embedding: the graph maps it to the embedding's mean) or the descriptor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from training.common.networks import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    ObsNormaliser,
    QFunction,
    TanhGaussianPolicy,
    mlp,
)
from training.common.tasks import descriptor_dim
from training.config import TrainConfig

EMBED_LOG_STD_MIN = -5.0
EMBED_LOG_STD_MAX = 1.0


class TaskEmbedding(nn.Module):
    """p(z | t) = N(mu_t, diag sigma_t^2) per task id t (Hausman et al. 2018's embedding
    network for a discrete task set: a table of means and log-stds)."""

    def __init__(self, tasks: int, dim: int) -> None:
        super().__init__()
        self.mean = nn.Parameter(0.1 * torch.randn(tasks, dim))
        self.log_std = nn.Parameter(torch.full((tasks, dim), math.log(0.5)))

    def log_stds(self) -> Tensor:
        """(T, E), clamped to [EMBED_LOG_STD_MIN, EMBED_LOG_STD_MAX]."""
        return torch.clamp(self.log_std, EMBED_LOG_STD_MIN, EMBED_LOG_STD_MAX)

    def sample(self, tasks: Tensor, noise: Tensor | None = None) -> Tensor:
        """Reparameterised z (N, E) for task ids (N,)."""
        mu, log_std = self.mean[tasks], self.log_stds()[tasks]
        eps = torch.randn_like(mu) if noise is None else noise
        return mu + log_std.exp() * eps

    def entropy(self, tasks: Tensor) -> Tensor:
        """H[p(z | t)] (N, 1) for task ids (N,): sum log sigma + E/2 log(2 pi e)."""
        log_std = self.log_stds()[tasks]
        return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1, keepdim=True)

    def forward(self, descriptor: Tensor) -> Tensor:
        """A one-hot (or any weights over the task ids) (N, T) -> its mean z (N, E): what
        the exported policy computes from the one-hot it is told."""
        return descriptor @ self.mean


class MultiHeadPolicy(TanhGaussianPolicy):
    """pi_t(a | s, t): a shared trunk over (s, one-hot t), one (mean, log-std) head per task,
    the head picked by the one-hot (Yu et al. 2019's multi-head SAC)."""

    def __init__(self, obs_dim: int, tasks: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__(obs_dim, tasks, act_dim, hidden)
        del self.mean_head, self.log_std_head  # replaced by one head per task
        self.tasks = tasks
        h = hidden[-1]
        self.head_weight = nn.Parameter(torch.randn(tasks, h, 2 * act_dim) / math.sqrt(h))
        self.head_bias = nn.Parameter(torch.zeros(tasks, 2 * act_dim))

    def forward(self, obs: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """obs (N, obs) raw, z (N, T) one-hot -> pre-tanh mean (N, A), log_std (N, A)."""
        h = F.relu(self.trunk(torch.cat([self.normaliser(obs), z], dim=-1)))
        out = torch.einsum("nh,thk->ntk", h, self.head_weight) + self.head_bias
        picked = (z.unsqueeze(-1) * out).sum(1)
        mean, log_std = picked.split(self.act_dim, dim=-1)
        return mean, torch.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX)


class MultiHeadQ(nn.Module):
    """Q_t(s, a): a shared trunk over (s, a, one-hot t), one linear output per task, picked
    by the one-hot."""

    def __init__(self, obs_dim: int, act_dim: int, tasks: int, hidden: list[int]) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(obs_dim)
        self.trunk = mlp([obs_dim + act_dim + tasks, *hidden])
        h = hidden[-1]
        self.head_weight = nn.Parameter(torch.randn(tasks, h) / math.sqrt(h))
        self.head_bias = nn.Parameter(torch.zeros(tasks))

    def forward(self, obs: Tensor, action: Tensor, z: Tensor) -> Tensor:
        """obs (N, obs) raw, action (N, A), z (N, T) one-hot -> Q (N, 1)."""
        h = F.relu(self.trunk(torch.cat([self.normaliser(obs), action, z], dim=-1)))
        out = h @ self.head_weight.T + self.head_bias  # (N, T)
        return (z * out).sum(-1, keepdim=True)


class MTSACNets(nn.Module):
    """pi(a | s, .), Q1, Q2 (s, a, .) and their targets, log alpha, and the task input (see
    the module docstring); `num_tasks` train tasks, `descriptor_dim` entries told to the
    exported policy."""

    descriptors: Tensor

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        num_tasks: int,
        hidden: list[int],
        init_alpha: float,
        *,
        task_input: str = "onehot",
        heads: str = "shared",
        embedding_dim: int = 4,
        descriptors: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        if heads == "per_task" and task_input != "onehot":
            raise ValueError("per-task heads need the one-hot task input")
        self.obs_dim, self.act_dim, self.num_tasks = obs_dim, act_dim, num_tasks
        self.task_input, self.heads = task_input, heads
        if task_input == "descriptor":
            if descriptors is None or len(descriptors) != num_tasks:
                raise ValueError("task_input descriptor needs one descriptor per train task")
            table = torch.as_tensor(descriptors, dtype=torch.float32)
        else:
            table = torch.zeros(num_tasks, 0)
        # saved only when it is the task input: one-hot checkpoints from before it load
        self.register_buffer("descriptors", table, persistent=task_input == "descriptor")
        self.embedding = (
            TaskEmbedding(num_tasks, embedding_dim) if task_input == "embedding" else None
        )
        self.descriptor_dim = int(table.shape[1]) if task_input == "descriptor" else num_tasks
        """What the artifact is told (and the critic sees)."""
        policy_in = embedding_dim if task_input == "embedding" else self.descriptor_dim

        def q() -> nn.Module:
            if heads == "per_task":
                return MultiHeadQ(obs_dim, act_dim, num_tasks, hidden)
            return QFunction(obs_dim, act_dim, self.descriptor_dim, hidden)

        if heads == "per_task":
            self.policy: TanhGaussianPolicy = MultiHeadPolicy(obs_dim, num_tasks, act_dim, hidden)
        else:
            self.policy = TanhGaussianPolicy(obs_dim, policy_in, act_dim, hidden)
        self.qf1, self.qf2, self.target_qf1, self.target_qf2 = q(), q(), q(), q()
        self.target_qf1.load_state_dict(self.qf1.state_dict())
        self.target_qf2.load_state_dict(self.qf2.state_dict())
        for p in [*self.target_qf1.parameters(), *self.target_qf2.parameters()]:
            p.requires_grad_(False)  # targets move only by Polyak averaging
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_alpha)))

    def one_hot(self, tasks: Tensor) -> Tensor:
        """Task indices (N,) -> their one-hot ids (N, num_tasks)."""
        return nn.functional.one_hot(tasks.long(), self.num_tasks).float()

    def told(self, tasks: Tensor) -> Tensor:
        """Task indices (N,) -> what the artifact is told for them and the critic sees
        (N, descriptor_dim): the one-hot id, or the task's descriptor."""
        if self.task_input == "descriptor":
            return self.descriptors[tasks.long()]
        return self.one_hot(tasks)

    def policy_input(self, tasks: Tensor, noise: Tensor | None = None) -> Tensor:
        """Task indices (N,) -> the policy's task input: `told`, or (embedding) a
        reparameterised z ~ p(z | t) (`noise`: its eps; None draws it)."""
        if self.embedding is not None:
            return self.embedding.sample(tasks.long(), noise)
        return self.told(tasks)

    def policy_input_of(self, descriptor: Tensor) -> Tensor:
        """What the exported policy computes from the descriptor it is told (N, D): itself,
        or (embedding) the embedding's mean for that one-hot."""
        if self.embedding is not None:
            return self.embedding(descriptor)
        return descriptor

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic loss trains: the twin Q."""
        return [*self.qf1.parameters(), *self.qf2.parameters()]

    def normalisers(self) -> list[ObsNormaliser]:
        """Every network's observation normaliser."""
        nets = (self.policy, self.qf1, self.qf2, self.target_qf1, self.target_qf2)
        return [net.normaliser for net in nets]  # type: ignore[misc]

    def set_obs_stats(self, mean: Tensor, std: Tensor) -> None:
        """Give every network the same frozen observation normalisation."""
        for norm in self.normalisers():
            norm.set_stats(mean, std)


def make_nets(
    obs_dim: int,
    act_dim: int,
    cfg: TrainConfig,
    obs_index: Mapping[str, int] | None = None,
    descriptors: Sequence[Sequence[float]] | None = None,
) -> MTSACNets:
    """The networks for `cfg` over `cfg.num_train_tasks` train tasks (the config's
    validator requires it for mtsac). `descriptors` (task_input descriptor): one per train
    task; None: zeros of the right size, to be filled by a checkpoint's weights
    (`load_run`). `obs_index` is unused."""
    if cfg.num_train_tasks is None:
        raise ValueError("algo mtsac needs num_train_tasks (the size of the one-hot task id)")
    m = cfg.mtsac
    if m.task_input == "descriptor" and descriptors is None:
        descriptors = [[0.0] * descriptor_dim(cfg.env)] * cfg.num_train_tasks
    return MTSACNets(
        obs_dim,
        act_dim,
        cfg.num_train_tasks,
        cfg.sac.hidden,
        cfg.sac.alpha,
        task_input=m.task_input,
        heads=m.heads,
        embedding_dim=m.embedding_dim,
        descriptors=descriptors,
    )
