"""MT-SAC's variants (`mtsac.task_input` embedding / descriptor, `mtsac.heads` per_task):
what each network is told, which networks each loss trains (through the update, with and
without PCGrad), the embedding's entropy term, the per-task heads' independence, and per
variant a smoke run on the point tasks, its conditioned export (onnxruntime against torch)
and the runtime serving it; the descriptor variant zero-shot on held-out goals through
`zshot eval`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.artifact import load_artifact
from runtime.client import RuntimeClient
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.server import RuntimeServer
from tests.training.algos.mtsac.test_trainer import smoke_config
from tests.training.conftest import assert_grads_of, multitask_batch, record_step_grads, tiny_config
from training.algos.mtsac.losses import MTBatch, MTSACOptimizers, mtsac_losses, mtsac_update
from training.algos.mtsac.networks import MTSACNets, make_nets
from training.algos.mtsac.trainer import MTSACTrainer
from training.common.pcgrad import PCGrad
from training.config import TrainConfig
from training.registry import export_run, load_run

OBS, ACT, TASKS = 2, 2, 5  # the point env's sizes (descriptor: the goal, 2 values)
VARIANTS = {
    "embedding": {"task_input": "embedding", "embedding_dim": 3},
    "descriptor": {"task_input": "descriptor"},
    "multihead": {"heads": "per_task"},
}


def _cfg(variant: str, **sac: object) -> object:
    return tiny_config(
        algo="mtsac", num_train_tasks=TASKS, sac={"hidden": [16], **sac}, mtsac=VARIANTS[variant]
    )


def _nets(variant: str, **sac: object) -> MTSACNets:
    cfg = _cfg(variant, **sac)
    torch.manual_seed(0)
    table = torch.randn(TASKS, 2).tolist()
    return make_nets(OBS, ACT, cfg, None, table)  # type: ignore[arg-type]


def _batch(T: int = 3, B: int = 6, seed: int = 0) -> MTBatch:
    return multitask_batch(OBS, ACT, T, B, seed)  # type: ignore[no-any-return]


def test_the_config_refuses_heads_without_ids() -> None:
    with pytest.raises(ValueError, match="per_task needs mtsac.task_input onehot"):
        tiny_config(algo="mtsac", mtsac={"heads": "per_task", "task_input": "descriptor"})


def test_a_bad_variant_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from zshot.cli import main as zshot

    config = "configs/train/mtsac_point.yaml"
    for bad, named in (
        ("mtsac.task_input=goal", "task_input"),
        ("mtsac.heads=per_task", "per_task needs mtsac.task_input onehot"),
    ):
        extra = ["--set", "mtsac.task_input=embedding"] if "heads" in bad else []
        assert zshot(["train", config, "--set", bad, *extra, "--run-dir", "/nonexistent/x"]) == 2
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err, err
    with pytest.raises(ValueError, match="env 'terrain' has no task descriptor"):
        TrainConfig.model_validate(
            {"env": "terrain", "terrain_config": "x.yaml", "mtsac": {"task_input": "descriptor"}}
        )
    with pytest.raises(ValueError, match="env 'metaworld_mt10' has no task descriptor"):
        TrainConfig.model_validate(  # caught before MT10 is built (no metaworld needed)
            {
                "algo": "mtsac",
                "env": "metaworld_mt10",
                "num_train_tasks": 10,
                "mtsac": {"task_input": "descriptor"},
            }
        )


def test_each_variant_tells_its_networks_what_the_paper_says() -> None:
    """descriptor: Q and the policy see the task's row of the descriptor table; embedding:
    Q sees the one-hot, the policy a z drawn around the task's embedding mean."""
    batch = _batch()
    rows = batch.tasks.repeat_interleave(6)
    for variant in ("descriptor", "embedding"):
        nets = _nets(variant)
        if nets.embedding is not None:
            with torch.no_grad():  # a narrow p(z|t): z within a few sigma of mu_t
                nets.embedding.log_std.fill_(-5.0)
        seen: dict[str, torch.Tensor] = {}

        def keep(name: str, i: int, seen: dict[str, torch.Tensor] = seen) -> object:
            def hook(m: object, args: tuple[torch.Tensor, ...], out: object) -> None:
                seen.setdefault(name, args[i])

            return hook

        hooks = [
            nets.qf1.register_forward_hook(keep("q", 2)),  # type: ignore[arg-type]
            nets.policy.register_forward_hook(keep("pi", 1)),  # type: ignore[arg-type]
        ]
        mtsac_losses(batch, nets, _cfg(variant))  # type: ignore[arg-type]
        for h in hooks:
            h.remove()
        if variant == "descriptor":
            assert torch.equal(seen["q"], nets.descriptors[rows])
            assert torch.equal(seen["pi"], nets.descriptors[rows])
        else:
            assert nets.embedding is not None
            assert torch.equal(seen["q"], nets.one_hot(rows))
            mu = nets.embedding.mean[rows].detach()
            assert seen["pi"].shape == (18, 3)
            assert (seen["pi"] - mu).abs().max() < 0.05  # sigma = e^-5 = 0.0067
            assert not torch.equal(seen["pi"], mu)  # drawn, not the mean


