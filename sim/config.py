"""Simulation configuration; defaults live here, `configs/sim/*.yaml` override."""

from __future__ import annotations

from pydantic import Field

from zshot.config import StrictModel


class InsertionEnvConfig(StrictModel):
    """The insertion environment's rates and limits."""

    control_hz: float = Field(10.0, gt=0, le=1000)
    """Control rate of the policy (the ODA robot ran at 10 Hz)."""
    max_steps: int = Field(100, ge=1)
    """Episode time limit in control steps."""
