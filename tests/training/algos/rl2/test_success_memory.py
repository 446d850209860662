"""RL²'s SuccessMemory (rl2.success_memory): the recurrent state recalls where the last
successful episode ended, from the policy's inputs alone; step and sequence agree; the
threshold tells zshot.reward's successes apart; truncated-BPTT chunks carry it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training.algos.rl2.test_losses import assert_chunks_match_the_whole
from training.algos.rl2.losses import Trial, trial_batch, with_targets
from training.algos.rl2.networks import (
    COMMAND_NAMES,
    POSE_NAMES,
    RL2Nets,
    SuccessMemory,
    make_nets,
    success_threshold,
)
from training.config import PPOConfig, TrainConfig
from zshot.reward import InsertionLimits, InsertionMeasurement, RewardConfig, insertion_reward

OBS, ACT, G = 18, 4, 6
COLS = (0, 1, 5)  # x_mm, y_mm, yaw_deg in the insertion env's observation
THR = 3.0
CCOLS, STEP = (0, 1, 2, 5), (2.0, 2.0, 2.0, 1.146)
SPEC = {"pose_columns": COLS, "threshold": THR}
CSPEC = {**SPEC, "command_columns": CCOLS, "command_step": STEP}


def _nets(seed: int = 0) -> RL2Nets:
    torch.manual_seed(seed)
    nets = RL2Nets(OBS, ACT, G, [8], memory=SPEC)
    nets.set_obs_stats(torch.zeros(OBS), torch.ones(OBS))
    return nets


def _trial(
    rng: np.random.Generator, episodes: list[int], succeeded: list[bool], bonus: float = 8.0
) -> Trial:
    """Episodes of random steps; each step's reward <= 0 but an episode's last one,
    `bonus` + a cost in [-4, 0] when it `succeeded`."""
    T = sum(episodes)
    ends = np.cumsum(episodes) - 1
    rewards = -rng.uniform(0, 4, size=T).astype(np.float32)
    for e, ok in zip(ends, succeeded, strict=True):
        if ok:
            rewards[e] += bonus
    done = np.zeros((T, 1), np.float32)
    done[ends[:-1] + 1] = 1.0
    u = rng.normal(size=(T, ACT)).astype(np.float32)
    return Trial(
        obs=rng.normal(scale=2.0, size=(T, OBS)).astype(np.float32),
        last_action=np.concatenate([np.zeros((1, ACT)), np.tanh(u[:-1])]).astype(np.float32),
        reward=np.concatenate([[0.0], rewards[:-1]]).astype(np.float32)[:, None],
        done=done,
        u=u,
        rewards=rewards,
        episode_returns=[0.0] * len(episodes),
        episode_successes=list(succeeded),
    )


def _reference(trial: Trial, episodes: list[int], succeeded: list[bool]) -> np.ndarray:
    """(T, 4): [has memory, x, y, yaw] at each step, by the definition: the pose of the last
    step of the latest earlier episode that succeeded."""
    out = np.zeros((trial.steps, 4), np.float32)
    start, mem = 0, None
    for n, ok in zip(episodes, succeeded, strict=True):
        if mem is not None:
            out[start : start + n] = [1.0, *mem]
        if ok:
            mem = trial.obs[start + n - 1, list(COLS)]
        start += n
    return out


episodes_st = st.lists(st.integers(1, 6), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(episodes_st, st.data())
def test_the_memory_is_the_last_pose_of_the_latest_success(episodes: list[int], data) -> None:
    succeeded = data.draw(st.lists(st.booleans(), min_size=len(episodes), max_size=len(episodes)))
    trial = _trial(np.random.default_rng(len(episodes)), episodes, succeeded)
    b = trial_batch([trial])
    mem = SuccessMemory(**SPEC)
    states, feats = mem.sequence(
        torch.zeros(1, 7), b["obs"], b["last_action"], b["reward"], b["done"]
    )
    ref = _reference(trial, episodes, succeeded)
    np.testing.assert_array_equal(states[0, :, :4].numpy(), ref)
    np.testing.assert_array_equal(states[0, :, 4:].numpy(), trial.obs[:, list(COLS)])
    # the features: zero without a memory; with one, its pose and the offset to it
    without = ref[:, 0] == 0
    assert torch.all(feats[0, torch.from_numpy(without)] == 0)
    delta = (trial.obs[:, list(COLS)] - ref[:, 1:]) / np.array([0.5, 0.5, 1.0])
    np.testing.assert_allclose(
        feats[0, ~torch.from_numpy(without), 4:].numpy(),
        np.clip(delta, -4, 4)[~without],
        rtol=1e-6,
        atol=1e-6,
    )
    # one step at a time (what step.onnx computes) gives the same states and features
    s = torch.zeros(1, 7)
    for t in range(trial.steps):
        s, f = mem.step(
            s, b["obs"][:, t], b["last_action"][:, t], b["reward"][:, t], b["done"][:, t]
        )
        torch.testing.assert_close(s, states[:, t], rtol=0, atol=0)
        torch.testing.assert_close(f, feats[:, t], rtol=0, atol=0)


def _cmd_reference(trial: Trial, episodes: list[int]) -> np.ndarray:
    """(T, 4): the commanded pose by its definition: the measured pose at the episode's first
    step, then + each step's a_{t-1} x STEP."""
    out = np.zeros((trial.steps, 4))
    start = 0
    for n in episodes:
        cmd = trial.obs[start, list(CCOLS)].astype(np.float64)
        out[start] = cmd
        for t in range(start + 1, start + n):
            cmd = cmd + trial.last_action[t, :4] * np.array(STEP)
            out[t] = cmd
        start += n
    return out


