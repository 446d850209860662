"""zshot/goal.py: the sparse goal reward is the indicator of |achieved - desired| <= epsilon."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from zshot.goal import goal_distance, goal_reached, sparse_goal_reward

coords = st.floats(-100, 100, allow_nan=False, width=32)


@given(
    a=arrays(np.float32, (5, 3), elements=coords),
    d=arrays(np.float32, (5, 3), elements=coords),
    eps=st.floats(1e-3, 50),
)
def test_the_reward_is_one_exactly_within_epsilon(a: np.ndarray, d: np.ndarray, eps: float) -> None:
    r = sparse_goal_reward(a, d, eps)
    dist = np.sqrt(((a.astype(np.float64) - d) ** 2).sum(-1))
    np.testing.assert_array_equal(r, (dist <= eps).astype(np.float64))
    np.testing.assert_array_equal(r, sparse_goal_reward(d, a, eps))  # symmetric
    assert set(np.unique(r)) <= {0.0, 1.0}
    for i in range(5):  # a row alone gives that row's reward (vectorised = per row)
        assert float(sparse_goal_reward(a[i], d[i], eps)) == r[i]


def test_a_goal_is_reached_at_its_own_position_and_not_beyond_epsilon() -> None:
    g = np.array([1.0, 2.0, 3.0])
    assert goal_reached(g, g, 0.1)
    assert not goal_reached(g + np.array([0.0, 0.0, 0.1001]), g, 0.1)
    assert goal_reached(g + np.array([0.0, 0.0, 0.0999]), g, 0.1)
    assert goal_distance(g, g + np.array([3.0, 4.0, 0.0])) == pytest.approx(5.0)


def test_bad_input_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="goal epsilon must be > 0"):
        sparse_goal_reward([0.0], [0.0], 0.0)
    with pytest.raises(ValueError, match="goal sizes differ"):
        sparse_goal_reward([0.0, 1.0], [0.0], 1.0)
