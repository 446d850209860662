"""VariBAD's networks, composed from training/common/networks.py: the GRU trajectory encoder
q(m | tau_:t), the reward decoder p(r | s, a, s', m), the optional transition decoder
p(s' | s, a, m), the policy pi(a | s, mean, var) and its value V(s, mean, var).

The encoder's input at step t is the runtime's `recurrent` contract (docs/PROTOCOL.md
"recurrent"): (s_t, a_{t-1}, r_{t-1}, d_{t-1}), with a, r, d = 0 at a task's first step and
d_{t-1} = 1 at the first step of an episode that follows another one of the same task. The
belief the policy acts on at step t, b_t = (mean_t, log var_t), is read from the GRU state
after that input; so b_0 has seen s_0 only (the paper's b_0 is the prior head of the empty
GRU: here the first input is s_0 with zero action, reward and done, which the exported step
graph also sees, so training and the robot agree). The GRU state is the artifact's hidden
state: zeros at a task's start, carried across the episodes of a trial.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from training.common.networks import ObsNormaliser, mlp
from training.config import TrainConfig, VariBADConfig


def gru_cell(x: Tensor, h: Tensor, gru: nn.GRU) -> Tensor:
    """One step of `gru`'s single layer written out (PyTorch's gate order r, z, n), so the
    exported step graph is plain MatMul/Sigmoid/Tanh: x (B, in), h (B, H) -> h' (B, H);
    equal to `gru(x[:, None], h[None])` (tests/training/algos/varibad/test_networks.py)."""
    w_ih, w_hh, b_ih, b_hh = gru.all_weights[0]  # one layer: its four tensors
    gi = F.linear(x, w_ih, b_ih)
    gh = F.linear(h, w_hh, b_hh)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


class TrajectoryEncoder(nn.Module):
    """GRU over (s_t, a_{t-1}, r_{t-1}, d_{t-1}) -> belief (mean_t, log var_t) at every step."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        latent_dim: int,
        embed: list[int],
        hidden: int,
        reward_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.reward_scale = float(reward_scale)  # a constant of the graph, not a parameter
        self.obs_dim, self.act_dim, self.latent_dim, self.hidden_dim = (
            obs_dim,
            act_dim,
            latent_dim,
            hidden,
        )
        self.normaliser = ObsNormaliser(obs_dim)
        self.embed = mlp([obs_dim + act_dim + 2, *embed])
        self.has_embed = bool(embed)
        width = embed[-1] if embed else obs_dim + act_dim + 2
        self.gru = nn.GRU(width, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2 * latent_dim)

    def features(
        self, obs: Tensor, prev_action: Tensor, prev_reward: Tensor, prev_done: Tensor
    ) -> Tensor:
        """The GRU's input (..., width) from raw obs (..., obs), a (..., act), r, d (..., 1);
        the reward enters times `reward_scale` (`varibad.vae_reward_scale`), inside the graph,
        so the exported step still takes the reward the env and the runtime give."""
        r = prev_reward * self.reward_scale
        x = torch.cat([self.normaliser(obs), prev_action, r, prev_done], dim=-1)
        return F.relu(self.embed(x)) if self.has_embed else x

    def belief(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """GRU state(s) (..., H) -> mean (..., L), log var (..., L)."""
        mean, logvar = self.head(h).chunk(2, dim=-1)
        return mean, logvar

    def forward(
        self,
        obs: Tensor,
        prev_action: Tensor,
        prev_reward: Tensor,
        prev_done: Tensor,
        hidden: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Whole trials (B, T, .) from `hidden` (B, H; None: zeros) -> the GRU states
        h_0..h_{T-1} (B, T, H), mean and log var (B, T, L)."""
        x = self.features(obs, prev_action, prev_reward, prev_done)
        h0 = None if hidden is None else hidden[None].contiguous()
        states, _ = self.gru(x, h0)
        mean, logvar = self.belief(states)
        return states, mean, logvar

    def step(
        self,
        hidden: Tensor,
        obs: Tensor,
        prev_action: Tensor,
        prev_reward: Tensor,
        prev_done: Tensor,
    ) -> Tensor:
        """One step (B, .) -> the next GRU state (B, H); the same numbers as `forward`."""
        return gru_cell(self.features(obs, prev_action, prev_reward, prev_done), hidden, self.gru)


class RewardDecoder(nn.Module):
    """p(r | s, a, s', m) = N(r_hat, 1): r_hat (..., 1) from raw s, a, s' and a latent m."""

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(obs_dim)
        self.net = mlp([latent_dim + 2 * obs_dim + act_dim, *hidden, 1])

    def forward(self, m: Tensor, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """(..., L), (..., obs), (..., act), (..., obs) -> (..., 1)."""
        norm = self.normaliser
        return self.net(torch.cat([m, norm(obs), action, norm(next_obs)], dim=-1))


class TransitionDecoder(nn.Module):
    """p(s' | s, a, m) = N(s_hat, I) in normalised observation units."""

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(obs_dim)
        self.net = mlp([latent_dim + obs_dim + act_dim, *hidden, obs_dim])

    def forward(self, m: Tensor, obs: Tensor, action: Tensor) -> Tensor:
        """(..., L), raw (..., obs), (..., act) -> the predicted normalised s' (..., obs)."""
        return self.net(torch.cat([m, self.normaliser(obs), action], dim=-1))

    def target(self, next_obs: Tensor) -> Tensor:
        """What it predicts: the normalised s'."""
        return self.normaliser(next_obs)


def belief_input(mean: Tensor, logvar: Tensor) -> Tensor:
    """The policy's and value's task input: [belief mean, belief variance] (..., 2 L)."""
    return torch.cat([mean, logvar.exp()], dim=-1)


class BeliefPolicy(nn.Module):
    """pi(u | s, b) = N(mean(s, b), exp(log_std)^2), the action a = tanh(u) (PPO's Gaussian
    over the pre-squash u, training/common/ppo.py; log_std a state-independent parameter);
    b = [belief mean, belief variance]."""

    def __init__(
        self, obs_dim: int, belief_dim: int, act_dim: int, hidden: list[int], init_log_std: float
    ) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(obs_dim)
        self.net = mlp([obs_dim + belief_dim, *hidden, act_dim])
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def forward(self, obs: Tensor, belief: Tensor) -> tuple[Tensor, Tensor]:
        """raw obs (..., obs), belief (..., 2 L) -> mean (..., act), log_std (..., act)."""
        mean = self.net(torch.cat([self.normaliser(obs), belief], dim=-1))
        return mean, self.log_std.expand_as(mean)


class BeliefValue(nn.Module):
    """V(s, b) over the BAMDP's (state, belief): (..., 1)."""

    def __init__(self, obs_dim: int, belief_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(obs_dim)
        self.net = mlp([obs_dim + belief_dim, *hidden, 1])

    def forward(self, obs: Tensor, belief: Tensor) -> Tensor:
        """raw obs (..., obs), belief (..., 2 L) -> (..., 1)."""
        return self.net(torch.cat([self.normaliser(obs), belief], dim=-1))


class VariBADNets(nn.Module):
    """Encoder, reward decoder, optional transition decoder, policy and value function.

    `step` is the recurrent core the `recurrent` artifact serves
    (training/common/onnx_export.py `RecurrentStepGraph`): the encoder's GRU step, its
    belief, the policy's Gaussian on (s, belief)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: VariBADConfig,
        policy_hidden: list[int],
        init_log_std: float = 0.0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        L = cfg.latent_dim
        self.latent_dim = L
        self.encoder = TrajectoryEncoder(
            obs_dim, act_dim, L, cfg.embed, cfg.gru_hidden, cfg.vae_reward_scale
        )
        self.reward_decoder = RewardDecoder(obs_dim, act_dim, L, cfg.decoder_hidden)
        self.state_decoder = (
            TransitionDecoder(obs_dim, act_dim, L, cfg.decoder_hidden) if cfg.decode_state else None
        )
        self.policy = BeliefPolicy(obs_dim, 2 * L, act_dim, policy_hidden, init_log_std)
        self.vf = BeliefValue(obs_dim, 2 * L, policy_hidden)

    @property
    def hidden_dim(self) -> int:
        """The GRU state size (the artifact's hidden_dim)."""
        return self.encoder.hidden_dim

    def vae_parameters(self) -> list[nn.Parameter]:
        """What the ELBO trains: encoder and decoder(s)."""
        mods: list[nn.Module] = [self.encoder, self.reward_decoder]
        if self.state_decoder is not None:
            mods.append(self.state_decoder)
        return [p for m in mods for p in m.parameters()]

    def ppo_parameters(self, through_encoder: bool = False) -> list[nn.Parameter]:
        """What PPO's loss trains: the policy and the value function, and the encoder only
        `through_encoder` (`varibad.rl_through_encoder`; off by default, as in the paper)."""
        enc = list(self.encoder.parameters()) if through_encoder else []
        return [*self.policy.parameters(), *self.vf.parameters(), *enc]

    def normalisers(self) -> list[ObsNormaliser]:
        """Every network's observation normaliser."""
        mods: list[nn.Module] = [self.encoder, self.reward_decoder, self.policy, self.vf]
        if self.state_decoder is not None:
            mods.append(self.state_decoder)
        return [m.normaliser for m in mods]  # type: ignore[misc]

    def set_obs_stats(self, mean: Tensor, std: Tensor) -> None:
        """Give every network the same frozen observation normalisation."""
        for norm in self.normalisers():
            norm.set_stats(mean, std)

    def step(
        self, hidden: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One step of a trial, all (B, width): -> (next_hidden (B, H), the policy's mean
        and log_std (B, act)) on (s, the belief after this step's input)."""
        h = self.encoder.step(hidden, obs, last_action, reward, done)
        mean, log_std = self.policy(obs, belief_input(*self.encoder.belief(h)))
        return h, mean, log_std


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> VariBADNets:
    """The networks for `cfg.varibad`, the policy's and value's widths and initial log-std
    from `cfg.ppo`; `obs_index` is unused."""
    return VariBADNets(obs_dim, act_dim, cfg.varibad, cfg.ppo.hidden, cfg.ppo.init_log_std)
