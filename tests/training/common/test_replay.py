"""Per-task replay buffers: ring semantics, per-task isolation, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.common.replay import MultiTaskReplayBuffer


def _fill(buf: MultiTaskReplayBuffer, task: int, n: int, start: float = 0.0) -> None:
    for i in range(n):
        v = start + i
        buf.add(task, np.full(2, v), np.full(1, v), v, np.full(2, v + 0.5), i % 3 == 0)


def test_ring_overwrites_oldest_and_tasks_are_separate() -> None:
    buf = MultiTaskReplayBuffer(2, 4, obs_dim=2, act_dim=1)
    _fill(buf, 0, 6)  # values 0..5 into capacity 4: 2, 3, 4, 5 remain
    _fill(buf, 1, 2, start=100)
    assert list(buf.sizes) == [4, 2]
    assert sorted(buf.rewards[0, :, 0]) == [2, 3, 4, 5]
    rng = np.random.default_rng(0)
    obs, _, rew, nxt, done = buf.sample(np.array([0, 1]), 50, rng)
    assert obs.shape == (2, 50, 2) and rew.shape == (2, 50, 1) and done.shape == (2, 50, 1)
    assert set(rew[0, :, 0]) <= {2, 3, 4, 5} and set(rew[1, :, 0]) <= {100, 101}
    np.testing.assert_array_equal(nxt[..., 0], obs[..., 0] + 0.5)  # rows stay aligned


def test_context_rows_are_s_a_r_s_next() -> None:
    buf = MultiTaskReplayBuffer(1, 10, obs_dim=2, act_dim=1)
    _fill(buf, 0, 3)
    ctx = buf.sample_context(np.array([0]), 5, np.random.default_rng(1))
    assert ctx.shape == (1, 5, 2 + 1 + 1 + 2)
    v = ctx[0, :, 0]
    np.testing.assert_array_equal(ctx[0], np.stack([v, v, v, v, v + 0.5, v + 0.5], axis=1))


def test_clear_and_empty_sampling_error() -> None:
    buf = MultiTaskReplayBuffer(3, 5, obs_dim=2, act_dim=1)
    _fill(buf, 2, 3)
    buf.clear(2)
    with pytest.raises(ValueError, match=r"task\(s\) \[2\] is empty"):
        buf.sample(np.array([2]), 1, np.random.default_rng(0))


def test_state_dict_round_trip() -> None:
    buf = MultiTaskReplayBuffer(2, 8, obs_dim=2, act_dim=1)
    _fill(buf, 0, 11)
    _fill(buf, 1, 3, start=50)
    other = MultiTaskReplayBuffer(2, 8, obs_dim=2, act_dim=1)
    other.load_state_dict(buf.state_dict())
    for name in ("obs", "actions", "rewards", "next_obs", "dones", "sizes", "heads"):
        np.testing.assert_array_equal(getattr(other, name), getattr(buf, name))
    with pytest.raises(ValueError, match="checkpoint buffer is 2 tasks x 8"):
        MultiTaskReplayBuffer(3, 8, 2, 1).load_state_dict(buf.state_dict())


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 7),
    chunks=st.lists(st.integers(0, 12), min_size=1, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_add_rows_is_add_row_by_row(capacity: int, chunks: list[int], seed: int) -> None:
    """The bulk append (how the trainer stores a worker's episodes) leaves the buffer as
    `add` row by row does: contents, sizes, heads; chunks longer than the capacity too."""
    rng = np.random.default_rng(seed)
    bulk = MultiTaskReplayBuffer(2, capacity, obs_dim=2, act_dim=1)
    rows = MultiTaskReplayBuffer(2, capacity, obs_dim=2, act_dim=1)
    for n in chunks:
        obs, act, nxt = rng.normal(size=(n, 2)), rng.normal(size=(n, 1)), rng.normal(size=(n, 2))
        rew, done = rng.normal(size=n), rng.random(n) < 0.3
        bulk.add_rows(1, obs, act, rew, nxt, done)
        for i in range(n):
            rows.add(1, obs[i], act[i], rew[i], nxt[i], bool(done[i]))
    for name in ("obs", "actions", "rewards", "next_obs", "dones", "sizes", "heads"):
        np.testing.assert_array_equal(getattr(bulk, name), getattr(rows, name), err_msg=name)
    assert bulk.sizes[0] == 0 and bulk.sizes[1] == min(sum(chunks), capacity)
