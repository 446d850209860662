"""Training configuration; defaults live here, `configs/train/*.yaml` override."""

from __future__ import annotations

from pydantic import Field

from zshot.config import StrictModel


class TrainConfig(StrictModel):
    """A meta-training run."""

    seed: int = 0
    total_steps: int = Field(100_000, ge=1)


class CollectConfig(StrictModel):
    """An offline data-collection run."""

    seed: int = 0
    episodes_per_task: int = Field(10, ge=1)
