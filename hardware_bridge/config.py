"""Hardware-bridge configuration: limits and rates are data, never literals in code."""

from __future__ import annotations

from pydantic import Field

from zshot.config import StrictModel


class TrialsConfig(StrictModel):
    """A few-shot trial session: which plugs, how many episodes, where the runtime is."""

    runtime: str = "tcp://127.0.0.1:5555"
    """Endpoint of the zshot runtime."""
    robot: str = Field("sim", pattern="^(sim|mock|ur)$")
    """Which Robot adapter: sim (PyBullet), mock (tests), ur (Universal Robots via ur_rtde)."""
    plugs: list[str] = Field(default_factory=lambda: ["US-AC-plug", "EU-AC-plug", "Metal-peg-rd"])
    adapt_episodes: int = Field(3, ge=0, le=100)
    """K exploration episodes (posterior sampling) before evaluation."""
    eval_episodes: int = Field(10, ge=1, le=10_000)
    """N evaluation episodes with z = posterior mean."""
    seed: int = 0
