"""The learner step (training/common/learner.py): own-parameter gradients, the gradient-transform
hook, and the per-task loss terms it receives from PEARL and offline PEARL."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from tests.training.conftest import random_batch, tiny_config
from training.algos.offline_pearl import losses as offline
from training.algos.offline_pearl.networks import make_nets as make_offline_nets
from training.algos.pearl.losses import PearlOptimizers, pearl_losses
from training.algos.pearl.losses import pearl_update as update
from training.algos.pearl.networks import make_nets
from training.common.batches import MetaBatch as PearlBatch
from training.common.learner import Learner, learner_step, loss_grads, task_grads, task_reducer

OBS, ACT, T = 3, 2, 3


def _batch() -> PearlBatch:
    batch: PearlBatch = random_batch(OBS, ACT, T)
    return batch


def _pearl(**over: object) -> tuple[Any, Any, Any]:
    cfg = tiny_config(sac={"hidden": [16], "auto_entropy": True}, **over)
    torch.manual_seed(0)
    nets = (make_offline_nets if "offline" in over else make_nets)(OBS, ACT, cfg)
    return cfg, nets, PearlOptimizers.create(nets, cfg)


def _params(nets: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in nets.named_parameters()}


def test_a_transform_that_zeroes_every_gradient_leaves_the_weights_unchanged() -> None:
    cfg, nets, opts = _pearl()
    before = _params(nets)
    calls: dict[str, tuple[int, ...]] = {}

    def zero(name: str, loss: Tensor, params: Sequence[torch.nn.Parameter]) -> list[Tensor]:
        calls[name] = tuple(loss.shape)
        return [torch.zeros_like(p) for p in params]

    update(_batch(), nets, opts, cfg, grad_transform=zero)
    # every learner went through the hook, each with its per-task loss terms (T,)
    assert calls == {"critic": (T,), "encoder": (T,), "policy": (T,), "alpha": (T,)}
    after = _params(nets)
    assert all(torch.equal(before[k], after[k]) for k in before)  # Adam on 0 moves nothing
    # ... while the plain step (no hook) moves every learner, and the targets after the Qs
    update(_batch(), nets, opts, cfg)
    moved = {k.split(".")[0] for k, v in _params(nets).items() if not torch.equal(v, after[k])}
    assert moved == {"encoder", "policy", "qf1", "qf2", "target_qf1", "target_qf2", "log_alpha"}


def test_a_transform_of_one_learner_changes_only_that_learner() -> None:
    cfg, nets, opts = _pearl()
    plain_nets = copy.deepcopy(nets)
    plain_opts = PearlOptimizers.create(plain_nets, cfg)

    def freeze_policy(name: str, loss: Tensor, params: Sequence[Any]) -> list[Tensor] | None:
        return [torch.zeros_like(p) for p in params] if name == "policy" else None

    before = _params(nets)
    torch.manual_seed(1)
    update(_batch(), nets, opts, cfg, grad_transform=freeze_policy)
    torch.manual_seed(1)
    update(_batch(), plain_nets, plain_opts, cfg)
    hooked, plain = _params(nets), _params(plain_nets)
    for k in before:
        if k.startswith("policy."):
            assert torch.equal(hooked[k], before[k]), k
        else:  # the others: the default gradient (of the summed per-task terms)
            assert not torch.equal(hooked[k], before[k]), k
            torch.testing.assert_close(hooked[k], plain[k], msg=k)


def test_summed_per_task_gradients_give_the_plain_step() -> None:
    """What gradient surgery starts from: the per-task gradients (`task_grads`) of every
    learner sum to its plain gradient, so a transform that sums them is the plain update."""
    cfg, nets, opts = _pearl()
    plain_nets = copy.deepcopy(nets)
    plain_opts = PearlOptimizers.create(plain_nets, cfg)
    seen: list[str] = []

    def summed(name: str, loss: Tensor, params: Sequence[torch.nn.Parameter]) -> list[Any]:
        seen.append(name)
        per_task = task_grads(loss, params)
        assert len(per_task) == T
        return [
            None if all(g[i] is None for g in per_task) else sum(g[i] for g in per_task)
            for i in range(len(params))
        ]

    torch.manual_seed(1)
    update(_batch(), nets, opts, cfg, grad_transform=summed)
    torch.manual_seed(1)
    update(_batch(), plain_nets, plain_opts, cfg)
    assert sorted(seen) == ["alpha", "critic", "encoder", "policy"]
    hooked, plain = _params(nets), _params(plain_nets)
    for k in plain:
        torch.testing.assert_close(hooked[k], plain[k], msg=k)


def _task_data() -> tuple[offline.TaskInference, np.ndarray]:
    data = SimpleNamespace(
        tasks=[SimpleNamespace(label=f"t{i}", task={"g": 0.3 * i}) for i in range(4)]
    )
    return offline.TaskInference(data, ["g"], 3, 1e-3), np.array([2, 0, 3])


def _all_losses(kind: str, batch: PearlBatch, per_task: bool) -> tuple[Any, tuple[str, ...]]:
    if kind == "pearl":
        cfg, nets, _ = _pearl()
        return pearl_losses(batch, nets, cfg, per_task=per_task), (
            "qf_loss",
            "policy_loss",
            "kl_div",
            "alpha_loss",
        )
    critic = "iql" if kind == "iql" else "awac"
    cfg, nets, _ = _pearl(offline={"critic": critic})
    task, tasks = _task_data()
    out = offline.offline_pearl_losses(
        batch, nets, cfg, task.head, task.targets_for(tasks), per_task=per_task
    )
    return out, ("qf_loss", "v_loss", "policy_loss", "kl_div", "task_loss")


@pytest.mark.parametrize("kind", ["pearl", "awac", "iql"])
def test_per_task_terms_sum_to_the_scalar_losses(kind: str) -> None:
    torch.manual_seed(3)
    scalar, names = _all_losses(kind, _batch(), per_task=False)
    torch.manual_seed(3)  # the same samples: per_task changes the reduction only
    terms, _ = _all_losses(kind, _batch(), per_task=True)
    for name in names:
        s, t = getattr(scalar, name), getattr(terms, name)
        assert s.shape == () and t.shape == (T,), name
        torch.testing.assert_close(t.sum(), s, msg=name)
    for name in ("z_mean", "z_var", "q_mean"):  # diagnostics are the same either way
        assert torch.equal(getattr(scalar, name), getattr(terms, name)), name


@pytest.mark.parametrize("kind", ["pearl", "awac", "iql"])
def test_a_task_term_depends_on_that_tasks_data_alone(kind: str) -> None:
    b = _batch()
    other = b._replace(
        **{f: getattr(b, f).clone() for f in ("obs", "rewards", "next_obs", "context")}
    )
    for f in ("obs", "rewards", "next_obs", "context"):
        getattr(other, f)[0] += 1.0  # task 0 changes, tasks 1 and 2 keep their data
    torch.manual_seed(3)
    first, names = _all_losses(kind, b, per_task=True)
    torch.manual_seed(3)
    second, _ = _all_losses(kind, other, per_task=True)
    for name in names:
        a, c = getattr(first, name), getattr(second, name)
        torch.testing.assert_close(a[1:], c[1:], msg=name)
    assert not torch.equal(first.qf_loss[0], second.qf_loss[0])


def test_offline_update_sends_every_learner_through_the_hook() -> None:
    cfg, nets, opts = _pearl(offline={"critic": "iql"})
    task, tasks = _task_data()
    before = {**_params(nets), **{f"head.{k}": v for k, v in _params(task.head).items()}}
    calls: dict[str, tuple[int, ...]] = {}

    def zero(name: str, loss: Tensor, params: Sequence[torch.nn.Parameter]) -> list[Tensor]:
        calls[name] = tuple(loss.shape)
        return [torch.zeros_like(p) for p in params]

    logs = offline.offline_update(_batch(), nets, opts, cfg, task, tasks, grad_transform=zero)
    assert calls == {"critic": (T,), "encoder": (T,), "policy": (T,), "task_head": (T,)}
    assert all(np.isfinite(v) for v in logs.values())
    after = {**_params(nets), **{f"head.{k}": v for k, v in _params(task.head).items()}}
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_learner_step_trains_each_parameter_with_its_own_loss_only() -> None:
    """Two learners whose losses share a graph: SGD moves each by its own loss's gradient."""
    a = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    b = torch.nn.Parameter(torch.tensor([0.5]))
    loss_a = (a * b).sum() ** 2  # reaches b as well, but b is not a's learner
    loss_b = (b - a.sum()) ** 2
    want_a = a - 0.1 * torch.autograd.grad(loss_a, a, retain_graph=True)[0]
    want_b = b - 0.1 * torch.autograd.grad(loss_b.sum(), b, retain_graph=True)[0]
    learner_step(
        [
            Learner("a", loss_a, [a], torch.optim.SGD([a], lr=0.1)),
            Learner("b", loss_b, [b], torch.optim.SGD([b], lr=0.1)),
        ]
    )
    torch.testing.assert_close(a.detach(), want_a.detach())
    torch.testing.assert_close(b.detach(), want_b.detach())


