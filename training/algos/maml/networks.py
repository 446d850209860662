"""MAML's policy: a Gaussian MLP over normalised observations, used functionally.

The parameters live in an `nn.Module` (the meta-parameters theta, what the optimizer and
the checkpoint hold); adapted parameters theta' are plain dicts of tensors passed through
`torch.func.functional_call`, so one module evaluates theta, theta' and any point between.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call

from training.common.networks import ObsNormaliser, mlp
from training.config import TrainConfig

Params = dict[str, Tensor]
"""Policy parameters by name (`named_parameters()` of `GaussianMLPPolicy`)."""

LOG_2PI = math.log(2.0 * math.pi)


class GaussianMLPPolicy(nn.Module):
    """pi(a | s) = N(mean(norm(s)), diag(exp(log_std))^2); `log_std` state-independent."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], init_std: float) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.normaliser = ObsNormaliser(obs_dim)
        self.mean_net = mlp([obs_dim, *hidden, act_dim])
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Raw obs (B, obs) -> (mean (B, act), log_std (act,))."""
        return self.mean_net(self.normaliser(obs)), self.log_std

    def params(self) -> Params:
        """theta as a dict (the module's own tensors: gradients reach them)."""
        return dict(self.named_parameters())

    def detached_params(self) -> Params:
        """A copy of theta outside any graph."""
        return {k: v.detach().clone() for k, v in self.named_parameters()}

    def load_params(self, params: Mapping[str, Tensor]) -> None:
        """Copy `params` into the module (e.g. adapted weights, for export)."""
        with torch.no_grad():
            for k, p in self.named_parameters():
                p.copy_(params[k])


def forward_with(
    policy: GaussianMLPPolicy, params: Mapping[str, Tensor], obs: Tensor
) -> tuple[Tensor, Tensor]:
    """(mean, log_std) of the policy with `params` in place of its parameters."""
    out: tuple[Tensor, Tensor] = functional_call(policy, dict(params), (obs,))
    return out


def log_prob(
    policy: GaussianMLPPolicy, params: Mapping[str, Tensor], obs: Tensor, actions: Tensor
) -> Tensor:
    """log pi_params(a | s) per row (N,) for raw obs (N, obs) and actions (N, act)."""
    mean, log_std = forward_with(policy, params, obs)
    z = (actions - mean) * torch.exp(-log_std)
    return -0.5 * (z * z).sum(-1) - log_std.sum() - 0.5 * policy.act_dim * LOG_2PI


class MAMLNets(nn.Module):
    """What a MAML run trains and saves: the meta-policy."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], init_std: float) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.policy = GaussianMLPPolicy(obs_dim, act_dim, hidden, init_std)


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> MAMLNets:
    """The networks for `cfg` (`maml.hidden`, `maml.init_std`); `obs_index` is unused."""
    return MAMLNets(obs_dim, act_dim, cfg.maml.hidden, cfg.maml.init_std)
