"""RL²'s networks and losses: the exported step equals the GRU over a sequence, which
networks each PPO term trains, one return across a trial's episodes, and truncated-BPTT
chunks that start from the rollout's hidden state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.conftest import grads_reach, tiny_config
from training.algos.rl2.losses import (
    Trial,
    chunked,
    rl2_evaluate,
    rl2_losses,
    trial_batch,
    with_targets,
)
from training.algos.rl2.networks import RL2Nets, make_nets
from training.config import PPOConfig

OBS, ACT = 3, 2


def _nets(seed: int = 0) -> RL2Nets:
    torch.manual_seed(seed)
    nets = make_nets(OBS, ACT, tiny_config(algo="rl2", rl2={"gru_hidden": 6}, ppo={"hidden": [8]}))
    nets.set_obs_stats(torch.tensor([0.1, -0.2, 0.3]), torch.tensor([0.5, 2.0, 1.0]))
    return nets


def _trial(rng: np.random.Generator, episodes: list[int]) -> Trial:
    T = sum(episodes)
    done = np.zeros((T, 1), np.float32)
    done[np.cumsum(episodes)[:-1]] = 1.0  # the first step of every later episode
    rewards = rng.normal(size=T).astype(np.float32)
    u = rng.normal(size=(T, ACT)).astype(np.float32)
    last_action = np.concatenate([np.zeros((1, ACT)), np.tanh(u[:-1])]).astype(np.float32)
    reward = np.concatenate([[0.0], rewards[:-1]]).astype(np.float32)[:, None]
    return Trial(
        obs=rng.normal(size=(T, OBS)).astype(np.float32),
        last_action=last_action,
        reward=reward,
        done=done,
        u=u,
        rewards=rewards,
        episode_returns=[0.0] * len(episodes),
        episode_successes=[False] * len(episodes),
    )


def _batch(cfg: PPOConfig | None = None) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    trials = [_trial(rng, [4, 3]), _trial(rng, [5, 5]), _trial(rng, [2, 2])]
    return with_targets(_nets(), trial_batch(trials), cfg or PPOConfig())


def assert_chunks_match_the_whole(
    nets: RL2Nets, whole: dict[str, torch.Tensor], length: int
) -> dict[str, torch.Tensor]:
    """`chunked(whole, length)` run through `nets` gives the whole batch's log-probabilities
    (its behaviour policy's too) and values on every real step; returns the chunks."""
    parts = chunked(whole, length)
    assert parts["mask"].shape[1] == length and parts["mask"].sum() == whole["mask"].sum()
    with torch.no_grad():
        logp_w, _, v_w = rl2_evaluate(nets, whole)
        logp_c, _, v_c = rl2_evaluate(nets, parts)
    real_w, real_c = whole["mask"] > 0, parts["mask"] > 0
    torch.testing.assert_close(logp_c[real_c], logp_w[real_w], atol=1e-5, rtol=0)
    torch.testing.assert_close(v_c[real_c], v_w[real_w], atol=1e-5, rtol=0)
    torch.testing.assert_close(logp_w[real_w], whole["logp"][real_w], atol=1e-5, rtol=0)
    return parts


def test_the_step_is_the_gru_over_the_sequence() -> None:
    nets = _nets()
    b = trial_batch([_trial(np.random.default_rng(1), [5, 4])])
    h0 = torch.randn(1, 6)
    hs, mean, _ = nets.policy.sequence(h0, b["obs"], b["last_action"], b["reward"], b["done"])
    h = h0
    for t in range(9):
        h, m, _ = nets.policy.step(
            h, b["obs"][:, t], b["last_action"][:, t], b["reward"][:, t], b["done"][:, t]
        )
        torch.testing.assert_close(h, hs[:, t], atol=1e-6, rtol=0)
        torch.testing.assert_close(m, mean[:, t], atol=1e-6, rtol=0)


def test_padding_is_masked_and_trials_start_from_zero() -> None:
    b = _batch()
    assert b["mask"].sum(1).tolist() == [7.0, 10.0, 4.0]
    assert torch.all(b["h0_pi"] == 0) and torch.all(b["h0_v"] == 0)
    assert torch.all(b["advantages"][b["mask"] == 0] == 0)


def test_one_return_runs_across_the_episodes_of_a_trial() -> None:
    """gamma = lambda = 1: the value target of a trial's first step is the sum of every
    reward of the trial, the second episode's included (no cut at the boundary)."""
    b = _batch(PPOConfig(gamma=1.0, gae_lambda=1.0))
    rewards = b["rewards"] * b["mask"]
    torch.testing.assert_close(b["returns"][:, 0], rewards.sum(1))
    torch.testing.assert_close(b["returns"][1, 4], rewards[1, 4:].sum())  # episode 0's last


def test_each_term_trains_only_its_network() -> None:
    nets = _nets()
    terms = rl2_losses(nets, _batch(), PPOConfig())
    policy = list(nets.policy.parameters())
    value = list(nets.value.parameters())

    # the surrogate: every policy parameter (GRU, head, log-std), no value parameter
    assert all(grads_reach(terms.policy, policy)) and not any(grads_reach(terms.policy, value))
    # the value loss: every value parameter, no policy parameter
    assert all(grads_reach(terms.value, value)) and not any(grads_reach(terms.value, policy))
    # the entropy of a state-independent Gaussian: the log-std alone
    ent = grads_reach(terms.entropy, [*policy, *value])
    assert ent == [p is nets.policy.log_std for p in [*policy, *value]]


@pytest.mark.parametrize("length", [1, 3, 4, 20])
def test_bptt_chunks_start_where_the_rollout_was(length: int) -> None:
    """Each chunk starts from the hidden state of the whole trial's forward pass, so the
    chunked forward gives the whole one's log-probabilities and values on every real step."""
    whole = _batch()
    parts = assert_chunks_match_the_whole(_nets(), whole, length)
    real_w, real_c = whole["mask"] > 0, parts["mask"] > 0
    for key in ("advantages", "returns", "u", "obs"):
        torch.testing.assert_close(parts[key][real_c], whole[key][real_w])