def test_learner_step_refuses_shared_parameters_and_wrong_gradient_counts() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    loss = (p**2).sum()
    with pytest.raises(ValueError, match="already belongs to 'one'"):
        learner_step([Learner("one", loss, [p], opt), Learner("two", loss, [p], opt)])
    with pytest.raises(ValueError, match="gave 0 gradients for learner 'one'"):
        learner_step([Learner("one", loss, [p], opt)], lambda name, loss, params: [])
    with pytest.raises(ValueError, match=r"per-task terms \(T,\)"):
        task_grads(loss, [p])
    assert torch.equal(p.detach(), torch.ones(2))  # nothing was stepped


def test_task_reducer_and_loss_grads() -> None:
    x = torch.arange(12.0).reshape(6, 2)  # 3 tasks of 2 rows
    assert task_reducer(3, False) is torch.mean
    terms = task_reducer(3, True)(x)
    torch.testing.assert_close(terms, torch.tensor([1.5, 5.5, 9.5]) / 3)
    torch.testing.assert_close(terms.sum(), x.mean())
    p, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(1))
    g = loss_grads(torch.stack([(2 * p).sum(), (3 * p).sum()]), [p, unused])
    assert g[1] is None and g[0] is not None
    torch.testing.assert_close(g[0], torch.full((2,), 5.0))
