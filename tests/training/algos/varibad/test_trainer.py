"""VariBAD's trainer: trials feed the encoder the runtime's inputs, PPO trains the policy
and value only (never the encoder), a smoke run, resuming bit for bit."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.training.conftest import assert_grads_of, record_step_grads, tiny_config
from training.algos.varibad.networks import belief_input
from training.algos.varibad.trainer import (
    VariBADTrainer,
    ppo_batch,
    ppo_evaluate,
    trial_batch,
)
from training.common.ppo import gaussian_log_prob, normalised_advantages, ppo_loss, ppo_losses
from training.common.ppo import ppo_update as shared_ppo_update
from training.config import TrainConfig


def varibad_config(**over: Any) -> TrainConfig:
    """A VariBAD run on the toy task small enough for a unit test."""
    base: dict[str, Any] = {
        "algo": "varibad",
        "num_train_tasks": 5,
        "varibad": {
            "latent_dim": 2,
            "embed": [8],
            "gru_hidden": 8,
            "decoder_hidden": [16],
            "vae_updates": 2,
            "vae_batch": 3,
            "episodes_per_trial": 2,
            "trials_per_iteration": 3,
            "subsample_decodes": 10,
        },
        "ppo": {"hidden": [16], "epochs": 2, "minibatches": 2},
        "eval": {"explore_episodes": 1, "eval_episodes": 1, "max_tasks": 2},
    }
    base.update(over)
    return tiny_config(**base)


def test_trials_feed_the_encoder_what_the_runtime_feeds_the_step_graph(tmp_path: Path) -> None:
    """Step t of a trial got (s_t, a_{t-1}, r_{t-1}, d_{t-1}): zeros at the start, d = 1 at
    the second episode's first step with the first episode's last action and reward; the
    recorded beliefs are the encoder's over the whole trial (GRU state carried across the
    episodes), the actions tanh of the recorded Gaussian samples."""
    tr = VariBADTrainer(varibad_config(), tmp_path)
    # trials stepped together (one batched policy call per step), each on its own task
    for trial, returns in tr.collect_trials([1, 3, 1]):
        _check_trial(tr, trial, returns)


def _check_trial(tr: VariBADTrainer, trial: Any, returns: list[float]) -> None:
    n = trial.length
    assert len(returns) == 2 and n == 40  # the point task: 20-step episodes
    assert not trial.prev_action[0].any() and trial.prev_reward[0, 0] == 0.0
    np.testing.assert_array_equal(trial.prev_action[1:], trial.action[:-1])
    np.testing.assert_array_equal(trial.prev_reward[1:], trial.reward[:-1])
    starts = np.flatnonzero(trial.prev_done[:, 0])
    assert starts.tolist() == [20]
    np.testing.assert_array_equal(trial.obs[1:20], trial.next_obs[:19])  # within an episode
    assert not np.array_equal(trial.obs[20], trial.next_obs[19])  # a reset in between
    np.testing.assert_allclose(trial.action, np.tanh(trial.u), atol=1e-6)
    assert np.isclose(sum(returns), trial.reward.sum(), atol=1e-4)
    b = trial_batch([trial])
    with torch.no_grad():
        _, mean, logvar = tr.nets.encoder(b.obs, b.prev_action, b.prev_reward, b.prev_done)
        mu, log_std = tr.nets.policy(b.obs, belief_input(mean, logvar))
        logp = gaussian_log_prob(torch.from_numpy(trial.u)[None], mu, log_std)
    np.testing.assert_allclose(trial.mean, mean[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(trial.logvar, logvar[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(trial.logp, logp[0].numpy(), atol=1e-4)
    assert trial.mean.std(0).max() > 0  # the belief moves along the trial


@pytest.mark.parametrize("through_encoder", [False, True])
def test_ppo_steps_the_policy_and_value_with_their_loss_and_the_encoder_only_if_asked(
    tmp_path: Path, through_encoder: bool
) -> None:
    """One PPO step (one epoch, one minibatch, no clipping of the norm): the optimizer steps
    with d ppo_loss / d (policy, value); by default (the paper's) the loss does not reach
    the encoder at all (the beliefs are data) and neither it nor the decoders move; with
    `rl_through_encoder` the encoder is stepped with its gradient of that loss too."""
    cfg = varibad_config(
        ppo={"hidden": [16], "epochs": 1, "minibatches": 1, "max_grad_norm": None},
        varibad={**varibad_config().varibad.model_dump(), "rl_through_encoder": through_encoder},
    )
    tr = VariBADTrainer(cfg, tmp_path)
    trials = [tr.collect_trial(t)[0] for t in (0, 2, 4)]
    batch = ppo_batch(trials, cfg.ppo.gamma, cfg.ppo.gae_lambda)
    ref = copy.deepcopy(tr.nets)
    seen = record_step_grads({"ppo": tr.ppo_optimizer})
    before = {k: v.clone() for k, v in tr.nets.state_dict().items()}
    shared_ppo_update(
        batch,
        lambda mb: ppo_evaluate(tr.nets, mb, through_encoder),
        tr.ppo_optimizer,
        tr.nets.ppo_parameters(through_encoder),
        cfg.ppo,
        torch.Generator().manual_seed(0),
    )
    logp, entropy, values = ppo_evaluate(ref, batch, through_encoder)
    adv = normalised_advantages(batch["advantages"], batch["mask"])
    terms = ppo_losses(
        logp, batch["logp"], adv, values, batch["returns"], entropy, batch["mask"], cfg.ppo.clip
    )
    loss = ppo_loss(terms, cfg.ppo)
    assert_grads_of(seen["ppo"], loss, ref.ppo_parameters(through_encoder), "ppo")
    reach = torch.autograd.grad(
        loss, list(ref.encoder.parameters()), allow_unused=True, retain_graph=True
    )
    assert any(g is not None and g.abs().sum() > 0 for g in reach) == through_encoder
    after = tr.nets.state_dict()
    trained = ("policy.", "vf.", "encoder.") if through_encoder else ("policy.", "vf.")
    for key, value in before.items():
        moved = not torch.equal(value, after[key])
        assert moved == (key.startswith(trained) and "normaliser" not in key), key


def test_gae_runs_across_the_episodes_of_a_trial(tmp_path: Path) -> None:
    """The BAMDP's return: an episode's end inside a trial is not an end (the advantage of
    its last step sees the next episode's value), the trial's end is (bootstrap 0)."""
    tr = VariBADTrainer(varibad_config(), tmp_path)
    trial = tr.collect_trial(0)[0]
    b = ppo_batch([trial], gamma=0.9, lam=1.0, reward_scale=0.5)
    ret, r = b["returns"][0].numpy(), 0.5 * trial.reward[:, 0]
    want = np.zeros_like(r)
    acc = 0.0
    for t in range(len(r) - 1, -1, -1):
        acc = r[t] + 0.9 * acc
        want[t] = acc
    np.testing.assert_allclose(ret, want, rtol=1e-4, atol=1e-4)


def test_a_smoke_run_trains_checkpoints_and_evaluates(tmp_path: Path) -> None:
    cfg = varibad_config(iterations=2)
    straight = VariBADTrainer(cfg, tmp_path / "a")
    report = straight.run(progress=False)
    assert report is not None and np.isfinite(report.mean_return)
    hist = straight.history
    assert [h["iteration"] for h in hist] == [1, 2]
    assert all(np.isfinite(h["vae/loss"]) and np.isfinite(h["loss/value"]) for h in hist)
    assert {"vae/kl", "vae/reward", "train/return_ep1", "eval_return"} <= set(hist[-1])
    assert (tmp_path / "a" / "checkpoint.pt").is_file()
    assert (tmp_path / "a" / "eval.json").is_file()


@pytest.mark.slow
def test_a_resumed_run_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = varibad_config(iterations=2)
    straight = VariBADTrainer(cfg, tmp_path / "a")
    straight.run(progress=False)
    first = VariBADTrainer(varibad_config(iterations=1), tmp_path / "b")
    first.run(progress=False)
    resumed = VariBADTrainer(cfg, tmp_path / "b")
    resumed.load_checkpoint()
    assert len(resumed.vae_buffer) == len(first.vae_buffer)
    resumed.run(progress=False)
    for key, value in straight.nets.state_dict().items():
        assert torch.equal(value, resumed.nets.state_dict()[key]), key
    assert resumed.env_steps == straight.env_steps and resumed.updates == straight.updates
