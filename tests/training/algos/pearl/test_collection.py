"""PEARL's online collection on rollout workers (training/algos/pearl/collection.py, issue
#22): a unit's episodes depend on the unit alone, the weights a worker is sent reproduce
the trainer's policy, and a run with 2 Ray workers is the run with 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.training.conftest import tiny_config
from training import cli
from training.algos.pearl.collection import (
    PearlCollector,
    Unit,
    collection_weights,
    initial_phases,
    refresh_phases,
)
from training.algos.pearl.trainer import Trainer
from zshot import parallel

FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")


def _same(a: list[Any], b: list[Any]) -> None:
    assert [(d.to_enc, d.steps, d.returns) for d in a] == [
        (d.to_enc, d.steps, d.returns) for d in b
    ]
    for da, db in zip(a, b, strict=True):
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(da, name), getattr(db, name), err_msg=name)


def test_a_units_episodes_do_not_depend_on_the_worker_or_what_it_ran_before(
    tmp_path: Path,
) -> None:
    cfg = tiny_config(steps_posterior=20)
    trainer = Trainer(cfg, tmp_path)
    trainer._initial_collection()
    trainer.close()
    units = [Unit(t, 2, refresh_phases(cfg)) for t in (3, 1)]
    # the trainer's own collector (its networks) against a worker built apart and sent the
    # weights, which has run another unit first
    own = PearlCollector(cfg, trainer.obs_dim, trainer.act_dim, nets=trainer.nets)
    other = PearlCollector(cfg, trainer.obs_dim, trainer.act_dim)
    weights = collection_weights(trainer.nets)
    other.collect(units[0], weights)
    _same(own.collect(units[1]), other.collect(units[1], weights))
    # the posterior phases used the unit's own prior episodes: three phases, enc flags kept
    got = own.collect(units[1])
    assert [d.to_enc for d in got] == [True, True, False]
    assert all(d.steps >= 20 for d in got)
    # another round of the same task is another stream: the comparison above could fail
    again = own.collect(Unit(1, 3, refresh_phases(cfg)))
    assert not np.array_equal(again[0].actions[:5], got[0].actions[:5])


def test_initial_units_take_initial_steps_from_the_prior() -> None:
    cfg = tiny_config(initial_steps=0)
    (phase,) = initial_phases(cfg)
    assert (phase.steps, phase.z_from, phase.to_enc) == (1, "prior", True)
    cfg = tiny_config(steps_prior=0, steps_posterior=5)
    assert [(p.steps, p.z_from, p.to_enc) for p in refresh_phases(cfg)] == [
        (5, "posterior", True),
        (20, "posterior", False),
    ]


def test_train_workers_without_ray_or_for_another_algo_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("env: point\n")
    run = ["--run-dir", str(tmp_path / "run")]
    monkeypatch.setattr(parallel, "ray_available", lambda: False)
    assert cli.train_main([str(config), *run, "--workers", "2"]) == 2
    assert capsys.readouterr().err.strip() == f"zshot train: {parallel.RAY_HINT}"
    assert cli.train_main([str(config), *run, "--set", "workers=2"]) == 2
    assert capsys.readouterr().err.strip() == f"zshot train: {parallel.RAY_HINT}"
    assert cli.train_main([str(config), *run, "--workers", "0"]) == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_workers_for_an_algorithm_that_collects_in_process_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="only algo pearl collects on Ray workers; mtsac"):
        tiny_config(algo="mtsac", workers=2)


# ---- with a local Ray (the `ray` extra; `make setup` installs it, so CI runs this) ----


def _train(cfg: Any, run_dir: Path) -> tuple[Trainer, int]:
    torch_threads = torch.get_num_threads()
    trainer = Trainer(cfg, run_dir)
    size = trainer.collection_pool().size
    try:
        trainer.run(progress=False)
    finally:
        torch.set_num_threads(torch_threads)
    return trainer, size


@pytest.mark.slow
def test_one_and_two_ray_workers_train_the_same_run(local_ray: Any, tmp_path: Path) -> None:
    cfg = tiny_config(iterations=3, steps_posterior=20)
    one, n1 = _train(cfg, tmp_path / "one")
    two, n2 = _train(cfg.model_copy(update={"workers": 2}), tmp_path / "two")
    assert (n1, n2) == (1, 2), "the 2-worker run did not run on 2 Ray actors"
    for name in ("rl_buffer", "enc_buffer"):
        a, b = getattr(one, name), getattr(two, name)
        for f in (*FIELDS, "sizes", "heads"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f"{name}.{f}")
    assert one.env_steps == two.env_steps > 0
    keys = [k for k in one.history[-1] if k.startswith(("loss/", "train/"))]
    assert "loss/qf" in keys
    for h1, h2 in zip(one.history, two.history, strict=True):
        assert {k: h1[k] for k in keys} == {k: h2[k] for k in keys}
    s1, s2 = one.nets.state_dict(), two.nets.state_dict()
    assert list(s1) == list(s2)
    for k, v in s1.items():
        assert torch.equal(v, s2[k]), k
    # another seed gives another run: the comparisons above could fail
    three, _ = _train(tiny_config(iterations=1, steps_posterior=20, seed=1), tmp_path / "three")
    assert not np.array_equal(three.rl_buffer.obs, one.rl_buffer.obs)
