"""training/common/networks.py: the belief features (`TaskDecoder`) of offline.task_features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.insertion import OBS_INDEX
from training.algos.pearl.networks import make_nets
from training.common.networks import TaskDecoder
from training.config import TrainConfig

FEATURES = {
    "dx": {"obs": "x_mm", "scale": 1000.0},
    "dy": {"obs": "y_mm", "scale": 1000.0},
    "dyaw": {"obs": "yaw_deg", "scale": math.degrees(1.0)},
}


def belief_config(**over: object) -> TrainConfig:
    base: dict[str, object] = {
        "sac": {"hidden": [16, 16]},
        "encoder": {"hidden": [16], "latent_dim": 3},
        "offline": {"task_targets": ["dx", "dy", "dyaw"], "task_features": FEATURES},
    }
    base.update(over)
    return TrainConfig.model_validate(base)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.permutations([0, 1, 2]),
    fine=st.lists(st.floats(0.05, 5.0), min_size=3, max_size=3),
)
def test_features_are_the_decoded_task_relative_to_the_observation(
    seed: int, rows: list[int], fine: list[float]
) -> None:
    """e = scale * (head(z) * t_std + t_mean) - obs[idx]; features e / std(obs), tanh(e / fine)."""
    rng = np.random.default_rng(seed)
    L, n_obs = 4, 6
    head = torch.nn.Linear(L, 3)
    torch.nn.init.normal_(head.weight, generator=torch.Generator().manual_seed(seed))
    t_mean, t_std = rng.normal(size=3), rng.uniform(0.1, 2.0, 3)
    idx, scale = [4, 0, 2], [1000.0, 2.0, 0.5]
    dec = TaskDecoder(L, idx, scale, fine)
    dec.set_head(head, t_mean, t_std, rows)
    z = rng.normal(size=(5, L)).astype(np.float32)
    obs = rng.normal(size=(5, n_obs)).astype(np.float32) * 10
    obs_std = rng.uniform(0.5, 3.0, n_obs).astype(np.float32)
    with torch.no_grad():
        got = dec(torch.as_tensor(obs), torch.as_tensor(z), torch.as_tensor(obs_std)).numpy()
        out = head(torch.as_tensor(z)).numpy().astype(np.float64)
    est = (out[:, rows] * t_std[rows] + t_mean[rows]) * np.asarray(scale)
    err = est - obs[:, idx]
    want = np.concatenate([err / obs_std[idx], np.tanh(err / np.asarray(fine))], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert got.shape == (5, dec.out_dim) == (5, 6)


def test_one_decoder_serves_every_network_and_no_loss_moves_it() -> None:
    torch.manual_seed(0)
    nets = make_nets(18, 4, belief_config(), OBS_INDEX)
    dec = nets.decoder
    assert dec is not None
    for net in (nets.policy, nets.qf1, nets.qf2, nets.target_qf1, nets.target_qf2):
        assert net.decoder is dec
    # buffers, not parameters: no optimizer holds them, no gradient reaches them
    assert not any(p is b for p in nets.parameters() for b in dec.buffers())
    head = torch.nn.Linear(3, 3)
    dec.set_head(head, np.zeros(3), np.ones(3), [0, 1, 2])
    obs, z = torch.randn(7, 18), torch.randn(7, 3)
    a, logp = nets.policy.sample(obs, z)
    (nets.qf1(obs, a, z).sum() + logp.sum()).backward()
    assert all(b.grad is None for b in dec.buffers())
    torch.testing.assert_close(dec.weight, head.weight.detach())
    # the decoder moves the policy: the same (obs, z) with another head gives another action
    before = nets.policy(obs, z)[0].detach()
    dec.set_head(torch.nn.Linear(3, 3), np.zeros(3), np.ones(3), [0, 1, 2])
    assert not torch.allclose(before, nets.policy(obs, z)[0])
    # a checkpoint round trip restores it in every network at once; the fine widths come
    # from the config, not the checkpoint (checkpoints from before them load)
    assert not any(k.endswith("fine") for k in nets.state_dict())
    again = make_nets(18, 4, belief_config(), OBS_INDEX)
    again.load_state_dict(nets.state_dict())
    assert again.policy.decoder is again.decoder
    torch.testing.assert_close(again.decoder.weight, dec.weight)
    torch.testing.assert_close(again.policy(obs, z)[0], nets.policy(obs, z)[0])


def test_without_features_the_networks_are_unchanged() -> None:
    torch.manual_seed(0)
    plain = make_nets(18, 4, belief_config(offline={}), OBS_INDEX)
    assert plain.decoder is None and plain.policy.trunk[0].in_features == 18 + 3
    torch.manual_seed(0)
    feats = make_nets(18, 4, belief_config(), OBS_INDEX)
    assert feats.policy.trunk[0].in_features == 18 + 3 + 6
    narrow = {**FEATURES, "dy": {"obs": "y_mm", "scale": 1000.0, "fine": 0.25}}
    cfg = belief_config(offline={"task_targets": ["dx", "dy", "dyaw"], "task_features": narrow})
    dec = make_nets(18, 4, cfg, OBS_INDEX).decoder
    assert dec is not None and dec.fine.tolist() == [1.0, 0.25, 1.0]


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"offline": {"task_targets": ["dx"], "task_features": FEATURES}}, r"\['dy', 'dyaw'\]"),
        (
            {"offline": {"task_targets": ["dx"], "task_features": {"dx": {"obs": "x_cm"}}}},
            r"unknown observation names \{'dx': 'x_cm'\}",
        ),
        ({"env": "point"}, "only env 'insertion'"),
    ],
)
def test_config_errors_name_the_problem(over: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        belief_config(**over)


def test_tanh_gaussian_log_prob_is_the_policys_own() -> None:
    """At the policy's own sample, tanh_gaussian_log_prob gives sample()'s log-probability."""
    from training.common.networks import TanhGaussianPolicy, tanh_gaussian_log_prob

    torch.manual_seed(0)
    policy = TanhGaussianPolicy(3, 2, 2, [8])
    obs, z, eps = torch.randn(7, 3), torch.randn(7, 2), torch.randn(7, 2)
    _, log_prob = policy.sample(obs, z, eps)
    mean, log_std = policy(obs, z)
    u = mean + log_std.exp() * eps
    torch.testing.assert_close(tanh_gaussian_log_prob(mean, log_std, u), log_prob)
