"""Adapting an offline run to a new task: context evaluation and online fine-tuning."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from training.algos.offline_pearl.finetune import finetune_task
from training.algos.offline_pearl.trainer import OfflineTrainer
from training.algos.pearl.agent import TorchAgent
from training.cli import finetune_main as main
from training.common.batches import MetaBatch
from training.common.datasets import DatasetError, load_dataset
from training.common.tasks import make_task_source, select_test_tasks
from training.config import FinetuneConfig, TrainConfig
from training.evaluate import context_eval
from training.registry import load_finetune_run as load_run


def _agent(nets: Any, cfg: TrainConfig) -> TorchAgent:
    return TorchAgent(nets, cfg.use_latent, cfg.encoder.prior_in_posterior)


def with_finetune(cfg: TrainConfig, **over: Any) -> TrainConfig:
    """`cfg` with `finetune.*` (and top-level `max_episode_steps`, `offline`) replaced."""
    top = {k: over.pop(k) for k in ("max_episode_steps", "offline") if k in over}
    return cfg.model_copy(update={**top, "finetune": cfg.finetune.model_copy(update=over)})


# Far from the data for sure: 3 steps cannot reach a goal ~1 m away at <= 0.2 m a step, so
# the first online episode fails and the gradient phase starts after it.
FAR = {
    "max_episode_steps": 3,
    "max_episodes": 1,
    "far_window": 1,
    "far_threshold": 1.0,
    "streak": 10,
    "final_episodes": 0,
}


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.collect import collect_dataset
    from training.config import CollectConfig

    root = tmp_path_factory.mktemp("ft")
    collect_dataset(
        CollectConfig.model_validate(
            {
                "env": "point",
                "num_tasks": 3,
                "episodes_per_task": 2,
                "mix": {"scripted": 1, "random": 1, "policy": 0},
            }
        ),
        root / "data",
        progress=False,
    )
    cfg = TrainConfig.model_validate(
        {
            "env": "point",
            "meta_batch": 3,
            "batch_size": 16,
            "context_size": 8,
            "sac": {"hidden": [16, 16]},
            "encoder": {"hidden": [16], "latent_dim": 2},
            "offline": {"dataset": str(root / "data"), "updates": 20, "log_every": 10},
            "eval": {"eval_episodes": 1, "explore_episodes": 0, "max_tasks": 1},
        }
    )
    OfflineTrainer(cfg, root / "run").run(progress=False)
    return root / "run"


def test_context_eval_counts_episodes_per_label(offline_run: Path) -> None:
    nets, cfg = load_run(offline_run)
    source = make_task_source(cfg)
    for kind in ("scripted", "teleop", "own"):
        rep = context_eval(
            source,
            _agent(nets, cfg),
            cfg,
            context_source=kind,
            episodes=2,
            seed=0,
            labels=["test-0", "test-1"],
            tasks_per_label=1,
        )
        assert [p.label for p in rep.tasks] == ["test-0", "test-1"]
        assert all(p.episodes == 2 and p.explore_episodes == 2 for p in rep.tasks)
        assert rep.protocol["context_source"] == kind
    # The point demonstrator knows the goal: its context episodes nearly always succeed.
    rep = context_eval(
        source, _agent(nets, cfg), cfg, context_source="scripted", episodes=1, seed=0
    )
    assert sum(p.explore_successes for p in rep.tasks) >= 0.8 * sum(
        p.explore_episodes for p in rep.tasks
    )
    with pytest.raises(ValueError, match="not among the test tasks' labels"):
        select_test_tasks(source, ["nope"], None)


@pytest.mark.slow  # one ONNX export (~5-10 s on the shared machine)
def test_finetune_goes_to_gradients_when_far_and_exports(offline_run: Path, tmp_path: Path) -> None:
    nets, cfg = load_run(offline_run)
    cfg = cfg.model_copy(
        update={
            "finetune": cfg.finetune.model_copy(
                update={
                    "max_episodes": 1,
                    "far_window": 1,
                    "far_threshold": 1.0,
                    "streak": 10,
                    "updates_per_episode": 5,
                    "final_episodes": 2,
                }
            )
        }
    )
    source = make_task_source(cfg)
    before = [p.clone() for p in nets.parameters()]
    reloaded: list[Path] = []
    res, tuned = finetune_task(
        nets,
        cfg,
        source,
        source.test_tasks[0],
        seed=1,
        artifact_dir=tmp_path / "art",
        on_artifact=reloaded.append,
    )
    assert len(res.episodes) == 1 and res.reached_after is None  # streak 10 > 1 episode
    if all(res.episodes[:1]):
        pytest.skip("the tiny run solved the task without fine-tuning")
    assert res.gradient_from == 1
    assert res.final_episodes == 2 and 0 <= res.final_successes <= 2
    # The caller's networks are untouched; the returned copy moved.
    assert all(torch.equal(a, b) for a, b in zip(before, nets.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(nets.parameters(), tuned.parameters(), strict=True)
    )
    # one artifact per gradient phase, handed to the reload hook, loadable and verified
    assert [p.name for p in reloaded] == ["v000"] and res.artifacts == [str(reloaded[0])]
    from runtime.artifact import load_artifact

    art = load_artifact(reloaded[-1], check_graphs=True)
    assert art.manifest.latent_dim == 2


def test_finetune_stops_at_the_streak(offline_run: Path) -> None:
    nets, cfg = load_run(offline_run)
    cfg = cfg.model_copy(
        update={
            "finetune": cfg.finetune.model_copy(
                update={"max_episodes": 4, "streak": 1, "far_threshold": 0.0, "final_episodes": 0}
            )
        }
    )
    source = make_task_source(cfg)
    res, _ = finetune_task(nets, cfg, source, source.test_tasks[0], seed=0)
    assert res.gradient_from is None  # threshold 0: never "far"
    if any(res.episodes):
        assert res.reached_after == res.episodes.index(True) + 1 == len(res.episodes)
    else:
        assert res.reached_after is None and len(res.episodes) == 4


def test_cli(offline_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert (
        main(
            [
                str(offline_run),
                "--context",
                "own",
                "-n",
                "1",
                "--tasks-per-label",
                "1",
                "--tasks",
                "test-0",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file()
    # --context all: one report per context source, in the JSON
    assert main([str(offline_run), "--context", "all", "-n", "1", "--tasks-per-plug", "1",
                 "--plugs", "test-0", "--json", str(out)]) == 0  # fmt: skip
    assert set(json.loads(out.read_text())) >= {"teleop", "scripted", "own"}
    assert main([str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--set", "nope=1"], "nope: unknown key"),
        (["--set", "finetune.max_episodes=0"], "finetune.max_episodes"),
        (["-k", "99"], "context_episodes"),
    ],
)
def test_cli_names_a_bad_override(
    offline_run: Path, argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(offline_run), *argv]) == 2
    assert named in capsys.readouterr().err


def _rows(a: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in np.ascontiguousarray(a.reshape(-1, a.shape[-1]))}


def test_finetune_batches_mix_the_new_task_with_offline_tasks(
    offline_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.algos.offline_pearl.finetune as finetune_module

    nets, cfg = load_run(offline_run)
    source = make_task_source(cfg)
    data = load_dataset(cfg.offline.dataset or "")
    per_task = [_rows(t.obs) for t in data.tasks]
    real_update = finetune_module.offline_update
    seen: list[MetaBatch] = []

    def spy(batch: MetaBatch, *args: Any) -> dict[str, float]:
        seen.append(batch)
        return real_update(batch, *args)

    monkeypatch.setattr(finetune_module, "offline_update", spy)
    for k in (2, 0):
        seen.clear()
        ft_cfg = with_finetune(cfg, **FAR, updates_per_episode=4, offline_tasks_per_batch=k)
        res, _ = finetune_task(nets, ft_cfg, source, source.test_tasks[0], seed=3)
        assert res.gradient_from == 1 and len(seen) == 4
        assert res.offline_tasks_per_batch == k
        assert res.offline_dataset == (cfg.offline.dataset if k else None)
        bs, cs = ft_cfg.finetune.batch_size, ft_cfg.context_size
        for b in seen:
            assert b.obs.shape == (1 + k, bs, 2) and b.rewards.shape == (1 + k, bs, 1)
            assert b.context.shape == (1 + k, cs, 2 + 2 + 1 + 2)
            # row 0: the new (held-out) task's online data, none of it from the dataset
            assert not _rows(b.obs[0].numpy()) & set().union(*per_task)
            # rows 1..k: distinct dataset tasks, RL batch and context from the same task
            owners = []
            for i in range(1, 1 + k):
                rl, ctx = _rows(b.obs[i].numpy()), _rows(b.context[i, :, :2].numpy())
                owner = [j for j, rows in enumerate(per_task) if rl <= rows and ctx <= rows]
                assert len(owner) == 1
                owners.append(owner[0])
            assert len(set(owners)) == k


def test_finetune_refuses_a_missing_or_unusable_offline_dataset(
    offline_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nets, cfg = load_run(offline_run)
    source = make_task_source(cfg)
    task = source.test_tasks[0]
    missing = str(tmp_path / "gone")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "episode_0.h5").write_bytes(b"not hdf5")
    for path, needle in ((missing, "no such recording"), (str(bad), "not a readable HDF5")):
        ft_cfg = with_finetune(cfg, offline=cfg.offline.model_copy(update={"dataset": path}))
        with pytest.raises(DatasetError, match=needle) as info:
            finetune_task(nets, ft_cfg, source, task, seed=0)
        assert path in str(info.value) and "offline_tasks_per_batch=0" in str(info.value)
    online_run = with_finetune(cfg, offline=cfg.offline.model_copy(update={"dataset": None}))
    with pytest.raises(ValueError, match="names no offline.dataset"):
        finetune_task(nets, online_run, source, task, seed=0)
    with pytest.raises(ValueError, match="exceeds the 3 tasks"):
        finetune_task(nets, with_finetune(cfg, offline_tasks_per_batch=4), source, task, seed=0)
    with pytest.raises(ValidationError):
        FinetuneConfig.model_validate({"offline_tasks_per_batch": -1})
    # Without gradient steps (or with the mix off) no dataset is needed.
    for over in ({"updates_per_episode": 0}, {"offline_tasks_per_batch": 0}):
        res, _ = finetune_task(nets, with_finetune(online_run, **FAR, **over), source, task, 0)
        assert res.offline_dataset is None and res.offline_tasks_per_batch == 0
    # The CLI refuses before the first episode, naming the path.
    argv = [str(offline_run), "--finetune", "test-0", "--set", f"offline.dataset={missing}"]
    assert main(argv) == 2
    assert missing in capsys.readouterr().err


def _ort_act(art: Any, obs: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The artifact's deterministic action for (obs, z), straight from onnxruntime."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(art.policy_path), providers=["CPUExecutionProvider"])
    feed = {
        "obs": obs.reshape(1, -1).astype(np.float32),
        "z": z.reshape(1, -1).astype(np.float32),
        "noise": np.zeros((1, art.manifest.act_dim), np.float32),
    }
    return np.asarray(sess.run(["action"], feed)[0][0])


def _ort_posterior(art: Any, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The artifact's prior times its encoder's factors of `transitions` (onnxruntime)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(art.encoder_path), providers=["CPUExecutionProvider"])
    mu, var = (
        np.asarray(a, np.float64) for a in sess.run(["mu", "var"], {"transition": transitions})
    )
    m0 = np.asarray(art.manifest.prior_mean, np.float64)
    v0 = np.asarray(art.manifest.prior_var, np.float64)
    prec = 1.0 / v0 + (1.0 / var).sum(0)
    return (m0 / v0 + (mu / var).sum(0)) / prec, 1.0 / prec


@pytest.mark.slow  # two ONNX exports and a live server (~10-20 s on the shared machine)
def test_finetuned_artifact_hot_reloads_on_a_live_runtime(
    offline_run: Path, tmp_path: Path
) -> None:
    from runtime.artifact import load_artifact
    from runtime.client import RuntimeClient
    from runtime.config import ServeConfig
    from runtime.model import LoadedModel
    from runtime.server import RuntimeServer
    from training.registry import export_run

    nets, cfg = load_run(offline_run)
    cfg = with_finetune(cfg, **FAR, updates_per_episode=20, offline_tasks_per_batch=2)
    source = make_task_source(cfg)
    export_run(offline_run, tmp_path / "original")
    original = load_artifact(tmp_path / "original")
    serve_cfg = ServeConfig(seed=0, poll_interval_s=0.01, reload_root=str(tmp_path))
    server = RuntimeServer(LoadedModel.load(original.root, serve_cfg), serve_cfg)
    server.bind("tcp://127.0.0.1:*")
    server.start()
    robot = RuntimeClient(server.endpoint, timeout_s=5.0)
    bystander = RuntimeClient(server.endpoint, timeout_s=5.0)
    try:
        hello = robot.hello(obs_dim=2, act_dim=2, artifact_sha256=original.sha256)
        bystander.hello()
        robot.set_mode("exploit", "step")
        bystander.set_mode("exploit", "episode")
        rng = np.random.default_rng(0)
        obs = np.array([0.3, -0.2], np.float32)
        ctx = rng.normal(0.0, 0.5, (6, hello.transition_dim)).astype(np.float32)
        assert robot.observe(ctx) == 6
        mean0, _ = _ort_posterior(original, ctx)
        np.testing.assert_allclose(robot.step(obs), _ort_act(original, obs, mean0), atol=2e-5)

        replies: list[Any] = []
        res, _ = finetune_task(
            nets,
            cfg,
            source,
            source.test_tasks[0],
            seed=1,
            artifact_dir=tmp_path / "art",
            on_artifact=lambda path: replies.append(robot.reload(str(path.resolve()))),
        )
        assert res.gradient_from == 1 and len(replies) == len(res.artifacts) == 1
        tuned = load_artifact(res.artifacts[0])
        assert tuned.sha256 != original.sha256

        # PROTOCOL.md, RELOAD: same session, mode and update kept, the new artifact served,
        # the posterior restarted at the new artifact's prior.
        info = replies[0]
        assert info.session_id == hello.session_id == robot.session_id
        assert (info.mode, info.update) == ("exploit", "step")
        assert info.artifact_sha256 == tuned.sha256
        st = robot.get_state()
        prior = np.asarray(tuned.manifest.prior_mean, np.float32)
        assert st.count == 0
        np.testing.assert_allclose(st.mean, prior)
        np.testing.assert_allclose(st.var, tuned.manifest.prior_var)

        # The answers are the fine-tuned artifact's, not the original's.
        after = robot.step(obs)
        np.testing.assert_allclose(after, _ort_act(tuned, obs, prior), atol=2e-5)
        assert np.abs(after - _ort_act(original, obs, prior)).max() > 1e-4
        # New context goes through the fine-tuned encoder.
        assert robot.observe(ctx) == 6
        mean1, var1 = _ort_posterior(tuned, ctx)
        st = robot.get_state()
        np.testing.assert_allclose(st.mean, mean1, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(st.var, var1, rtol=1e-4)
        assert np.abs(mean1 - _ort_posterior(original, ctx)[0]).max() > 1e-4
        np.testing.assert_allclose(robot.step(obs), _ort_act(tuned, obs, mean1), atol=2e-5)
        # Other sessions keep the artifact the server started with.
        prior0 = np.asarray(original.manifest.prior_mean, np.float32)
        np.testing.assert_allclose(bystander.step(obs), _ort_act(original, obs, prior0), atol=2e-5)
    finally:
        robot.close()
        bystander.close()
        server.stop()


@pytest.mark.parametrize("which", ["all", "successes", "none"])
def test_online_context_picks_the_episodes_that_join_the_posterior(
    offline_run: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    import training.algos.offline_pearl.finetune as finetune_module
    from training.common.agents import Posterior

    calls: list[int] = []

    class Spy(Posterior):
        def add(self, mu: Any, var: Any) -> None:
            calls.append(len(mu))
            super().add(mu, var)

    # every other online episode "inserts", so the three choices differ
    real_run = finetune_module.mean_z_episode
    count = iter(range(1000))

    def alternating(*args: Any, **kwargs: Any) -> Any:
        return dataclasses.replace(real_run(*args, **kwargs), success=next(count) % 2 == 0)

    monkeypatch.setattr(finetune_module, "new_posterior", lambda agent: Spy(agent.latent_dim))
    monkeypatch.setattr(finetune_module, "mean_z_episode", alternating)
    nets, cfg = load_run(offline_run)
    k, n = 2, 6
    ft_cfg = with_finetune(
        cfg,
        context_episodes=k,
        max_episodes=n,
        streak=n + 1,
        far_threshold=0.0,  # never "far": no gradient phase, no posterior rebuild
        final_episodes=0,
        online_context=which,
        max_episode_steps=4,
    )
    source = make_task_source(ft_cfg)
    res, _ = finetune_task(nets, ft_cfg, source, source.test_tasks[0], seed=0)
    assert res.episodes == [True, False] * 3 and res.gradient_from is None
    online = {"all": 6, "successes": 3, "none": 0}[which]
    assert len(calls) == k + online  # one add per episode that joins
    assert all(c > 0 for c in calls)


def test_sample_actions_makes_the_evaluation_episodes_stochastic(offline_run: Path) -> None:
    """finetune.sample_actions: evaluation acts with sampled actions (returns change, the
    protocol says so); without it evaluation is repeatable."""
    nets, cfg = load_run(offline_run)
    source = make_task_source(cfg)
    kw: dict[str, Any] = {
        "context_source": "teleop",
        "episodes": 3,
        "seed": 0,
        "labels": ["test-0"],
        "tasks_per_label": 1,
    }
    a = context_eval(source, _agent(nets, cfg), cfg, **kw)
    b = context_eval(source, _agent(nets, cfg), cfg, **kw)
    s = context_eval(source, _agent(nets, cfg), with_finetune(cfg, sample_actions=True), **kw)
    assert a.tasks[0].mean_return == b.tasks[0].mean_return
    assert s.tasks[0].mean_return != a.tasks[0].mean_return
    assert a.protocol["sample_actions"] is False and s.protocol["sample_actions"] is True
