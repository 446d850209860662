"""The sparse goal-reaching reward: r = δ(|achieved - desired| <= ε).

One definition for every goal-reaching env and every relabeller (Andrychowicz et al. 2017,
HER, arXiv 1707.01495; Eysenbach et al. 2022, contrastive RL, arXiv 2206.07568): the goal
variant of the insertion arm (`sim.insertion_goal`) puts it in every transition, the Fetch
adapters (`training.common.goals.FlatGoalEnv`) replace the env's own reward with it, and
hindsight relabelling (`training.common.goals.sample_her`) recomputes it for the
substituted goals, so a relabelled transition's reward is what the env would have given had
that goal been asked for. |.| is the Euclidean norm over the goal's last axis, in the goal's
own units (an env states them: `goal_names`).

numpy only (no torch, no pybullet): sim, training and a robot-side client import it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["GOAL_REWARD_DEFINITION", "goal_distance", "goal_reached", "sparse_goal_reward"]

GOAL_REWARD_DEFINITION = "zshot.goal.sparse/v1"
"""The name a manifest gives this reward (`env.reward.definition` of goal artifacts)."""


def goal_distance(achieved: ArrayLike, desired: ArrayLike) -> NDArray[np.float64]:
    """|achieved - desired| over the last axis (broadcast over the leading ones)."""
    a = np.asarray(achieved, np.float64)
    d = np.asarray(desired, np.float64)
    if a.shape[-1:] != d.shape[-1:]:
        raise ValueError(f"goal sizes differ: achieved {a.shape}, desired {d.shape}")
    return np.asarray(np.linalg.norm(a - d, axis=-1))


def goal_reached(achieved: ArrayLike, desired: ArrayLike, epsilon: float) -> NDArray[np.bool_]:
    """|achieved - desired| <= epsilon, elementwise over the leading axes."""
    if not epsilon > 0:
        raise ValueError(f"goal epsilon must be > 0, got {epsilon}")
    return np.asarray(goal_distance(achieved, desired) <= epsilon)


def sparse_goal_reward(
    achieved: ArrayLike, desired: ArrayLike, epsilon: float
) -> NDArray[np.float64]:
    """1.0 where the goal is reached (`goal_reached`), else 0.0."""
    return goal_reached(achieved, desired, epsilon).astype(np.float64)
