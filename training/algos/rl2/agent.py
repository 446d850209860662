"""An RL² run's torch policy as a few-shot agent: training/common/agents.py's
`RecurrentAgent` over the step graph export.py exports (so the torch agent and the served
artifact compute the same function), its hidden state kept across a task's episodes."""

from __future__ import annotations

import numpy as np
from torch import nn

from training.algos.rl2.networks import RL2Nets
from training.common.agents import RecurrentAgent, torch_step
from training.common.onnx_export import RecurrentStepGraph
from training.config import TrainConfig


def step_graph(nets: RL2Nets) -> RecurrentStepGraph:
    """The policy's step with the action scaled to [-1, 1] (the trainers' normalised action
    space: open_run refuses others)."""
    ones = np.ones(nets.act_dim, np.float32)
    return RecurrentStepGraph(nets.policy, -ones, ones).eval()


def rl2_agent(nets: nn.Module, cfg: TrainConfig) -> RecurrentAgent:
    """`nets` (an RL2Nets) as a `RecurrentAgent` (torch); `cfg` is unused."""
    if not isinstance(nets, RL2Nets):
        raise TypeError(f"rl2_agent needs RL2Nets, got {type(nets).__name__}")
    return RecurrentAgent(torch_step(step_graph(nets)), nets.obs_dim, nets.act_dim, nets.hidden_dim)
