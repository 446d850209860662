"""VariBAD's ELBO: each term on a toy batch against values computed by hand, padding
ignored, the subsampled estimate unbiased, KL against its closed form (hypothesis), and
which networks the VAE step trains."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training.conftest import assert_grads_of, record_step_grads, tiny_config
from training.algos.varibad.losses import (
    TrialBatch,
    elbo_terms,
    gaussian_kl,
    kl_terms,
    vae_update,
)
from training.algos.varibad.networks import make_nets
from training.config import VariBADConfig

LOG_QUARTER, LOG_4 = math.log(0.25), math.log(4.0)


def _toy_batch(repeat: int = 1) -> TrialBatch:
    """Two trials, obs and act 1-D, padded to T = 2; the second has one real step (its
    second step is garbage that must not count). `repeat`: that pair `repeat` times."""
    t = torch.tensor
    one = TrialBatch(
        obs=t([[[0.0], [0.1]], [[0.3], [77.0]]]),
        prev_action=torch.zeros(2, 2, 1),
        prev_reward=torch.zeros(2, 2, 1),
        prev_done=torch.zeros(2, 2, 1),
        action=t([[[0.5], [-0.5]], [[0.2], [9.0]]]),
        reward=t([[[1.0], [0.0]], [[0.5], [1000.0]]]),
        next_obs=t([[[0.2], [0.4]], [[1.0], [123.0]]]),
        lengths=t([2, 1]),
    )
    return TrialBatch(*(x.repeat(repeat, *([1] * (x.dim() - 1))) for x in one))


def _toy_nets(decode_state: bool, repeat: int = 1) -> Any:
    """Stand-ins with known outputs: beliefs fixed, r_hat = m + s', s_hat = m (identity
    normalisation)."""
    mean = torch.tensor([[[0.5], [1.0]], [[-1.0], [99.0]]])
    logvar = torch.tensor([[[0.0], [LOG_QUARTER]], [[LOG_4], [3.0]]])
    mean, logvar = mean.repeat(repeat, 1, 1), logvar.repeat(repeat, 1, 1)

    class StateDecoder:
        def __call__(self, m: torch.Tensor, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
            return m

        def target(self, nxt: torch.Tensor) -> torch.Tensor:
            return nxt

    return SimpleNamespace(
        encoder=lambda *inputs: (None, mean, logvar),
        reward_decoder=lambda m, obs, act, nxt: m + nxt,
        state_decoder=StateDecoder() if decode_state else None,
    )


NOISE = torch.tensor([[[1.0], [-2.0]], [[0.0], [7.0]]])
# By hand. Trial 0: q_0 = N(0.5, 1), q_1 = N(1, 0.25); eps (1, -2): m_0 = 1.5, m_1 = 0.
#   KL(q_0 || N(0, 1)) = 0.5 * 0.5^2 = 0.125
#   KL(q_1 || q_0) = 0.5 * (0 - log 0.25 + (0.25 + 0.5^2) / 1 - 1) = 0.5 * (log 4 - 0.5)
#   r_hat = m + s', s' = (0.2, 0.4), r = (1, 0):
#     m_0: (1.7 - 1)^2 + (1.9 - 0)^2 = 0.49 + 3.61 = 4.10;  m_1: 0.64 + 0.16 = 0.80
#   s_hat = m: m_0: 1.3^2 + 1.1^2 = 2.90;  m_1: 0.2^2 + 0.4^2 = 0.20
# Trial 1 (one real step): q_0 = N(-1, 4), eps 0: m_0 = -1
#   KL = 0.5 * (0 - log 4 + 4 + 1 - 1) = 0.5 * (4 - log 4)
#   r_hat = -1 + 1 = 0 against 0.5: 0.25;  s_hat = -1 against 1: 4
KL_0 = (0.125 + 0.5 * (LOG_4 - 0.5)) / 2
KL_1 = 0.5 * (4.0 - LOG_4)
REWARD = [(4.10 + 0.80) / 2, 0.25]
STATE = [(2.90 + 0.20) / 2, 4.0]


def test_elbo_terms_on_a_toy_batch_equal_the_hand_computed_values() -> None:
    cfg = VariBADConfig(kl_weight=0.5, reward_coef=1.0, state_coef=2.0, decode_state=True)
    terms = elbo_terms(_toy_batch(), _toy_nets(True), cfg, noise=NOISE)
    torch.testing.assert_close(terms.kl, torch.tensor([KL_0, KL_1]))
    torch.testing.assert_close(terms.reward, torch.tensor(REWARD))
    torch.testing.assert_close(terms.state, torch.tensor(STATE))
    per_trial = [REWARD[i] + 2.0 * STATE[i] + 0.5 * [KL_0, KL_1][i] for i in range(2)]
    torch.testing.assert_close(terms.loss, torch.tensor(sum(per_trial) / 2))


def test_the_reward_decoder_reconstructs_the_reward_at_the_vae_s_scale() -> None:
    # vae_reward_scale 0.5: targets (0.5, 0) and 0.25. Trial 0: m_0 = 1.5, r_hat (1.7, 1.9):
    # 1.2^2 + 1.9^2 = 5.05; m_1 = 0, r_hat (0.2, 0.4): 0.3^2 + 0.4^2 = 0.25. Trial 1: r_hat 0
    # against 0.25: 0.0625. The KL does not depend on it.
    cfg = VariBADConfig(kl_weight=0.5, vae_reward_scale=0.5)
    terms = elbo_terms(_toy_batch(), _toy_nets(False), cfg, noise=NOISE)
    torch.testing.assert_close(terms.reward, torch.tensor([(5.05 + 0.25) / 2, 0.0625]))
    torch.testing.assert_close(terms.kl, torch.tensor([KL_0, KL_1]))


def test_without_a_transition_decoder_the_state_term_is_zero() -> None:
    cfg = VariBADConfig(kl_weight=1.0)
    terms = elbo_terms(_toy_batch(), _toy_nets(False), cfg, noise=NOISE)
    assert torch.equal(terms.state, torch.zeros(2))
    want = (REWARD[0] + KL_0 + REWARD[1] + KL_1) / 2
    torch.testing.assert_close(terms.loss, torch.tensor(want))


def test_padding_never_counts() -> None:
    """Changing every padded step (inputs, rewards, beliefs) leaves the terms unchanged."""
    cfg = VariBADConfig(decode_state=True)
    a = elbo_terms(_toy_batch(), _toy_nets(True), cfg, noise=NOISE)
    b_batch = _toy_batch()
    b_batch.reward[1, 1] = -5.0
    b_batch.next_obs[1, 1] = 3.0
    b_batch.action[1, 1] = -1.0
    noise = NOISE.clone()
    noise[1, 1] = -3.0
    b = elbo_terms(b_batch, _toy_nets(True), cfg, noise=noise)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)


def test_subsampled_beliefs_and_decodes_estimate_the_full_elbo() -> None:
    """With replacement, weighted by length / count: the mean of many draws is the full
    reconstruction term (toy nets: the beliefs are fixed, the noise drawn)."""
    full_cfg = VariBADConfig()
    sub_cfg = VariBADConfig(subsample_beliefs=1, subsample_decodes=1)
    g = torch.Generator().manual_seed(0)
    n = 20_000  # draws: the toy pair repeated, one ELBO call each
    batch, nets = _toy_batch(n), _toy_nets(False, n)
    full = elbo_terms(batch, nets, full_cfg, generator=g).reward.reshape(n, 2).mean(0)
    sub = elbo_terms(batch, nets, sub_cfg, generator=g).reward.reshape(n, 2).mean(0)
    torch.testing.assert_close(sub, full, rtol=0.05, atol=0.0)
    # and a draw is not the full term itself (it is an estimate)
    one = elbo_terms(_toy_batch(), _toy_nets(False), sub_cfg, noise=NOISE[:, :1]).reward
    assert not torch.allclose(one, torch.tensor(REWARD))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=3, max_size=3),
    st.lists(st.floats(-2, 2), min_size=3, max_size=3),
)
def test_kl_terms_chain_each_belief_to_the_one_before(
    means: list[float], logvars: list[float]
) -> None:
    """KL of 1-D Gaussians in closed form; the first belief against N(0, 1)."""
    mean = torch.tensor(means, dtype=torch.float64)[None, :, None]
    logvar = torch.tensor(logvars, dtype=torch.float64)[None, :, None]
    got = kl_terms(mean, logvar)[0]
    pm, pv = [0.0, *means[:2]], [1.0, *(math.exp(v) for v in logvars[:2])]
    for t in range(3):
        q_var = math.exp(logvars[t])
        want = 0.5 * (math.log(pv[t] / q_var) + (q_var + (means[t] - pm[t]) ** 2) / pv[t] - 1)
        assert got[t].item() == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert (got >= -1e-12).all()
    same = gaussian_kl(mean, logvar, mean, logvar)
    assert torch.allclose(same, torch.zeros_like(same))


def _random_batch(B: int = 3, T: int = 5, obs: int = 3, act: int = 2, seed: int = 0) -> TrialBatch:
    g = torch.Generator().manual_seed(seed)
    return TrialBatch(
        obs=torch.randn(B, T, obs, generator=g),
        prev_action=torch.tanh(torch.randn(B, T, act, generator=g)),
        prev_reward=torch.randn(B, T, 1, generator=g),
        prev_done=(torch.rand(B, T, 1, generator=g) < 0.2).float(),
        action=torch.tanh(torch.randn(B, T, act, generator=g)),
        reward=torch.randn(B, T, 1, generator=g),
        next_obs=torch.randn(B, T, obs, generator=g),
        lengths=torch.tensor([T, T - 2, 1])[:B],
    )


def _cfg(decode_state: bool) -> Any:
    return tiny_config(
        algo="varibad",
        varibad={
            "latent_dim": 2,
            "embed": [8],
            "gru_hidden": 6,
            "decoder_hidden": [8],
            "decode_state": decode_state,
        },
        ppo={"hidden": [8]},
    )


@pytest.mark.parametrize("decode_state", [False, True])
def test_the_elbo_trains_encoder_and_decoders_never_the_policy(decode_state: bool) -> None:
    cfg = _cfg(decode_state)
    torch.manual_seed(0)
    nets = make_nets(3, 2, cfg)
    terms = elbo_terms(
        _random_batch(), nets, cfg.varibad, generator=torch.Generator().manual_seed(1)
    )
    groups = {
        "encoder": list(nets.encoder.parameters()),
        "reward_decoder": list(nets.reward_decoder.parameters()),
        "state_decoder": []
        if nets.state_decoder is None
        else list(nets.state_decoder.parameters()),
        "policy": list(nets.policy.parameters()),
        "vf": list(nets.vf.parameters()),
    }
    reached = set()
    for name, params in groups.items():
        if not params:
            continue
        gs = torch.autograd.grad(terms.loss, params, retain_graph=True, allow_unused=True)
        if any(g is not None and g.abs().sum() > 0 for g in gs):
            reached.add(name)
    want = {"encoder", "reward_decoder"} | ({"state_decoder"} if decode_state else set())
    assert reached == want
    # and the KL term alone reaches the encoder only
    kl_params = [p for ps in groups.values() for p in ps]
    gs = torch.autograd.grad(terms.kl.sum(), kl_params, allow_unused=True)
    n_enc = len(groups["encoder"])
    assert any(g is not None and g.abs().sum() > 0 for g in gs[:n_enc])
    assert all(g is None or g.abs().sum() == 0 for g in gs[n_enc:])


def test_the_vae_step_steps_with_the_gradient_of_the_elbo_alone() -> None:
    cfg = _cfg(True)
    torch.manual_seed(0)
    nets = make_nets(3, 2, cfg)
    ref = copy.deepcopy(nets)
    opt = torch.optim.Adam(nets.vae_parameters(), lr=1e-3)
    seen = record_step_grads({"vae": opt})
    before = {k: v.clone() for k, v in nets.state_dict().items()}
    vae_update(_random_batch(), nets, opt, cfg.varibad, torch.Generator().manual_seed(5))
    terms = elbo_terms(
        _random_batch(), ref, cfg.varibad, generator=torch.Generator().manual_seed(5)
    )
    assert_grads_of(seen["vae"], terms.loss, ref.vae_parameters(), "vae")
    after = nets.state_dict()
    for key, value in before.items():
        moved = not torch.equal(value, after[key])
        vae = key.startswith(("encoder.", "reward_decoder.", "state_decoder."))
        assert moved == (vae and "normaliser" not in key), key
