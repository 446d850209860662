"""MT-PPO's losses: which networks each PPO term trains, the one-hot id reaching both
networks, and GAE's bootstrap after a time limit but not after a terminal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.conftest import grads_reach, tiny_config
from training.algos.mtppo.losses import TaskEpisode, episode_batch, mtppo_losses, with_targets
from training.algos.mtppo.networks import MTPPONets, make_nets
from training.config import PPOConfig

OBS, ACT, TASKS = 3, 2, 4


def _nets(seed: int = 0) -> MTPPONets:
    torch.manual_seed(seed)
    cfg = tiny_config(algo="mtppo", num_train_tasks=TASKS, ppo={"hidden": [8]})
    return make_nets(OBS, ACT, cfg)


def _episode(rng: np.random.Generator, task: int, T: int, terminated: bool) -> TaskEpisode:
    return TaskEpisode(
        task=task,
        obs=rng.normal(size=(T, OBS)).astype(np.float32),
        u=rng.normal(size=(T, ACT)).astype(np.float32),
        rewards=rng.normal(size=T).astype(np.float32),
        terminated=terminated,
        final_obs=rng.normal(size=OBS).astype(np.float32),
    )


def _batch(cfg: PPOConfig | None = None, nets: MTPPONets | None = None) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    eps = [_episode(rng, 0, 5, True), _episode(rng, 3, 3, False), _episode(rng, 1, 4, False)]
    return with_targets(nets or _nets(), episode_batch(eps, TASKS), cfg or PPOConfig())


def test_the_config_needs_the_one_hot_size() -> None:
    with pytest.raises(ValueError, match="algo mtppo needs num_train_tasks"):
        tiny_config(algo="mtppo", num_train_tasks=None)


def test_each_term_trains_only_its_network() -> None:
    nets = _nets()
    terms = mtppo_losses(nets, _batch(nets=nets), PPOConfig())
    policy, value = list(nets.policy.parameters()), list(nets.value.parameters())

    assert all(grads_reach(terms.policy, policy)) and not any(grads_reach(terms.policy, value))
    assert all(grads_reach(terms.value, value)) and not any(grads_reach(terms.value, policy))
    ent = grads_reach(terms.entropy, [*policy, *value])
    assert ent == [p is nets.policy.log_std for p in [*policy, *value]]


def test_the_task_id_reaches_both_networks() -> None:
    nets = _nets()
    obs = torch.zeros(TASKS, OBS)
    d = nets.one_hot(torch.arange(TASKS))
    mean, _ = nets.policy(obs, d)
    v = nets.value(obs, d)
    assert torch.unique(mean[:, 0]).numel() == TASKS and torch.unique(v).numel() == TASKS


def test_a_time_limit_bootstraps_and_a_terminal_does_not() -> None:
    """gamma = lambda = 1: the value target of an episode's first step is its reward sum,
    plus V(s_T, d) only when the time limit cut it."""
    nets = _nets()
    b = _batch(PPOConfig(gamma=1.0, gae_lambda=1.0), nets)
    rng = np.random.default_rng(0)
    eps = [_episode(rng, 0, 5, True), _episode(rng, 3, 3, False), _episode(rng, 1, 4, False)]
    with torch.no_grad():
        for i, e in enumerate(eps):
            boot = 0.0
            if not e.terminated:
                d = nets.one_hot(torch.tensor([e.task]))
                boot = float(nets.value(torch.from_numpy(e.final_obs)[None], d)[0])
            assert float(b["returns"][i, 0]) == pytest.approx(
                float(e.rewards.sum()) + boot, abs=1e-5
            )
    assert b["mask"].sum(1).tolist() == [5.0, 3.0, 4.0]
    assert b["descriptor"][1, 0].tolist() == [0.0, 0.0, 0.0, 1.0]
