"""The insertion reward and success signal, from what a robot measures.

One definition, used everywhere a transition's reward is made: the sim (`sim.insertion`)
puts it in every transition, every robot adapter (sim, mock, UR) reports it, the recorder
writes it, `docs/PROTOCOL.md` specifies it for clients in other languages, and the exported
manifest names it (`env.reward`). Pure Python (no numpy, torch or pybullet), so the robot
side imports it as it is.

Inputs, all in the frame of the *believed* socket (x, y centred on it, z up from its top
face; the robot never knows the hidden pose error):

- `lateral_m`: |(x, y)| of the plug's origin (the pins' root, centred on the pin pattern) [m];
- `yaw_rad`: |yaw| of the plug relative to the believed socket, wrapped to [0, pi] [rad];
- `depth_m`: insertion depth, how far the lowest pin tip is below the socket face [m]
  (negative above it). A robot knows the face's height; z is the one axis it knows exactly;
- `force_n`: |F| of the wrist force averaged over the control period [N];
- `peak_force_n`: the largest |F| within the control period [N] (the force-limit check);
- `InsertionLimits`: the plug's success depth (from its spec), the episode's `max_steps`,
  the force reference and the force limit.

Per control step (`RewardConfig`):

    depth_left = max(0, success_depth - depth)
    cost = min(max_step_cost, (w_xy·lateral + w_z·depth_left)/dist_ref
                              + w_yaw·yaw/yaw_ref + w_force·(force/force_ref)²)
    success   = depth >= success_depth and lateral <= success_radius and yaw <= success_yaw
    violation = peak_force > force_limit
    r = -cost - violation_penalty(max_steps)    on the step that violates
    r = -cost + success_bonus·success           otherwise

The lateral and yaw terms pull towards the *believed* socket: a prior, not the truth. What
tells the hole apart is depth (a plug only goes below the face where the hole is) and the
success bonus. Two tasks that differ only in the hidden socket error give identical rewards
for identical measurements (tests/sim/test_reward.py; ../shared/checks/reward_invariance.py).
The true socket pose may still train a critic or a teacher in simulation, never this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field

from zshot.config import StrictModel

__all__ = [
    "REWARD_DEFINITION",
    "InsertionLimits",
    "InsertionMeasurement",
    "RewardConfig",
    "insertion_reward",
    "insertion_success",
    "reward_manifest",
]

REWARD_DEFINITION = "zshot.reward.insertion/v1"
"""Name and version of the definition above (the manifest's `env.reward.definition`)."""


class RewardConfig(StrictModel):
    """Weights and thresholds of the insertion reward (module docstring for the formula).

    A violation costs `safety_penalty + max_steps · max_step_cost`: more than any episode
    without a violation can cost (at most max_steps · max_step_cost), so ending an episode
    by force is never cheaper than searching until the time limit (the first PEARL run
    learned exactly that with a penalty of 10; BENCHMARKS.md `## training`).
    """

    w_xy: float = Field(default=1.0, ge=0)
    w_z: float = Field(default=1.0, ge=0)
    w_yaw: float = Field(default=0.3, ge=0)
    w_force: float = Field(default=0.05, ge=0)
    dist_ref: float = Field(default=0.01, gt=0, le=1.0)
    """m; a distance of dist_ref costs w per step."""
    yaw_ref: float = Field(default=0.0873, gt=0, le=math.pi)
    """rad (5°)."""
    success_bonus: float = Field(default=10.0, ge=0, le=1e6)
    """Added on the step that succeeds (not when that step also violates the force limit)."""
    max_step_cost: float = Field(default=4.0, gt=0, le=1e6)
    """Clip on the per-step shaping cost. 4 is above every start pose of the shipped plugs
    (depth_left <= 30 mm = 3.0, plus ~0.5 from xy/yaw), so the clip only bounds a plug that
    wanders away; it makes the worst episode cost finite: max_steps · max_step_cost."""
    safety_penalty: float = Field(default=10.0, gt=0, le=1e6)
    """Margin by which a violation costs more than the worst non-violating episode."""
    success_radius: float = Field(default=0.005, gt=0, le=0.05)
    """m; depth counts as inserted only within this lateral distance of the believed socket
    (5 mm: the `hard` profile's largest error, 2.8 mm, plus the 2 mm a plug may sit off its
    hole; every shipped socket face extends >= 8 mm beyond its cavities, so a plug cannot
    reach depth beside the socket inside this radius)."""
    success_yaw: float = Field(default=0.1396, gt=0, le=math.pi)
    """rad (8°): the `hard` profile's 3° plus 5° of play."""

    def violation_penalty(self, max_steps: int) -> float:
        """Total penalty on the violating step: safety_penalty + max_steps · max_step_cost."""
        return self.safety_penalty + max_steps * self.max_step_cost


@dataclass(frozen=True)
class InsertionMeasurement:
    """What a robot measures at the end of a control step (module docstring for each field)."""

    lateral_m: float
    yaw_rad: float
    depth_m: float
    force_n: float
    peak_force_n: float

    def __post_init__(self) -> None:
        values = (self.lateral_m, self.yaw_rad, self.depth_m, self.force_n, self.peak_force_n)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"insertion measurement must be finite, got {self}")
        if self.lateral_m < 0 or self.yaw_rad < 0 or self.force_n < 0 or self.peak_force_n < 0:
            raise ValueError(f"lateral, yaw and forces are magnitudes (>= 0), got {self}")