def test_the_embedding_entropy_is_the_gaussians() -> None:
    nets = _nets("embedding")
    assert nets.embedding is not None
    tasks = torch.tensor([0, 3, 3])
    want = (
        torch.distributions.Normal(nets.embedding.mean[tasks], nets.embedding.log_std[tasks].exp())
        .entropy()
        .sum(-1, keepdim=True)
    )
    torch.testing.assert_close(nets.embedding.entropy(tasks), want)


def test_the_entropy_weight_moves_only_the_embeddings_log_std() -> None:
    """d policy_loss / d log_std changes by -weight * d H / d log_std = -weight / T per row's
    task share when the entropy weight is raised; the policy's gradient does not change."""
    batch = _batch()
    grads = {}
    for weight in (0.0, 1.0):
        cfg = tiny_config(
            algo="mtsac", num_train_tasks=TASKS, sac={"hidden": [16]},
            mtsac={"task_input": "embedding", "embedding_dim": 3, "embedding_entropy": weight},
        )  # fmt: skip
        torch.manual_seed(0)
        nets = make_nets(OBS, ACT, cfg)  # type: ignore[arg-type]
        torch.manual_seed(1)
        loss = mtsac_losses(batch, nets, cfg).policy_loss  # type: ignore[arg-type]
        assert nets.embedding is not None
        params = [nets.embedding.log_std, *nets.policy.parameters()]
        grads[weight] = torch.autograd.grad(loss, params)
    diff = grads[1.0][0] - grads[0.0][0]
    want = torch.zeros(TASKS, 3)
    want[[4, 0, 2]] = -1.0 / 3  # each of the 3 tasks' rows: mean of H / T, dH/dlog_std = 1
    torch.testing.assert_close(diff, want)
    for a, b in zip(grads[1.0][1:], grads[0.0][1:], strict=True):
        torch.testing.assert_close(a, b)


def test_per_task_heads_are_trained_only_by_their_tasks_rows() -> None:
    nets = _nets("multihead")
    losses = mtsac_losses(_batch(), nets, _cfg("multihead"))  # type: ignore[arg-type]
    absent = [1, 3]  # the batch holds tasks 4, 0, 2
    for loss, net in ((losses.policy_loss, nets.policy), (losses.qf_loss, nets.qf1)):
        g_w, g_b = torch.autograd.grad(
            loss,
            [net.head_weight, net.head_bias],
            retain_graph=True,  # type: ignore[list-item]
        )
        assert torch.all(g_w[absent] == 0) and torch.all(g_b[absent] == 0)
        assert all(g_w[t].abs().sum() > 0 for t in (0, 2, 4))


