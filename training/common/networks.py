"""The networks algorithms compose: MLP, observation normaliser, context encoder, belief
features, tanh-Gaussian policy, Q and V functions (each algorithm builds its own set from
these: `training.algos.pearl.networks.PearlNets`, `training.algos.offline_pearl.networks`).

Every network takes *raw* observations: an `ObsNormaliser` (buffers, not parameters) sits in
front, so the exported ONNX graphs carry the normalisation and the robot needs no Python.
"""

from __future__ import annotations

import math

import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn
from torch.nn import functional as F

LOG_STD_MIN = -20.0  # SAC's clamp on the policy's log-std (rlkit uses the same values)
LOG_STD_MAX = 2.0
VAR_MIN = 1e-7  # oyster's floor on each factor's variance: keeps 1/var finite


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ObsNormaliser(nn.Module):
    """obs_n = clip((obs - mean) / std, -clip, clip); mean/std are frozen buffers.

    Set once from the initial data (`set_stats`) and saved with the networks, so training,
    checkpoints and the exported graphs all use the same numbers.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, obs_dim: int, clip: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))
        self.clip = clip

    def set_stats(self, mean: Tensor, std: Tensor, min_std: float = 1e-3) -> None:
        """Freeze the statistics; std is floored so a constant feature does not explode."""
        self.mean.copy_(mean)
        self.std.copy_(torch.clamp(std, min=min_std))

    def forward(self, obs: Tensor) -> Tensor:
        """Normalise raw observations (..., obs_dim)."""
        return torch.clamp((obs - self.mean) / self.std, -self.clip, self.clip)


class ContextEncoder(nn.Module):
    """One transition c_n = (s, a, r, s') -> Gaussian factor Psi(z | c_n) = N(mu_n, var_n).

    s' is part of the input because plugs differ in dynamics, not only in reward (PEARL
    appendix: use_next_obs_in_context).
    """

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.latent_dim = obs_dim, act_dim, latent_dim
        self.normaliser = ObsNormaliser(obs_dim)
        self.net = mlp([2 * obs_dim + act_dim + 1, *hidden, 2 * latent_dim])

    @property
    def transition_dim(self) -> int:
        """Width of one (s, a, r, s') row."""
        return 2 * self.obs_dim + self.act_dim + 1

    def forward(self, transition: Tensor) -> tuple[Tensor, Tensor]:
        """transition (..., 2*obs+act+1) raw -> mu (..., L), var (..., L) with var > 0."""
        o, a = self.obs_dim, self.act_dim
        s, act, r, s_next = torch.split(transition, [o, a, 1, o], dim=-1)
        x = torch.cat([self.normaliser(s), act, r, self.normaliser(s_next)], dim=-1)
        out = self.net(x)
        mu, pre_var = torch.split(out, [self.latent_dim, self.latent_dim], dim=-1)
        var = torch.clamp(F.softplus(pre_var), min=VAR_MIN)  # oyster: sigma^2 = softplus(.)
        return mu, var


class TaskDecoder(nn.Module):
    """Belief features: the task-inference head's estimate of hidden task parameters, read
    out of z and put relative to the robot's own observation.

    For feature k: e_k = scale_k * ((W z + b)_k * t_std_k + t_mean_k) - obs[idx_k], in the
    observation's unit (e.g. "socket x - plug x" in mm); the networks get e_k / std(obs_k)
    (coarse) and tanh(e_k / fine_k) (fine: resolves errors below its width `fine_k`, in the
    observation's unit, and saturates beyond a few widths).
    W, b are a frozen copy of the offline task-inference head (`set_head`, after each of
    its steps), so no other loss moves them and the exported policy graph carries them.
    One instance is shared by the policy and all Q networks.
    """

    weight: Tensor
    bias: Tensor
    t_mean: Tensor
    t_std: Tensor
    scale: Tensor
    index: Tensor
    fine: Tensor

    def __init__(
        self,
        latent_dim: int,
        obs_index: list[int],
        scale: list[float],
        fine: list[float] | None = None,
    ) -> None:
        super().__init__()
        n = len(obs_index)
        self.register_buffer("weight", torch.zeros(n, latent_dim))
        self.register_buffer("bias", torch.zeros(n))
        self.register_buffer("t_mean", torch.zeros(n))
        self.register_buffer("t_std", torch.ones(n))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("index", torch.tensor(obs_index, dtype=torch.long))
        widths = [1.0] * n if fine is None else fine
        # not persistent: from the config (make_nets), so checkpoints from before it load
        self.register_buffer("fine", torch.tensor(widths, dtype=torch.float32), persistent=False)

    @property
    def out_dim(self) -> int:
        """Features added to a network's input."""
        return 2 * int(self.index.numel())

    @torch.no_grad()
    def set_head(
        self, head: nn.Linear, t_mean: ArrayLike, t_std: ArrayLike, rows: list[int]
    ) -> None:
        """Copy rows `rows` of the task-inference head (standardised targets) and their
        de-standardisation (`t_mean`, `t_std` of all the head's targets)."""
        idx = torch.as_tensor(rows, dtype=torch.long)
        self.weight.copy_(head.weight[idx])
        self.bias.copy_(head.bias[idx])
        self.t_mean.copy_(torch.as_tensor(t_mean, dtype=torch.float32)[idx])
        self.t_std.copy_(torch.as_tensor(t_std, dtype=torch.float32)[idx])

    def estimate(self, z: Tensor) -> Tensor:
        """z (N, L) -> the head's estimate of each feature's task parameter (N, n), in the
        parameter's own unit (before `scale`; e.g. dx in m)."""
        return F.linear(z, self.weight, self.bias) * self.t_std + self.t_mean

    def forward(self, obs: Tensor, z: Tensor, obs_std: Tensor) -> Tensor:
        """obs (N, obs) raw, z (N, L), obs_std (obs,) -> features (N, 2 n)."""
        err = self.estimate(z) * self.scale - obs[..., self.index]
        return torch.cat([err / obs_std[self.index], torch.tanh(err / self.fine)], dim=-1)


def _inputs(decoder: TaskDecoder | None, norm: ObsNormaliser, obs: Tensor, *mid: Tensor) -> Tensor:
    """[normalised obs, *mid, belief features (with a decoder)]; mid is (z,) for the policy,
    (action, z) for Q: the order of the networks without features, so their checkpoints load."""
    parts = [norm(obs), *mid]
    if decoder is not None:
        parts.append(decoder(obs, mid[-1], norm.std))
    return torch.cat(parts, dim=-1)


class TanhGaussianPolicy(nn.Module):
    """pi(a | s, z): a = tanh(mean + std * eps), eps ~ N(0, I) (SAC appendix C)."""

    def __init__(
        self,
        obs_dim: int,
        latent_dim: int,
        act_dim: int,
        hidden: list[int],
        decoder: TaskDecoder | None = None,
    ) -> None:
        super().__init__()
        self.act_dim = act_dim
        self.normaliser = ObsNormaliser(obs_dim)
        self.decoder = decoder
        extra = decoder.out_dim if decoder is not None else 0
        self.trunk = mlp([obs_dim + latent_dim + extra, *hidden])
        self.mean_head = nn.Linear(hidden[-1], act_dim)
        self.log_std_head = nn.Linear(hidden[-1], act_dim)

    def forward(self, obs: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """obs (N, obs) raw, z (N, L) -> pre-tanh mean (N, A), log_std (N, A)."""
        h = F.relu(self.trunk(_inputs(self.decoder, self.normaliser, obs, z)))
        log_std = torch.clamp(self.log_std_head(h), LOG_STD_MIN, LOG_STD_MAX)
        return self.mean_head(h), log_std

    def sample(self, obs: Tensor, z: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Reparameterised action in [-1, 1] and its log-probability (N, 1).

        `noise` is eps ~ N(0, I); None draws it; zeros give the deterministic action tanh(mean).
        """
        mean, log_std = self(obs, z)
        std = log_std.exp()
        eps = torch.randn_like(mean) if noise is None else noise
        pre_tanh = mean + std * eps
        action = torch.tanh(pre_tanh)
        # log N(pre_tanh; mean, std) - sum log(1 - tanh^2)  (SAC eq. 21), the correction in
        # the numerically stable form 2 (log 2 - u - softplus(-2u)).
        log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
        log_prob = log_prob - (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(
            -1, keepdim=True
        )
        return action, log_prob


class QFunction(nn.Module):
    """Q(s, a, z) -> (N, 1)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        latent_dim: int,
        hidden: list[int],
        decoder: TaskDecoder | None = None,
    ) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(obs_dim)
        self.decoder = decoder
        extra = decoder.out_dim if decoder is not None else 0
        self.net = mlp([obs_dim + act_dim + latent_dim + extra, *hidden, 1])

    def forward(self, obs: Tensor, action: Tensor, z: Tensor) -> Tensor:
        """obs (N, obs) raw, action (N, A), z (N, L) -> Q (N, 1)."""
        return self.net(_inputs(self.decoder, self.normaliser, obs, action, z))


class ValueFunction(nn.Module):
    """V(s, z) -> (N, 1): the state value of offline IQL (`offline.critic: iql`)."""

    def __init__(
        self, obs_dim: int, latent_dim: int, hidden: list[int], decoder: TaskDecoder | None = None
    ) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(obs_dim)
        self.decoder = decoder
        extra = decoder.out_dim if decoder is not None else 0
        self.net = mlp([obs_dim + latent_dim + extra, *hidden, 1])

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        """obs (N, obs) raw, z (N, L) -> V (N, 1)."""
        return self.net(_inputs(self.decoder, self.normaliser, obs, z))


def tanh_gaussian_log_prob(mean: Tensor, log_std: Tensor, pre_tanh: Tensor) -> Tensor:
    """log pi(tanh(u)) (N, 1) of a tanh-Gaussian with pre-tanh `mean`, `log_std` at the
    pre-tanh point u = `pre_tanh` (another policy's sample, e.g. Distral's KL and
    distillation terms): log N(u; mean, std) - sum log(1 - tanh^2 u), the correction in
    `TanhGaussianPolicy.sample`'s stable form."""
    z = (pre_tanh - mean) * torch.exp(-log_std)
    log_n = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
    correction = (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1, keepdim=True)
    return log_n - correction


def deterministic_action(policy: TanhGaussianPolicy, obs: ArrayLike, z: Tensor) -> ArrayLike:
    """`policy`'s deterministic action tanh(mean) (noise 0) for one raw observation told
    task input `z` (1, L), as a numpy array (act_dim,)."""
    with torch.no_grad():
        action, _ = policy.sample(torch.as_tensor(obs)[None], z, torch.zeros(1, policy.act_dim))
    return action[0].numpy()
