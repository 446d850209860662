"""training/common/goals.py: the flat goal env, the episode buffer and the two samplers
(HER's `future` relabelling, contrastive RL's geometric futures)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.common.goals import (
    EpisodeBuffer,
    FlatGoalEnv,
    GoalLayout,
    relabel_count,
    sample_future,
    sample_her,
)
from training.common.rollout import Episode, run_episode
from training.common.toy_env import PointReachEnv
from zshot.goal import sparse_goal_reward

LAYOUT = GoalLayout(obs_dim=3, goal_dim=2)
EPS = 0.3


def _episode(rng: np.random.Generator, steps: int, terminal: bool = False) -> Episode:
    """A random episode: the achieved goal wanders, the desired goal is fixed."""
    achieved = np.cumsum(rng.normal(0, 0.3, (steps + 1, 2)), axis=0)
    obs = np.concatenate(
        [rng.normal(size=(steps + 1, 3)), achieved, np.tile(rng.normal(size=2), (steps + 1, 1))],
        axis=1,
    ).astype(np.float32)
    term = np.zeros(steps, bool)
    term[-1] = terminal
    return Episode(
        seed=0,
        obs=obs,
        actions=rng.uniform(-1, 1, (steps, 2)).astype(np.float32),
        rewards=np.zeros(steps),
        terminated=term,
        truncated=~term,
        ret=0.0,
        reset_info={},
        infos=[{}] * steps,
    )


def _buffer(seed: int, lengths: list[int], horizon: int = 12) -> EpisodeBuffer:
    rng = np.random.default_rng(seed)
    buf = EpisodeBuffer(8, horizon, LAYOUT, 2)
    for i, n in enumerate(lengths):
        buf.add(_episode(rng, n, terminal=i % 2 == 0))
    return buf


def _find(buf: EpisodeBuffer, obs: np.ndarray) -> tuple[int, int]:
    """The (episode, step) whose observation part is `obs`."""
    o = LAYOUT.split(buf.obs[: buf.size])[0]
    hits = np.argwhere(np.all(o == obs, axis=-1))
    assert len(hits) >= 1
    return int(hits[0][0]), int(hits[0][1])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=8),
    k=st.integers(0, 8),
    batch=st.integers(1, 64),
)
def test_a_relabelled_reward_is_the_reward_of_the_achieved_goal(
    seed: int, lengths: list[int], k: int, batch: int
) -> None:
    buf = _buffer(seed, lengths)
    b = sample_her(buf, batch, k, EPS, np.random.default_rng(seed + 1))
    relabelled = b.relabelled.numpy()
    assert relabelled.sum() == relabel_count(batch, k) == round(batch * k / (k + 1))
    for i in range(batch):
        e, t = _find(buf, b.obs[i].numpy())
        _, achieved, desired = LAYOUT.split(buf.obs[e])
        np.testing.assert_array_equal(b.next_obs[i].numpy(), LAYOUT.split(buf.obs[e, t + 1])[0])
        goal = b.goals[i].numpy()
        if relabelled[i]:  # an achieved goal of a later state of the same episode
            later = achieved[t + 1 : buf.lengths[e] + 1]
            assert np.any(np.all(later == goal, axis=-1))
        else:
            np.testing.assert_array_equal(goal, desired[t])
        # the env's own reward for s_{t+1} had that goal been asked for
        assert b.rewards[i, 0] == sparse_goal_reward(achieved[t + 1], goal, EPS)
        assert b.dones[i, 0] == float(buf.terminated[e, t])


def test_relabelling_makes_rewards_where_the_real_goals_give_none() -> None:
    buf = _buffer(0, [12] * 8)
    plain = sample_her(buf, 512, 0, EPS, np.random.default_rng(1))
    her = sample_her(buf, 512, 4, EPS, np.random.default_rng(1))
    assert not plain.relabelled.any() and her.relabelled.float().mean() == pytest.approx(
        0.8, abs=1e-2
    )
    assert her.rewards.mean() > plain.rewards.mean() + 0.05


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), lengths=st.lists(st.integers(1, 12), min_size=1, max_size=8))
def test_a_future_goal_is_the_achieved_goal_delta_steps_later(
    seed: int, lengths: list[int]
) -> None:
    buf = _buffer(seed, lengths)
    b = sample_future(buf, 32, 0.8, np.random.default_rng(seed))
    assert (b.offsets >= 1).all()
    for i in range(32):
        e, t = _find(buf, b.obs[i].numpy())
        future = min(t + int(b.offsets[i]), int(buf.lengths[e]))
        assert int(b.offsets[i]) == future - t  # capped at the episode's last state
        np.testing.assert_array_equal(
            b.future_goals[i].numpy(), LAYOUT.split(buf.obs[e, future])[1]
        )


def test_future_offsets_are_geometric() -> None:
    buf = _buffer(0, [12] * 8, horizon=12)
    buf.lengths[:] = 12
    b = sample_future(buf, 20_000, 0.5, np.random.default_rng(0))
    # P(Δ = 1) = 1 - γ = 0.5, except from the last step (1 in 12), whose future is capped at 1
    want = 0.5 * 11 / 12 + 1 / 12
    assert (b.offsets == 1).float().mean() == pytest.approx(want, abs=0.01)
    # and P(offset = 2) = 0.25 from the first 10 steps (t + 2 <= 12), 0.5 from step 10
    assert (b.offsets == 2).float().mean() == pytest.approx(0.25 * 10 / 12 + 0.5 / 12, abs=0.01)


def test_the_buffer_round_trips_and_refuses_long_episodes() -> None:
    buf = _buffer(0, [3, 5, 7])
    again = EpisodeBuffer(8, 12, LAYOUT, 2)
    again.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(again.obs, buf.obs)
    assert (again.size, again.head, again.transitions) == (3, 3, 15)
    with pytest.raises(ValueError, match="episode of 13 steps"):
        buf.add(_episode(np.random.default_rng(0), 13))
    with pytest.raises(ValueError, match="checkpoint holds 8 episodes, this run 4"):
        EpisodeBuffer(4, 12, LAYOUT, 2).load_state_dict(buf.state_dict())


def test_the_flat_env_rewards_with_the_shared_function() -> None:
    env = FlatGoalEnv(PointReachEnv())
    assert env.layout == GoalLayout(2, 2) and env.epsilon == PointReachEnv.distance_threshold
    assert env.horizon == PointReachEnv.max_steps

    def towards_goal(flat: np.ndarray) -> np.ndarray:
        obs, _, goal = env.layout.split(flat)
        return np.clip((goal - obs) / 0.1, -1, 1)

    ep = run_episode(env, towards_goal, seed=3)
    _, achieved, desired = env.layout.split(ep.obs)
    want = sparse_goal_reward(achieved[1:], desired[1:], env.epsilon)
    np.testing.assert_array_equal(ep.rewards, want)
    assert ep.rewards[-1] == 1.0 and ep.infos[-1]["is_success"]  # a servo reaches it
    inner = PointReachEnv()
    np.testing.assert_array_equal(inner.compute_reward(achieved[1:], desired[1:]), want)


def test_a_non_goal_env_is_refused() -> None:
    from training.common.toy_env import PointGoalEnv

    with pytest.raises(ValueError, match="not a goal env"):
        FlatGoalEnv(PointGoalEnv())
