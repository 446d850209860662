"""VariBAD's networks: the written-out GRU cell is nn.GRU's step, the step graph's belief
is the encoder's over a whole trial, the policy sees (s, mean, var)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training.conftest import tiny_config
from training.algos.varibad.networks import belief_input, gru_cell, make_nets
from training.common.onnx_export import RecurrentStepGraph


def _nets(decode_state: bool = False, reward_scale: float = 1.0) -> object:
    cfg = tiny_config(
        algo="varibad",
        varibad={
            "latent_dim": 2,
            "embed": [8],
            "gru_hidden": 6,
            "decoder_hidden": [8],
            "decode_state": decode_state,
            "vae_reward_scale": reward_scale,
        },
        ppo={"hidden": [8]},
    )
    torch.manual_seed(0)
    return make_nets(3, 2, cfg)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_the_written_out_cell_is_the_grus_step(seed: int, batch: int) -> None:
    g = torch.Generator().manual_seed(seed)
    gru = torch.nn.GRU(5, 7, batch_first=True)
    with torch.no_grad():
        for p in gru.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x, h = torch.randn(batch, 5, generator=g), torch.randn(batch, 7, generator=g)
    _, want = gru(x[:, None], h[None])
    torch.testing.assert_close(gru_cell(x, h, gru), want[0], rtol=1e-5, atol=1e-5)


def test_stepping_the_graph_gives_the_encoders_beliefs_and_the_policys_actions() -> None:
    """The step graph, fed one step at a time with its own next_hidden, has the GRU states
    of the encoder's pass over the whole trial, and acts as the policy on (s, mean, var)."""
    nets = _nets()
    T = 7
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(1, T, 3, generator=g)
    prev_a = torch.tanh(torch.randn(1, T, 2, generator=g))
    prev_r = torch.randn(1, T, 1, generator=g)
    prev_d = torch.zeros(1, T, 1)
    prev_d[0, 4] = 1.0
    noise = torch.randn(1, T, 2, generator=g)
    low, high = np.full(2, -2.0, np.float32), np.full(2, 3.0, np.float32)
    step = RecurrentStepGraph(nets, low, high)
    with torch.no_grad():
        states, mean, logvar = nets.encoder(obs, prev_a, prev_r, prev_d)
        h = torch.zeros(1, 6)
        for t in range(T):
            h, action = step(h, obs[:, t], prev_a[:, t], prev_r[:, t], prev_d[:, t], noise[:, t])
            torch.testing.assert_close(h, states[:, t], rtol=1e-5, atol=1e-6)
            z = belief_input(mean[:, t], logvar[:, t])
            mu, log_std = nets.policy(obs[:, t], z)
            a = torch.tanh(mu + log_std.exp() * noise[:, t])
            torch.testing.assert_close(action, -2.0 + (a + 1.0) * 2.5, rtol=1e-5, atol=1e-6)
    assert torch.equal(z[:, 2:], logvar[:, -1].exp())  # the policy sees the variance
    # the belief input matters: another belief, another action
    other = nets.policy(obs[:, -1], z + 1.0)[0]
    assert not torch.allclose(other, mu)


def test_the_vae_parameters_are_encoder_and_decoders() -> None:
    for decode_state in (False, True):
        nets = _nets(decode_state)
        mods = [nets.encoder, nets.reward_decoder] + ([nets.state_decoder] if decode_state else [])
        want = {id(p) for m in mods for p in m.parameters()}
        assert {id(p) for p in nets.vae_parameters()} == want
        others = {id(p) for m in (nets.policy, nets.vf) for p in m.parameters()}
        assert not want & others


@settings(max_examples=20, deadline=None)
@given(st.floats(0.01, 10.0), st.integers(0, 2**31 - 1))
def test_the_encoder_reads_the_reward_at_its_scale_inside_the_step_graph(
    scale: float, seed: int
) -> None:
    """`vae_reward_scale` c: the step graph (what the export traces, parity-checked against
    ONNX) fed the raw reward r acts as the unscaled networks fed c r, with the same weights
    (the scale is no parameter: a run's state dict is the same, older checkpoints load)."""
    plain, scaled = _nets(), _nets(reward_scale=scale)
    assert scaled.state_dict().keys() == plain.state_dict().keys()
    scaled.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(seed)
    h, obs = torch.randn(2, 6, generator=g), torch.randn(2, 3, generator=g)
    a, r = torch.tanh(torch.randn(2, 2, generator=g)), 100 * torch.randn(2, 1, generator=g)
    d, noise = torch.zeros(2, 1), torch.randn(2, 2, generator=g)
    low, high = np.full(2, -1.0, np.float32), np.full(2, 1.0, np.float32)
    with torch.no_grad():
        got = RecurrentStepGraph(scaled, low, high)(h, obs, a, r, d, noise)
        want = RecurrentStepGraph(plain, low, high)(h, obs, a, scale * r, d, noise)
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