def test_a_multihead_policy_is_its_tasks_head() -> None:
    """Changing head 1's weights changes task 1's actions and no other task's."""
    nets = _nets("multihead")
    obs = torch.randn(5, OBS)
    d = torch.eye(TASKS)
    before = nets.policy(obs, d)[0].detach()
    with torch.no_grad():
        nets.policy.head_weight[1] += 1.0  # type: ignore[operator]
    after = nets.policy(obs, d)[0].detach()
    changed = (after - before).abs().sum(-1) > 0
    assert changed.tolist() == [False, True, False, False, False]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("pcgrad", [False, True])
def test_each_learner_steps_with_the_gradient_of_its_own_loss_alone(
    variant: str, pcgrad: bool
) -> None:
    cfg = _cfg(variant, auto_entropy=True)
    nets = _nets(variant, auto_entropy=True)
    ref = copy.deepcopy(nets)
    opts = MTSACOptimizers.create(nets, cfg)  # type: ignore[arg-type]
    named = {"critic": opts.critic, "policy": opts.policy, "alpha": opts.alpha}
    if opts.embedding is not None:
        named["embedding"] = opts.embedding
    seen = record_step_grads(named)
    torch.manual_seed(1)
    mtsac_update(_batch(), nets, opts, cfg, PCGrad(seed=3) if pcgrad else None)  # type: ignore[arg-type]
    torch.manual_seed(1)
    losses = mtsac_losses(_batch(), ref, cfg, per_task=pcgrad)  # type: ignore[arg-type]
    want = {
        "critic": (losses.qf_loss, ref.critic_parameters()),
        "policy": (losses.policy_loss, list(ref.policy.parameters())),
        "alpha": (losses.alpha_loss, [ref.log_alpha]),
    }
    if ref.embedding is not None:
        want["embedding"] = (losses.policy_loss, list(ref.embedding.parameters()))
    assert sorted(seen) == sorted(want)
    order = ["critic", "policy", "embedding", "alpha"]
    expected = PCGrad(seed=3)
    for name in [n for n in order if n in want]:  # the step's learner order
        loss, params = want[name]
        if pcgrad:
            g = expected(name, loss, params)
            assert g is not None
            for got, w in zip(seen[name], g, strict=True):
                torch.testing.assert_close(got, w, msg=name)
        else:
            assert_grads_of(seen[name], loss, params, name)


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, Path]:
    """A 3 x 30-update run of the committed point config in this variant, and its export."""
    variant: str = request.param
    root = tmp_path_factory.mktemp(f"mtsac-{variant}")
    cfg = smoke_config(iterations=3, updates_per_iteration=30, mtsac=VARIANTS[variant])
    trainer = MTSACTrainer(cfg, root / "run")
    report = trainer.run(progress=False)
    assert report is not None and len(report.tasks) == 10
    if variant == "multihead":  # through the CLI once: what it prints for this kind
        from zshot.cli import main as zshot

        assert zshot(["export", str(root / "run"), "--out", str(root / "artifact")]) == 0
    else:
        export_run(root / "run", root / "artifact")
    art = load_artifact(root / "artifact")
    errors = art.manifest.training["parity_max_abs_err"]
    assert max(errors.values()) <= 1e-5
    assert art.manifest.kind == "conditioned"
    assert art.manifest.training["task_input"] == cfg.mtsac.task_input  # type: ignore[index]
    return variant, root / "run", root / "artifact"