@settings(max_examples=30, deadline=None)
@given(episodes_st, st.data())
def test_the_commanded_pose_integrates_the_actions_from_each_episodes_start(
    episodes: list[int], data
) -> None:
    succeeded = data.draw(st.lists(st.booleans(), min_size=len(episodes), max_size=len(episodes)))
    trial = _trial(np.random.default_rng(7 + len(episodes)), episodes, succeeded)
    b = trial_batch([trial])
    mem = SuccessMemory(**CSPEC)
    assert (mem.STATE_DIM, mem.FEATURE_DIM) == (12, 14)
    states, feats = mem.sequence(
        torch.zeros(1, 12), b["obs"], b["last_action"], b["reward"], b["done"]
    )
    cmd = _cmd_reference(trial, episodes)
    np.testing.assert_allclose(states[0, :, 8:].numpy(), cmd, atol=1e-4)
    np.testing.assert_array_equal(states[0, :, :4].numpy(), _reference(trial, episodes, succeeded))
    # the offset from the commanded pose to the measured one, in action units
    lag = np.clip((cmd - trial.obs[:, list(CCOLS)]) / np.array(STEP), -4, 4)
    np.testing.assert_allclose(feats[0, :, 10:].numpy(), lag, atol=1e-4)
    s = torch.zeros(1, 12)
    for t in range(trial.steps):
        s, f = mem.step(
            s, b["obs"][:, t], b["last_action"][:, t], b["reward"][:, t], b["done"][:, t]
        )
        torch.testing.assert_close(s, states[:, t], rtol=0, atol=1e-4)
        torch.testing.assert_close(f, feats[:, t], rtol=0, atol=1e-4)


