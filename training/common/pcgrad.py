"""PCGrad: Yu, Kumar, Gupta, Levine, Hausman, Finn (2020), "Gradient Surgery for Multi-Task
Learning", NeurIPS, arXiv 2001.06782.

For each task i, against the other tasks j in a random order: when g_i . g_j < 0 (the two
conflict), remove from g_i its component along g_j,

    g_i <- g_i - (g_i . g_j / |g_j|^2) g_j

(g_i the projection so far, g_j the other task's original gradient, paper Algorithm 1); the
step's gradient is the sum of the projected task gradients. Gradients that conflict with no
other task are left as they are, so without conflicts PCGrad is the plain summed gradient.

It lives in training/common/ beside the learner step it plugs into
(training/common/learner.py `GradTransform`): any algorithm whose losses come as per-task
terms (T,) can use it, and algorithms never import each other (docs/INTERFACES.md).

`project_conflicting` is the projection on flat (T, P) task gradients; `PCGrad` is the
`grad_transform` for `learner_step`, which flattens each learner's per-task gradients
(`task_grads`), projects them and hands back their sum per parameter.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import Tensor

from training.common.learner import task_grads


def project_conflicting(grads: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The PCGrad projection of task gradients `grads` (T, P): row i is g_i projected, in a
    random order of the other tasks (drawn from `generator`), onto the normal plane of every
    original g_j it conflicts with (g_i . g_j < 0). Returns (T, P); sum the rows for the step.
    Computed in float64 and returned in the input's dtype."""
    if grads.dim() != 2:
        raise ValueError(f"task gradients must be (T, P), got shape {tuple(grads.shape)}")
    g = grads.detach().to(torch.float64)
    T = g.shape[0]
    norms = (g * g).sum(1)  # |g_j|^2
    out = g.clone()
    for i in range(T):
        for j in torch.randperm(T, generator=generator).tolist():
            if j == i or norms[j] == 0:
                continue
            dot = out[i] @ g[j]
            if dot < 0:
                out[i] = out[i] - (dot / norms[j]) * g[j]
    return out.to(grads.dtype)


class PCGrad:
    """A `grad_transform` (training/common/learner.py) applying PCGrad to learners whose
    loss comes as per-task terms (T,); scalar losses keep the default gradient.

    `learners`: the learner names to project (None: every learner with per-task terms).
    `seed`: the random task orders come from a generator seeded with it, so a run's steps
    are reproducible."""

    def __init__(self, learners: Collection[str] | None = None, seed: int = 0) -> None:
        self.learners = None if learners is None else frozenset(learners)
        self.generator = torch.Generator().manual_seed(seed)
        self.conflicts = 0
        """Conflicting task pairs (i, j) seen so far, by the original gradients (logging)."""

    def __call__(
        self, name: str, loss: Tensor, params: Sequence[torch.nn.Parameter]
    ) -> list[Tensor | None] | None:
        """The summed projected task gradients of `loss` (T,) per parameter; None (the
        default gradient) for a scalar loss or a learner not in `learners`."""
        if loss.dim() != 1 or (self.learners is not None and name not in self.learners):
            return None
        per_task = task_grads(loss, params)
        reached = [any(g[k] is not None for g in per_task) for k in range(len(params))]
        flat = torch.stack(
            [
                torch.cat(
                    [
                        (torch.zeros_like(p) if gk is None else gk).reshape(-1)
                        for p, gk in zip(params, g, strict=True)
                    ]
                )
                for g in per_task
            ]
        )
        dots = flat.detach().to(torch.float64) @ flat.detach().to(torch.float64).T
        self.conflicts += int(torch.triu(dots < 0, diagonal=1).sum())
        total = project_conflicting(flat, self.generator).sum(0)
        out: list[Tensor | None] = []
        start = 0
        for p, hit in zip(params, reached, strict=True):
            n = p.numel()
            out.append(total[start : start + n].reshape(p.shape) if hit else None)
            start += n
        return out