@dataclass(frozen=True)
class InsertionLimits:
    """The plug's and the cell's numbers the reward needs besides the weights."""

    success_depth_m: float
    """m of insertion that counts as inserted (the plug spec's `effective_success_depth`)."""
    max_steps: int
    """Episode time limit in control steps (sizes the violation penalty)."""
    force_ref_n: float = 20.0
    """N; the force term is (|F| / force_ref)²."""
    force_limit_n: float = 40.0
    """N; a peak wrist force above this is a violation (ends the episode)."""


def insertion_success(cfg: RewardConfig, m: InsertionMeasurement, success_depth_m: float) -> bool:
    """Inserted: deep enough, within `success_radius` and `success_yaw` of the believed socket."""
    return (
        m.depth_m >= success_depth_m
        and m.lateral_m <= cfg.success_radius
        and m.yaw_rad <= cfg.success_yaw
    )


def insertion_reward(
    cfg: RewardConfig, m: InsertionMeasurement, limits: InsertionLimits
) -> tuple[float, bool, bool]:
    """(reward, success, violation) of one control step, from the measurement alone."""
    success = insertion_success(cfg, m, limits.success_depth_m)
    violation = m.peak_force_n > limits.force_limit_n
    depth_left = max(0.0, limits.success_depth_m - m.depth_m)
    f = m.force_n / limits.force_ref_n
    cost = (cfg.w_xy * m.lateral_m + cfg.w_z * depth_left) / cfg.dist_ref
    cost += cfg.w_yaw * m.yaw_rad / cfg.yaw_ref + cfg.w_force * f * f
    cost = min(cost, cfg.max_step_cost)
    if violation:
        # more than any non-violating episode can cost: pushing past the force limit must
        # never be a shortcut out of a long search
        return float(-cost - cfg.violation_penalty(limits.max_steps)), success, True
    return float(-cost + (cfg.success_bonus if success else 0.0)), success, False


def reward_manifest(
    cfg: RewardConfig, max_steps: int, force_ref_n: float, force_limit_n: float
) -> dict[str, object]:
    """What the manifest states about the reward its context was trained on (`env.reward`)."""
    return {
        "definition": REWARD_DEFINITION,
        "params": cfg.model_dump(mode="json"),
        "max_steps": int(max_steps),
        "force_ref_n": float(force_ref_n),
        "force_limit_n": float(force_limit_n),
        "success_depth": "the plug spec's effective_success_depth",
        "doc": "docs/PROTOCOL.md, section Reward",
    }
