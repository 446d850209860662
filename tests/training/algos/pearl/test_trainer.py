"""The training loop: a smoke run through the CLI, checkpoints, and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.conftest import SMOKE, tiny_config
from training.algos.pearl import trainer as trainer_module
from training.algos.pearl.trainer import Trainer, curves_figure, progress_postfix
from training.common.checkpoint import CHECKPOINT, load_checkpoint
from zshot.cli import main as zshot


def test_run_dir_has_everything(trained_run: Path) -> None:
    for name in ("checkpoint.pt", "config.yaml", "history.json", "eval.json", "curves.png"):
        assert (trained_run / name).is_file(), name
    assert any((trained_run / "tb").iterdir())
    state = load_checkpoint(trained_run / CHECKPOINT)
    assert state["iteration"] == 2 and state["updates"] == 20
    # initial: 5 tasks x 20 steps; per iteration 2 tasks x (20 + 20) steps
    assert state["env_steps"] == 5 * 20 + 2 * 2 * 40
    assert int(state["rl_buffer"]["sizes"].sum()) == state["env_steps"]
    history = json.loads((trained_run / "history.json").read_text())
    assert [h["iteration"] for h in history] == [1, 2]
    assert all(np.isfinite(h["loss/qf"]) for h in history)
    assert "eval_success" in history[-1]  # the final few-shot evaluation


def test_encoder_buffer_holds_only_this_iterations_context(trained_run: Path) -> None:
    state = load_checkpoint(trained_run / CHECKPOINT)
    enc = state["enc_buffer"]["sizes"].numpy()
    rl = state["rl_buffer"]["sizes"].numpy()
    # refreshed tasks: cleared, then 20 prior steps (the extra posterior steps are RL-only)
    assert set(enc.tolist()) <= {20}
    assert (rl >= enc).all() and rl.sum() > enc.sum()


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.nets.state_dict().items()}


@pytest.mark.slow
def test_resume_restores_buffers_counters_and_continues_exactly(tmp_path: Path) -> None:
    # A: 4 iterations straight.  B: 2 iterations, stop, new process-like Trainer, resume to 4.
    a = Trainer(tiny_config(iterations=4), tmp_path / "a")
    a.run(progress=False)

    b = Trainer(tiny_config(iterations=2), tmp_path / "b")
    b.run(progress=False)
    saved = load_checkpoint(tmp_path / "b" / CHECKPOINT)

    torch.manual_seed(999)  # a different process would have other RNG states
    b2 = Trainer(tiny_config(iterations=4), tmp_path / "b")
    b2.load_checkpoint()
    assert (b2.iteration, b2.updates, b2.env_steps) == (2, 20, saved["env_steps"])
    for buf, key in ((b2.rl_buffer, "rl_buffer"), (b2.enc_buffer, "enc_buffer")):
        np.testing.assert_array_equal(buf.sizes, saved[key]["sizes"].numpy())
        n = saved[key]["obs"].shape[1]
        np.testing.assert_array_equal(buf.obs[:, :n], saved[key]["obs"].numpy())
    assert b2.optimizers.critic.state_dict()["state"], "Adam moments must come back"
    b2.run(progress=False)

    wa, wb = _weights(a), _weights(b2)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)
    np.testing.assert_array_equal(a.rl_buffer.obs, b2.rl_buffer.obs)
    assert a.env_steps == b2.env_steps and a.updates == b2.updates == 40


def test_time_budget_ends_with_a_final_evaluation_and_checkpoint(tmp_path: Path) -> None:
    # a budget far below one iteration's wall time: the first iteration is the last
    trainer = Trainer(tiny_config(iterations=50, max_minutes=1e-6, eval_every=0), tmp_path)
    report = trainer.run(progress=False)
    assert report is not None and trainer.iteration == 1
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["iteration"] == 1 and state["train_seconds"] > 0
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["iteration"] for h in history] == [1] and "eval_success" in history[0]
    assert (tmp_path / "curves.png").is_file()


def test_resume_refuses_other_tasks(trained_run: Path, tmp_path: Path) -> None:
    other = Trainer(tiny_config(seed=1), tmp_path / "x")
    with pytest.raises(ValueError, match="other train tasks"):
        other.load_checkpoint(trained_run / CHECKPOINT)


@pytest.mark.slow
def test_smoke_config_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "smoke"
    assert zshot(["train", str(SMOKE), "--run-dir", str(run), "--no-progress"]) == 0
    state = load_checkpoint(run / CHECKPOINT)
    assert state["updates"] == 300  # "a few hundred steps"
    out = capsys.readouterr().out
    assert "all" in out and str(run) in out
    # a second train into the same dir without --resume is refused; with it, it is a no-op
    assert zshot(["train", str(SMOKE), "--run-dir", str(run), "--no-progress"]) == 2
    assert zshot(["train", str(SMOKE), "--run-dir", str(run), "--no-progress", "--resume"]) == 0
    assert "resumed" in capsys.readouterr().out
    # more iterations on resume continue the counters
    assert (
        zshot(
            [
                "train",
                str(SMOKE),
                "--run-dir",
                str(run),
                "--no-progress",
                "--resume",
                "--set",
                "iterations=5",
            ]
        )
        == 0
    )
    assert load_checkpoint(run / CHECKPOINT)["updates"] == 375


def test_bad_config_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: point\nmeta_bach: 3\n")
    assert zshot(["train", str(bad)]) == 2
    assert "meta_bach" in capsys.readouterr().err
    assert zshot(["train", str(SMOKE), "--run-dir", str(tmp_path / "r"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_progress_postfix_shows_success_or_return() -> None:
    logs = {"train/success": 0.25, "train/return": -123.456}
    assert progress_postfix(logs, None, True) == {"train_succ": "0.25"}
    assert progress_postfix(logs, 0.5, True) == {"train_succ": "0.25", "eval_succ": "0.50"}
    assert progress_postfix(logs, None, False) == {"train_ret": "-123.5"}
    assert progress_postfix(logs, -80.0, False) == {"train_ret": "-123.5", "eval_ret": "-80.0"}


def test_curves_first_panel_is_success_or_eval_return() -> None:
    import matplotlib.pyplot as plt

    history = [
        {"iteration": 1, "train/success": 0.0, "train/return": -9.0},
        {"iteration": 2, "train/success": 0.5, "train/return": -5.0, "eval_success": 0.0,
         "eval_return": -42.0},
    ]  # fmt: skip
    fig = curves_figure(history, has_success=True)
    ax = fig.axes[0]
    assert ax.get_title() == "success rate" and ax.get_ylim() == (-0.02, 1.02)
    assert [line.get_label() for line in ax.lines] == [
        "train (collection)",
        "few-shot eval (test tasks)",
    ]
    plt.close(fig)
    fig = curves_figure(history, has_success=False)
    ax = fig.axes[0]
    assert ax.get_title() == "few-shot eval return"
    (line,) = ax.lines  # the eval points only: no train success curve
    assert list(line.get_xdata()) == [2] and list(line.get_ydata()) == [-42.0]
    plt.close(fig)


@pytest.mark.parametrize("has_success", [True, False])
def test_run_shows_success_only_where_the_env_has_it(
    has_success: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[bool] = []
    real = trainer_module.curves_figure

    def spy(history: list[dict[str, object]], *, has_success: bool = True) -> object:
        calls.append(has_success)
        return real(history, has_success=has_success)

    monkeypatch.setattr(trainer_module, "curves_figure", spy)
    trainer = Trainer(tiny_config(iterations=1), tmp_path)
    if not has_success:
        trainer.source.metric = "return"  # as the terrain source declares
    trainer.run(progress=True)
    bar = capsys.readouterr().err
    if has_success:
        assert "train_succ=" in bar and "eval_succ=" in bar and "_ret=" not in bar
    else:
        assert "train_ret=" in bar and "eval_ret=" in bar and "succ" not in bar
    assert calls == [has_success] and (tmp_path / "curves.png").is_file()
    history = json.loads((tmp_path / "history.json").read_text())
    assert {"eval_success", "eval_return"} <= set(history[-1])  # history keeps both figures


def test_a_checkpoint_written_before_the_task_label_rename_still_loads(
    trained_run: Path, tmp_path: Path
) -> None:
    """Checkpoints written before the rename store point tasks with `plug` and the config's
    `eval.tasks_per_plug`: they resume (the train tasks compare equal) and load as runs."""
    from training.registry import load_run

    state = load_checkpoint(trained_run / CHECKPOINT)
    tasks = json.loads(state["train_tasks"])
    assert tasks and all("label" in t and "plug" not in t for t in tasks)  # written the new way
    old_tasks = [{"plug": t.pop("label"), **t} for t in tasks]
    state["train_tasks"] = json.dumps(old_tasks)
    state["config"]["eval"]["tasks_per_plug"] = state["config"]["eval"].pop("tasks_per_label")
    state["config"]["eval"]["tasks_per_plug"] = 1
    old = tmp_path / "old"
    old.mkdir()
    torch.save(state, old / CHECKPOINT)

    resumed = Trainer(tiny_config(), old)
    resumed.load_checkpoint(old / CHECKPOINT)
    assert resumed.iteration == state["iteration"]
    run = load_run(old)
    assert run.cfg.eval.tasks_per_label == 1
    # the compatibility path still tells other tasks apart
    old_tasks[0]["goal_x"] += 0.5
    state["train_tasks"] = json.dumps(old_tasks)
    torch.save(state, old / CHECKPOINT)
    with pytest.raises(ValueError, match="other train tasks"):
        Trainer(tiny_config(), old).load_checkpoint(old / CHECKPOINT)