def _torch_action(nets: MTSACNets, obs: np.ndarray, told: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        z = nets.policy_input_of(torch.as_tensor(told)[None])
        a, _ = nets.policy.sample(torch.as_tensor(obs)[None], z, torch.zeros(1, ACT))
    return a[0].numpy()


@pytest.mark.slow
def test_each_variant_trains_exports_and_is_served_as_torch_acts(
    variant_run: tuple[str, Path, Path],
) -> None:
    variant, run_dir, artifact = variant_run
    run = load_run(run_dir)
    nets = run.nets
    assert isinstance(nets, MTSACNets)
    nets.eval()
    history = json.loads((run_dir / "history.json").read_text())
    assert history[-1]["counters/updates"] == 90
    assert all(np.isfinite(h["loss/qf"]) and np.isfinite(h["loss/policy"]) for h in history)
    if variant == "descriptor":  # the table is the train tasks' goals, saved with the run
        from training.common.tasks import make_task_source

        goals = [[t.goal_x, t.goal_y] for t in make_task_source(run.cfg).train_tasks]
        np.testing.assert_allclose(nets.descriptors.numpy(), goals, atol=1e-6)
        told = [np.asarray(g, np.float32) for g in goals[:3]] + [np.array([0.0, 1.0], np.float32)]
        assert (run_dir / "eval-zeroshot.json").is_file()
    else:
        told = [np.eye(10, dtype=np.float32)[t] for t in (0, 4, 9)]
    server = RuntimeServer(
        LoadedModel.load(artifact, ServeConfig()), ServeConfig(seed=0, poll_interval_s=0.01)
    )
    server.bind("tcp://127.0.0.1:*")
    server.start()
    client = RuntimeClient(server.endpoint, timeout_s=5.0)
    try:
        info = client.hello()
        assert (info.kind, info.descriptor_dim) == ("conditioned", len(told[0]))
        obs = np.array([0.3, 0.4], np.float32)
        actions = []
        for d in told:
            client.reset_task(descriptor=d)
            got = client.step(obs)
            np.testing.assert_allclose(got, _torch_action(nets, obs, d), atol=1e-5)
            actions.append(got)
        assert np.abs(actions[0] - actions[-1]).max() > 1e-4  # the task input matters
    finally:
        client.close()
        server.stop()


@pytest.mark.slow
def test_zshot_eval_runs_a_descriptor_artifact_zero_shot_on_the_test_goals(
    variant_run: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    variant, run_dir, artifact = variant_run
    if variant != "descriptor":
        pytest.skip("zero-shot needs a descriptor")
    from training.common.tasks import make_task_source
    from training.evaluate import conditioned_eval
    from zshot.cli import main as zshot

    out = tmp_path / "eval.json"
    assert zshot(["eval", str(artifact), "--episodes", "1", "--seed", "5", "--json", str(out)]) == 0
    assert "told its descriptor" in capsys.readouterr().out
    rows = json.loads(out.read_text())["tasks"]
    run = load_run(run_dir)
    source = make_task_source(run.cfg)
    assert [r["label"] for r in rows] == [source.task_label(t) for t in source.test_tasks]
    nets = run.nets
    assert isinstance(nets, MTSACNets)
    ref = conditioned_eval(
        source,
        lambda o, d: _torch_action(nets, o, d),
        1,
        seed=5,
        descriptor="descriptor",
        tasks=source.test_tasks,
    )
    for row, want in zip(rows, ref.tasks, strict=True):
        assert row["mean_return"] == pytest.approx(want.mean_return, abs=1e-3)


@pytest.mark.slow
def test_zshot_eval_samples_actions_and_runs_the_train_tasks_when_asked(
    variant_run: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--sample-actions`: the policy's noise input drawn from N(0, I) seeded by --seed (the
    torch policy fed the same draws gives the same episodes); `--train-tasks`: a descriptor
    artifact on its train tasks, each told its descriptor."""
    from training.common.tasks import make_task_source
    from training.evaluate import conditioned_eval
    from zshot.cli import main as zshot

    variant, run_dir, artifact = variant_run
    run = load_run(run_dir)
    nets = run.nets
    assert isinstance(nets, MTSACNets)
    source = make_task_source(run.cfg)
    extra = ["--train-tasks"] if variant == "descriptor" else []
    reports = {}
    for flags in ([], ["--sample-actions"]):
        out = tmp_path / f"eval{len(flags)}.json"
        argv = ["eval", str(artifact), "-n", "2", "--seed", "5", *extra, *flags, "--json", str(out)]
        assert zshot(argv) == 0
        reports[bool(flags)] = json.loads(out.read_text())
    assert "each train task told its" in capsys.readouterr().out
    assert reports[True]["protocol"]["sample_actions"] is True
    assert reports[False]["protocol"]["sample_actions"] is False
    rng = np.random.default_rng([5, 7])

    def sampled(obs: np.ndarray, told: np.ndarray) -> np.ndarray:
        noise = torch.as_tensor(rng.standard_normal((1, ACT)).astype(np.float32))
        with torch.no_grad():
            z = nets.policy_input_of(torch.as_tensor(told)[None])
            a, _ = nets.policy.sample(torch.as_tensor(obs)[None], z, noise)
        return a[0].numpy()

    kind = "descriptor" if variant == "descriptor" else "onehot"
    ref = conditioned_eval(source, sampled, 2, seed=5, descriptor=kind)
    rows = reports[True]["tasks"]
    assert [r["label"] for r in rows] == [source.task_label(t) for t in source.train_tasks]
    for row, want in zip(rows, ref.tasks, strict=True):
        assert row["mean_return"] == pytest.approx(want.mean_return, abs=1e-3)
    det = [r["mean_return"] for r in reports[False]["tasks"]]
    assert det != [r["mean_return"] for r in rows]  # the noise moved the episodes
    if variant != "descriptor":
        assert zshot(["eval", str(artifact), "--train-tasks"]) == 2
        assert "not told task descriptors" in capsys.readouterr().err


@pytest.mark.slow
def test_zshot_eval_refuses_a_plug_descriptor_artifact_of_another_version_in_one_line(
    variant_run: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An insertion descriptor artifact exported before the descriptor's scaling (no
    `plug_descriptor_version` in its manifest: version 1) is refused before any episode;
    made here from the point artifact by editing its manifest's training section."""
    import shutil

    from zshot.cli import main as zshot

    variant, _, artifact = variant_run
    if variant != "descriptor":
        pytest.skip("needs a descriptor artifact")
    old = tmp_path / "old"
    shutil.copytree(artifact, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["training"]["config"]["env"] = "insertion"
    manifest["training"].pop("plug_descriptor_version", None)
    (old / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert zshot(["eval", str(old), "--episodes", "1"]) != 0
    err = capsys.readouterr().err.strip()
    assert "trained on plug descriptor version 1" in err and "\n" not in err, err


class _Described:
    """A task source whose train tasks' descriptors are given."""

    def __init__(self, rows: list[list[float]]) -> None:
        self.train_tasks = rows

    def describe(self, task: list[float]) -> np.ndarray:
        return np.asarray(task, np.float32)


def test_export_refuses_a_run_whose_stored_descriptors_are_not_this_codes(
    tmp_path: Path,
) -> None:
    from training.algos.mtsac.export import check_descriptor_table
    from zshot.plug_descriptor import PlugDescriptorError

    rows = [[0.1, -0.5], [0.9, 0.2]]
    check_descriptor_table(torch.tensor(rows), _Described(rows), tmp_path)
    stale = torch.tensor(rows) * 3 + 1  # e.g. the unscaled version-1 numbers
    with pytest.raises(PlugDescriptorError, match="trained on another descriptor version"):
        check_descriptor_table(stale, _Described(rows), tmp_path)
    with pytest.raises(PlugDescriptorError, match=str(tmp_path)):
        check_descriptor_table(torch.tensor(rows[:1]), _Described(rows), tmp_path)


def test_a_one_hot_checkpoint_from_before_the_variants_loads() -> None:
    """The one-hot networks' state has exactly the keys it had before the variants (no
    descriptor table, no embedding), so older MT-SAC runs still load."""
    cfg = tiny_config(algo="mtsac", num_train_tasks=TASKS, sac={"hidden": [16]})
    keys = set(make_nets(OBS, ACT, cfg).state_dict())  # type: ignore[arg-type]
    assert not any(k.startswith(("descriptors", "embedding")) for k in keys)
    assert "descriptors" in _nets("descriptor").state_dict()
    assert {"embedding.mean", "embedding.log_std"} <= set(_nets("embedding").state_dict())
