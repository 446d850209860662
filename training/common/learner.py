"""One learner step for every algorithm: each loss trains its own parameters only.

A step is a list of `Learner`s (name, loss, parameters, optimizer). `learner_step`
differentiates every loss with respect to its own learner's parameters only
(`torch.autograd.grad(loss, params)`: the actor's Q terms never reach Q, whatever the graph
shares), takes all gradients before any optimizer steps (a step changes weights in place that
the other losses' graphs still hold), then steps each optimizer with its gradient.

The seam for gradient surgery (PCGrad, Yu et al. 2020; Distral, Teh et al. 2017) is
`grad_transform(name, loss, params) -> grads | None`: called once per learner before the
steps, with the learner's loss as per-task terms (T,) when the algorithm's losses were built
per task (`pearl_losses(..., per_task=True)`); it returns one gradient per parameter (None for
none) or None to keep the default, the gradient of the summed terms. `task_grads` gives the
per-task gradients such a transform starts from.

Per-task terms follow one convention (`task_reducer`): a loss that is a mean over the T*B rows
of a meta-batch becomes T terms, each task's mean divided by T, so the terms sum to the mean
and the default gradient of a per-task step is the gradient of the scalar loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Grads = list[Tensor | None]
"""One gradient per parameter, None where the loss does not reach it (the optimizer skips it)."""

GradTransform = Callable[
    [str, Tensor, Sequence[torch.nn.Parameter]], Sequence[Tensor | None] | None
]
"""(learner name, its loss: a scalar or per-task terms (T,), its parameters) -> one gradient
per parameter, or None for the default gradient of the summed loss."""


@dataclass(frozen=True)
class Learner:
    """One learner of a step: the loss that trains `params`, stepped by `optimizer`.

    Learners may share one loss tensor (PEARL's critic loss trains the Q networks and the
    encoder): it is then differentiated once for all of them. A parameter belongs to one
    learner only."""

    name: str
    loss: Tensor
    """A scalar, or per-task terms (T,) whose sum is the learner's loss."""
    params: Sequence[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer


def task_reducer(tasks: int, per_task: bool) -> Callable[[Tensor], Tensor]:
    """The reduction of a loss over the rows of a meta-batch of `tasks` tasks, row r from task
    r // (rows / tasks): the mean (a scalar, `torch.mean` itself), or with `per_task` (T,)
    terms, each task's mean / T, which sum to that mean."""
    if not per_task:
        return torch.mean
    return lambda x: x.reshape(tasks, -1).mean(1) / tasks


def loss_grads(loss: Tensor, params: Sequence[torch.nn.Parameter]) -> Grads:
    """d loss / d params (per-task terms summed first), keeping the graph for other losses."""
    total = loss if loss.dim() == 0 else loss.sum()
    return list(torch.autograd.grad(total, list(params), retain_graph=True, allow_unused=True))


def task_grads(loss: Tensor, params: Sequence[torch.nn.Parameter]) -> list[Grads]:
    """The gradient of each per-task term of `loss` (T,) alone: T lists, one per task (what
    gradient surgery projects); their sum is `loss_grads(loss, params)`."""
    if loss.dim() != 1:
        raise ValueError(
            f"per-task gradients need per-task terms (T,), got shape {tuple(loss.shape)}"
        )
    return [loss_grads(term, params) for term in loss]


def soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """Polyak averaging: target <- (1 - tau) target + tau source."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)


def learner_step(learners: Sequence[Learner], grad_transform: GradTransform | None = None) -> None:
    """Differentiate each learner's loss into its own parameters only, let `grad_transform`
    replace any learner's gradient, then step every optimizer (see the module docstring)."""
    owner: dict[int, str] = {}
    for learner in learners:
        for p in learner.params:
            if owner.setdefault(id(p), learner.name) != learner.name:
                raise ValueError(
                    f"a parameter of learner {learner.name!r} already belongs to {owner[id(p)]!r}"
                )

    grads: list[Grads | None] = [None] * len(learners)
    if grad_transform is not None:
        for i, learner in enumerate(learners):
            out = grad_transform(learner.name, learner.loss, learner.params)
            if out is None:
                continue
            if len(out) != len(learner.params):
                raise ValueError(
                    f"grad_transform gave {len(out)} gradients for learner {learner.name!r}, "
                    f"which has {len(learner.params)} parameters"
                )
            grads[i] = list(out)

    # The default gradients: one pass per distinct loss over all its learners' parameters.
    shared: dict[int, list[int]] = {}
    for i, learner in enumerate(learners):
        if grads[i] is None:
            shared.setdefault(id(learner.loss), []).append(i)
    for group in shared.values():
        params = [p for i in group for p in learners[i].params]
        flat = loss_grads(learners[group[0]].loss, params)
        start = 0
        for i in group:
            n = len(learners[i].params)
            grads[i] = flat[start : start + n]
            start += n

    for learner, learner_grads in zip(learners, grads, strict=True):
        learner.optimizer.zero_grad(set_to_none=True)
        for p, g in zip(learner.params, learner_grads or [], strict=True):
            p.grad = g
        learner.optimizer.step()