def test_a_sequence_from_a_started_state_carries_its_commanded_pose() -> None:
    """A truncated-BPTT chunk starts mid-episode: its commanded pose continues the state's
    (no reset at its first step), unlike a task's first step."""
    mem = SuccessMemory(**CSPEC)
    trial = _trial(np.random.default_rng(9), [6], [False])
    b = trial_batch([trial])
    whole, _ = mem.sequence(torch.zeros(1, 12), b["obs"], b["last_action"], b["reward"], b["done"])
    cut = {k: v[:, 3:] for k, v in b.items() if k in ("obs", "last_action", "reward", "done")}
    part, _ = mem.sequence(whole[:, 2], cut["obs"], cut["last_action"], cut["reward"], cut["done"])
    torch.testing.assert_close(part, whole[:, 3:], rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec", [SPEC, CSPEC], ids=["memory", "memory+command"])
def test_the_policy_step_is_its_sequence_with_the_memory(spec: dict) -> None:
    torch.manual_seed(0)
    nets = RL2Nets(OBS, ACT, G, [8], memory=spec)
    rng = np.random.default_rng(3)
    eps, ok = [5, 4, 6], [True, False, True]
    b = trial_batch([_trial(rng, eps, ok)])
    h0 = torch.zeros(1, nets.hidden_dim)
    assert nets.hidden_dim == G + (12 if "command_step" in spec else 7)
    with torch.no_grad():
        hs, mean, _ = nets.policy.sequence(h0, b["obs"], b["last_action"], b["reward"], b["done"])
        h = h0
        for t in range(sum(eps)):
            h, m, _ = nets.policy.step(
                h, b["obs"][:, t], b["last_action"][:, t], b["reward"][:, t], b["done"][:, t]
            )
            torch.testing.assert_close(h, hs[:, t], atol=1e-6, rtol=0)
            torch.testing.assert_close(m, mean[:, t], atol=1e-6, rtol=0)
    assert torch.all(hs[0, :5, G] == 0) and torch.all(hs[0, 5:, G] == 1)


def test_the_head_reads_the_memory() -> None:
    """Two histories that differ only in where the successful episode ended give different
    actions at the next episode's first step (the memory reaches the action)."""
    nets = _nets()
    rng = np.random.default_rng(4)
    a = _trial(rng, [4, 3], [True, False])
    b_obs = a.obs.copy()
    b_obs[3, list(COLS)] += 1.0  # the success pose moves by 1 mm, 1 mm, 1 deg
    b = a.__class__(**{**a.__dict__, "obs": b_obs})
    batch = trial_batch([a, b])
    with torch.no_grad():
        _, mean, _ = nets.policy.sequence(
            torch.zeros(2, nets.hidden_dim),
            batch["obs"],
            batch["last_action"],
            batch["reward"],
            batch["done"],
        )
    assert not torch.allclose(mean[0, 4], mean[1, 4], atol=1e-4)


@pytest.mark.parametrize("spec", [SPEC, CSPEC], ids=["memory", "memory+command"])
@pytest.mark.parametrize("length", [1, 3, 5])
def test_bptt_chunks_carry_the_memory(length: int, spec: dict) -> None:
    """Chunks start from the whole pass's recurrent state, memory (and commanded pose)
    included: a chunk that begins after the success still recalls it."""
    torch.manual_seed(0)
    nets = RL2Nets(OBS, ACT, G, [8], memory=spec)
    rng = np.random.default_rng(5)
    trials = [_trial(rng, [3, 4, 2], [True, False, True]), _trial(rng, [2, 5], [True, True])]
    whole = with_targets(nets, trial_batch(trials), PPOConfig())
    assert_chunks_match_the_whole(nets, whole, length)


@settings(max_examples=200, deadline=None)
@given(
    lateral=st.floats(0, 0.02),
    yaw=st.floats(0, 0.5),
    depth=st.floats(-0.03, 0.03),
    force=st.floats(0, 45),
)
def test_the_threshold_tells_apart_exactly_the_rewards_successes(
    lateral: float, yaw: float, depth: float, force: float
) -> None:
    """For zshot.reward's default weights: a step's reward is above the threshold if and
    only if that step succeeded without a violation."""
    cfg = RewardConfig()
    thr = success_threshold(cfg.success_bonus, cfg.max_step_cost)
    m = InsertionMeasurement(lateral, yaw, depth, force, force)
    r, success, violation = insertion_reward(cfg, m, InsertionLimits(0.01, 300))
    assert (r > thr) == (success and not violation)


def test_a_reward_that_cannot_tell_a_success_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="success_bonus .* above .*max_step_cost"):
        success_threshold(3.0, 4.0)
    cfg = TrainConfig.model_validate(
        {
            "algo": "rl2",
            "env": "insertion",
            "rl2": {"success_memory": True},
            "sim_overrides": {"reward": {"success_bonus": 2.0}},
        }
    )
    with pytest.raises(ValueError, match="rl2.success_memory needs reward.success_bonus"):
        make_nets(OBS, ACT, cfg)
    point = TrainConfig.model_validate(
        {"algo": "rl2", "env": "point", "rl2": {"success_memory": True}}
    )
    with pytest.raises(ValueError, match="only env 'insertion'"):
        make_nets(3, 2, point)


def test_make_nets_remembers_the_insertion_envs_pose() -> None:
    from sim.insertion import OBS_INDEX

    def cfg(**rl2: object) -> TrainConfig:
        return TrainConfig.model_validate(
            {"algo": "rl2", "env": "insertion", "rl2": {"gru_hidden": 8, **rl2}}
        )

    nets = make_nets(OBS, ACT, cfg(success_memory=True))
    mem = nets.policy.memory
    assert mem is not None and mem.pose_columns == tuple(OBS_INDEX[n] for n in POSE_NAMES)
    assert mem.threshold == 3.0 and nets.hidden_dim == 8 + 7 and not mem.command
    plain = make_nets(OBS, ACT, cfg())
    assert plain.policy.memory is None and plain.hidden_dim == 8
    # the commanded pose steps by the env's max speeds x its control period (0.02 m/s and
    # 0.2 rad/s at 0.1 s by default): 2 mm and 1.146 deg per unit of action
    full = make_nets(OBS, ACT, cfg(success_memory=True, commanded_pose=True)).policy.memory
    assert full is not None and full.command and full.command_step[:3] == (2.0, 2.0, 2.0)
    assert full.command_step[3] == pytest.approx(1.1459, abs=1e-4)
    assert full.command_columns == tuple(OBS_INDEX[n] for n in COMMAND_NAMES)
    with pytest.raises(ValueError, match="commanded_pose needs rl2.success_memory"):
        cfg(commanded_pose=True)
