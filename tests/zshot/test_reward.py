"""zshot.reward: the insertion reward from what a robot measures (pure Python, no sim)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zshot.reward import (
    REWARD_DEFINITION,
    InsertionLimits,
    InsertionMeasurement,
    RewardConfig,
    insertion_reward,
    insertion_success,
    reward_manifest,
)

LIMITS = InsertionLimits(success_depth_m=0.015, max_steps=100)

_state = st.tuples(
    st.floats(0.0, 0.5),  # lateral offset from the believed socket, m
    st.floats(0.0, math.pi),  # |yaw|, rad
    st.floats(-0.2, 0.03),  # depth, m (negative: above the face)
    st.floats(0.0, 200.0),  # mean wrist force, N
)


def _m(state: tuple[float, float, float, float], peak: float = 0.0) -> InsertionMeasurement:
    lat, yaw, depth, force = state
    return InsertionMeasurement(lat, yaw, depth, force, peak)


@settings(max_examples=100, deadline=None)
@given(
    clean=st.lists(_state, min_size=1, max_size=100),
    before=st.lists(_state, min_size=0, max_size=99),
    last=_state,
    max_step_cost=st.floats(0.1, 10.0),
    safety_penalty=st.floats(1e-3, 100.0),
)
def test_any_violating_episode_returns_less_than_any_clean_one(
    clean, before, last, max_step_cost, safety_penalty
) -> None:
    """Over arbitrary measurements, an episode that ends in a violation (after any
    <= max_steps - 1 clean steps) returns less than any episode of <= max_steps clean steps."""
    cfg = RewardConfig(max_step_cost=max_step_cost, safety_penalty=safety_penalty)

    def r(state, violation: bool) -> float:
        peak = LIMITS.force_limit_n + 1.0 if violation else 0.0
        reward, _, v = insertion_reward(cfg, _m(state, peak), LIMITS)
        assert v == violation
        return reward

    def above(s):  # a success ends an episode: only an episode's last step can be one
        return (s[0], s[1], min(s[2], 0.0), s[3])

    clean_ret = sum(r(above(s), False) for s in clean[:-1]) + r(clean[-1], False)
    violating_ret = sum(r(above(s), False) for s in before) + r(last, True)
    assert clean_ret >= -LIMITS.max_steps * max_step_cost
    assert violating_ret <= -cfg.violation_penalty(LIMITS.max_steps)
    assert violating_ret < clean_ret


@settings(max_examples=200, deadline=None)
@given(_state)
def test_clean_step_reward_is_bounded(state) -> None:
    cfg = RewardConfig()
    reward, success, violation = insertion_reward(cfg, _m(state), LIMITS)
    assert not violation
    lo = -cfg.max_step_cost
    hi = cfg.success_bonus if success else 0.0
    assert lo <= reward <= hi


@settings(max_examples=200, deadline=None)
@given(_state)
def test_success_is_depth_within_the_believed_radius_and_yaw(state) -> None:
    cfg = RewardConfig()
    lat, yaw, depth, _ = state
    want = depth >= LIMITS.success_depth_m and lat <= cfg.success_radius and yaw <= cfg.success_yaw
    assert insertion_success(cfg, _m(state), LIMITS.success_depth_m) == want


def test_deeper_is_better_and_off_centre_costs() -> None:
    cfg = RewardConfig()
    above = insertion_reward(cfg, InsertionMeasurement(0.0, 0.0, -0.002, 0.0, 0.0), LIMITS)[0]
    lower = insertion_reward(cfg, InsertionMeasurement(0.0, 0.0, 0.005, 0.0, 0.0), LIMITS)[0]
    aside = insertion_reward(cfg, InsertionMeasurement(0.002, 0.0, -0.002, 0.0, 0.0), LIMITS)[0]
    assert lower > above > aside
    done = insertion_reward(cfg, InsertionMeasurement(0.001, 0.01, 0.016, 5.0, 5.0), LIMITS)
    assert done[1] and done[0] > cfg.success_bonus - 1.0


@pytest.mark.parametrize(
    "bad",
    [
        dict(lateral_m=float("nan")),
        dict(depth_m=float("inf")),
        dict(force_n=-1.0),
        dict(yaw_rad=-0.1),
    ],
)
def test_measurement_refuses_non_finite_or_negative_magnitudes(bad) -> None:
    kw = {"lateral_m": 0.0, "yaw_rad": 0.0, "depth_m": 0.0, "force_n": 0.0, "peak_force_n": 0.0}
    kw.update(bad)
    with pytest.raises(ValueError, match="insertion measurement|magnitudes"):
        InsertionMeasurement(**kw)


def test_reward_config_rejects_a_non_positive_cost_clip() -> None:
    with pytest.raises(ValueError, match="max_step_cost"):
        RewardConfig(max_step_cost=0.0)


def test_manifest_entry_names_the_definition_and_its_parameters() -> None:
    entry = reward_manifest(RewardConfig(w_xy=0.5), 100, 20.0, 40.0)
    assert entry["definition"] == REWARD_DEFINITION
    assert entry["params"]["w_xy"] == 0.5  # type: ignore[index]
    assert RewardConfig.model_validate(entry["params"]) == RewardConfig(w_xy=0.5)
