"""Shared helpers of the training tests: the tiny toy-task config (tests/conftest.py trains
and exports it once per session: `trained_run`, `exported_artifact`), recorded steps, and
probes of what a learner step and a Bellman target really computed."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from training.config import TrainConfig
from zshot import parallel

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "train" / "smoke.yaml"


@pytest.fixture(scope="module")
def local_ray() -> Any:
    """A local Ray of 2 CPUs for one test module (the `ray` extra; `make setup` installs it,
    so CI runs the tests that use it), shut down after it."""
    ray = pytest.importorskip("ray")
    parallel.init_ray(2)
    yield ray
    ray.shutdown()


def tiny_config(**over: object) -> TrainConfig:
    """A toy-task config small enough for a unit test (a second or two)."""
    base: dict[str, object] = {
        "env": "point",
        "iterations": 2,
        "initial_steps": 20,
        "tasks_per_iteration": 2,
        "steps_prior": 20,
        "steps_extra_posterior": 20,
        "updates_per_iteration": 10,
        "meta_batch": 3,
        "batch_size": 16,
        "context_size": 8,
        "buffer_capacity": 500,
        "num_train_tasks": 5,
        "sac": {"hidden": [32, 32]},
        "encoder": {"hidden": [32], "latent_dim": 3},
        "eval": {"explore_episodes": 1, "eval_episodes": 1, "max_tasks": 2},
        "eval_every": 0,
        "checkpoint_every": 1,
    }
    base.update(over)
    return TrainConfig.model_validate(base)


def record_step_grads(optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, list[Any]]:
    """The gradients each optimizer steps with (name -> one per parameter, None where
    absent), recorded by a pre-step hook: what a learner step really applied."""
    seen: dict[str, list[Any]] = {}
    for name, opt in optimizers.items():

        def hook(o: torch.optim.Optimizer, args: Any, kwargs: Any, name: str = name) -> None:
            seen[name] = [
                None if p.grad is None else p.grad.detach().clone()
                for group in o.param_groups
                for p in group["params"]
            ]

        opt.register_step_pre_hook(hook)
    return seen


def assert_grads_of(
    got: list[Any], loss: Tensor, params: Sequence[torch.nn.Parameter], what: str
) -> None:
    """`got` is the gradient of `loss` alone with respect to `params` (no other loss's)."""
    want = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        g = torch.zeros_like(params[i]) if g is None else g
        w = torch.zeros_like(params[i]) if w is None else w
        torch.testing.assert_close(g, w, msg=lambda m, i=i: f"{what}, parameter {i}: {m}")


def random_batch(
    obs_dim: int, act_dim: int, T: int = 3, B: int = 6, C: int = 4, seed: int = 0
) -> Any:
    """A synthetic PEARL meta-batch (T tasks, B transitions, C context rows), 30 % terminal."""
    from training.common.batches import MetaBatch

    g = torch.Generator().manual_seed(seed)
    return MetaBatch(
        obs=torch.randn(T, B, obs_dim, generator=g),
        actions=torch.tanh(torch.randn(T, B, act_dim, generator=g)),
        rewards=torch.randn(T, B, 1, generator=g),
        next_obs=torch.randn(T, B, obs_dim, generator=g),
        dones=(torch.rand(T, B, 1, generator=g) < 0.3).float(),
        context=torch.randn(T, C, 2 * obs_dim + act_dim + 1, generator=g),
    )


def assert_terminals_back_up_the_reward(
    nets: Any, batch: Any, reward_scale: float, critic_loss: Callable[[Any], tuple[Tensor, Tensor]]
) -> None:
    """`critic_loss(batch)` -> (the critic loss, its part other than the twin-Q Bellman
    error, e.g. iql's V loss). With dones = 1 the Bellman error's target is
    reward_scale * r exactly (computed here by hand from the loss's own Q predictions),
    whatever s' and the bootstrap networks are; with dones = 0 it bootstraps, so the
    check has teeth. The target Qs (and V) get large random weights and s' is scaled up,
    so any bootstrap term is far from zero."""
    with torch.no_grad():
        for m in (nets.target_qf1, nets.target_qf2, getattr(nets, "vf", None)):  # V: iql only
            for p in m.parameters() if m is not None else ():
                p.normal_(0.0, 3.0)
    far = batch._replace(next_obs=100.0 * batch.next_obs)
    for done, terminal in ((1.0, True), (0.0, False)):
        this = far._replace(dones=torch.full_like(far.dones, done))
        with q_of_batch(nets, this) as q:
            loss, other = critic_loss(this)
        by_hand = terminal_qf_loss(q, this, reward_scale) + other
        assert torch.allclose(loss, by_hand) == terminal, f"dones={done}"


@contextmanager
def q_of_batch(nets: Any, batch: Any) -> Iterator[list[Tensor]]:
    """Capture Q1(s, a, z) and Q2(s, a, z) of the batch's own (s, a) while a loss runs:
    [q1, q2], each (T*B, 1), from forward hooks (whatever z the loss sampled)."""
    obs = batch.obs.reshape(-1, batch.obs.shape[-1])
    act = batch.actions.reshape(-1, batch.actions.shape[-1])
    first: dict[int, Tensor] = {}
    out: list[Tensor] = []

    def hook(module: torch.nn.Module, args: tuple[Tensor, ...], result: Tensor) -> None:
        # the first call on (s, a) is the critic's prediction (awac's advantage comes later)
        if id(module) not in first and torch.equal(args[0], obs) and torch.equal(args[1], act):
            first[id(module)] = result.detach()

    handles = [nets.qf1.register_forward_hook(hook), nets.qf2.register_forward_hook(hook)]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()
    assert len(first) == 2, "the loss did not evaluate Q1 and Q2 on the batch's (s, a)"
    out.extend([first[id(nets.qf1)], first[id(nets.qf2)]])


def terminal_qf_loss(q: list[Tensor], batch: Any, reward_scale: float) -> Tensor:
    """The twin-Q loss when every transition is terminal: target = reward_scale * r exactly,
    computed by hand."""
    target = reward_scale * batch.rewards.reshape(-1, 1)
    return ((q[0] - target) ** 2).mean() + ((q[1] - target) ** 2).mean()


def recorded_step(
    t: int,
    terminated: bool,
    *,
    obs_dim: int = 3,
    act: float = 0.5,
    commanded: float = 0.0,
    t_wall: float = 0.0,
    latent_dim: int = 2,
) -> Any:
    """One `StepRecord` for recorder-based tests: obs = t, next obs = t + 1, reward -1."""
    import numpy as np

    from hardware_bridge.loop import StepRecord

    return StepRecord(
        t_wall=t_wall,
        t_mono=float(t),
        obs=np.full(obs_dim, t, np.float32),
        commanded=np.full(2, commanded),
        sent=np.full(2, act),
        reward=-1.0,
        terminated=terminated,
        truncated=False,
        next_obs=np.full(obs_dim, t + 1, np.float32),
        z_mean=np.zeros(latent_dim),
        z_var=np.ones(latent_dim),
        latency_s=0.001,
        flags=0,
        wrench=np.zeros(6),
    )


def assert_resume_is_bit_for_bit(
    make: Callable[[TrainConfig, Path], Any], cfg: TrainConfig, tmp_path: Path
) -> tuple[Any, Any]:
    """`make(cfg, run_dir)` (a trainer class) run whole against run for one iteration,
    then resumed from its checkpoint to the end: the networks must be equal bit for bit.
    Returns (whole, resumed)."""
    whole = make(cfg, tmp_path / "whole")
    whole.run(progress=False)
    first = make(cfg.model_copy(update={"iterations": 1}), tmp_path / "half")
    first.run(progress=False)
    second = make(cfg, tmp_path / "half")
    second.load_checkpoint()
    second.run(progress=False)
    for (k, a), b in zip(
        whole.nets.state_dict().items(), second.nets.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    return whole, second


def grads_reach(loss: Tensor, params: Sequence[torch.nn.Parameter]) -> list[bool]:
    """Per parameter: whether `loss` has a non-zero gradient there (graph kept)."""
    got = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return [g is not None and bool(g.abs().sum() > 0) for g in got]


def multitask_batch(
    obs_dim: int,
    act_dim: int,
    T: int = 3,
    B: int = 6,
    seed: int = 0,
    tasks: tuple[int, ...] = (4, 0, 2),
) -> Any:
    """A synthetic multi-task batch (`training.common.multitask.MTBatch`): T tasks x B
    transitions, 30 % terminal, row t from train task `tasks[t]`."""
    from training.common.multitask import MTBatch

    b = random_batch(obs_dim, act_dim, T, B, 1, seed)  # the same draws; its context unused
    return MTBatch(b.obs, b.actions, b.rewards, b.next_obs, b.dones, torch.tensor(tasks[:T]))


def reached(loss: Tensor, groups: dict[str, list[torch.nn.Parameter]]) -> set[str]:
    """The names of the parameter groups `loss` has a non-zero gradient in (graph kept)."""
    out = set()
    for name, params in groups.items():
        trainable = [p for p in params if p.requires_grad]
        if any(grads_reach(loss, trainable)):
            out.add(name)
    return out


def assert_learners_stepped(
    seen: dict[str, list[Any]], learners: Sequence[Any], pcgrad_seed: int | None
) -> None:
    """What `record_step_grads` saw each learner step with is the gradient of its own
    loss alone, or with `pcgrad_seed` PCGrad's projection of it (a fresh `PCGrad` of that
    seed, its draws in the learners' order); a parameter without a gradient (a task policy
    absent from the batch) must have none or a zero one."""
    from training.common.pcgrad import PCGrad

    assert sorted(seen) == sorted(lr.name for lr in learners)
    expected = None if pcgrad_seed is None else PCGrad(seed=pcgrad_seed)
    for learner in learners:
        if expected is None:
            assert_grads_of(seen[learner.name], learner.loss, learner.params, learner.name)
            continue
        g = expected(learner.name, learner.loss, learner.params)
        assert g is not None
        for got, w in zip(seen[learner.name], g, strict=True):
            if got is None:
                assert w is None or torch.all(w == 0)
            else:
                torch.testing.assert_close(got, w, msg=learner.name)


def assert_runtime_serves_one_hot_policy(
    artifact: Path, policy: Any, num_tasks: int, tasks: Sequence[int], obs: Any
) -> None:
    """The runtime serving the conditioned `artifact`, told each of `tasks`' one-hot ids
    with RESET_TASK, steps `obs` to `policy`'s (torch) deterministic action."""
    import numpy as np

    from runtime.client import RuntimeClient
    from runtime.config import ServeConfig
    from runtime.model import LoadedModel
    from runtime.server import RuntimeServer

    server = RuntimeServer(
        LoadedModel.load(artifact, ServeConfig()), ServeConfig(seed=0, poll_interval_s=0.01)
    )
    server.bind("tcp://127.0.0.1:*")
    server.start()
    client = RuntimeClient(server.endpoint, timeout_s=5.0)
    try:
        client.hello()
        for task in tasks:
            d = np.eye(num_tasks, dtype=np.float32)[task]
            client.reset_task(descriptor=d)
            with torch.no_grad():
                want, _ = policy.sample(
                    torch.as_tensor(obs)[None],
                    torch.as_tensor(d)[None],
                    torch.zeros(1, policy.act_dim),
                )
            np.testing.assert_allclose(client.step(obs), want[0].numpy(), atol=1e-5)
    finally:
        client.close()
        server.stop()
