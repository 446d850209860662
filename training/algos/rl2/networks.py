"""RL²'s networks: a recurrent Gaussian policy (GRU over (normalised s, a_prev, r_prev,
d_prev), an MLP head to the pre-tanh mean, a state-independent log-std) and a recurrent
value function of the same inputs with its own GRU (the value loss trains only it, the
surrogate only the policy). `sequence` runs nn.GRU over padded trials (training); `step`
computes one GRU step from the same weights by its equations (what step.onnx holds;
tests check the two agree)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from training.common.networks import ObsNormaliser, mlp
from training.config import TrainConfig


class RecurrentCore(nn.Module):
    """GRU over x = [normalised obs, last_action, reward, done], an MLP on its hidden state."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, head: list[int], out: int):
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden_dim = obs_dim, act_dim, hidden_dim
        self.normaliser = ObsNormaliser(obs_dim)
        self.gru = nn.GRU(obs_dim + act_dim + 2, hidden_dim, batch_first=True)
        self.head = mlp([hidden_dim, *head, out])

    def inputs(self, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor) -> Tensor:
        """The GRU's input (..., obs + act + 2)."""
        return torch.cat([self.normaliser(obs), last_action, reward, done], dim=-1)

    def last_action_columns(self) -> slice:
        """Where a_{t-1} sits in `inputs` (the GRU's input columns)."""
        return slice(self.obs_dim, self.obs_dim + self.act_dim)

    def hiddens(
        self, h0: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> Tensor:
        """h0 (S, H), inputs (S, T, .) -> the hidden state after each step (S, T, H)."""
        out, _ = self.gru(self.inputs(obs, last_action, reward, done), h0[None].contiguous())
        return out

    def cell(self, x: Tensor, h: Tensor) -> Tensor:
        """One GRU step by its equations (PyTorch's gate order r, z, n): (B, in), (B, H) ->
        (B, H)."""
        w_ih, w_hh, b_ih, b_hh = self.gru.all_weights[0]  # layer 0: the only one
        gi = x @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1.0 - z) * n + z * h


class RecurrentPolicy(RecurrentCore):
    """pi(u | history): u ~ N(mean(h_t), exp(log_std)^2), a = tanh(u)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden_dim: int, head: list[int], init_log_std: float
    ) -> None:
        super().__init__(obs_dim, act_dim, hidden_dim, head, act_dim)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def sequence(
        self, h0: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """-> hidden after each step (S, T, H), mean (S, T, A), log_std (S, T, A)."""
        hs = self.hiddens(h0, obs, last_action, reward, done)
        mean = self.head(hs)
        return hs, mean, self.log_std.expand_as(mean)

    def step(
        self, hidden: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One step, all (B, .) -> next_hidden (B, H), mean (B, A), log_std (B, A): the
        core of the exported step graph (training/common/onnx_export.py)."""
        h = self.cell(self.inputs(obs, last_action, reward, done), hidden)
        mean = self.head(h)
        return h, mean, self.log_std.expand_as(mean)


class RecurrentValue(RecurrentCore):
    """V(history) -> (S, T): the critic, with its own GRU."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, head: list[int]) -> None:
        super().__init__(obs_dim, act_dim, hidden_dim, head, 1)

    def sequence(
        self, h0: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor]:
        """-> hidden after each step (S, T, H), value (S, T)."""
        hs = self.hiddens(h0, obs, last_action, reward, done)
        return hs, self.head(hs)[..., 0]


class RL2Nets(nn.Module):
    """The policy (exported) and the value function (training only)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        head: list[int],
        init_log_std: float = 0.0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden_dim = obs_dim, act_dim, hidden_dim
        self.policy = RecurrentPolicy(obs_dim, act_dim, hidden_dim, head, init_log_std)
        self.value = RecurrentValue(obs_dim, act_dim, hidden_dim, head)

    def set_obs_stats(self, mean: Tensor, std: Tensor) -> None:
        """Give both networks the same frozen observation normalisation."""
        for net in (self.policy, self.value):
            net.normaliser.set_stats(mean, std)


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> RL2Nets:
    """The networks for `cfg` (`rl2.gru_hidden`, `ppo.hidden`, `ppo.init_log_std`);
    `obs_index` is unused."""
    return RL2Nets(obs_dim, act_dim, cfg.rl2.gru_hidden, cfg.ppo.hidden, cfg.ppo.init_log_std)
