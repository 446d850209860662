"""Fan-out on Ray (zshot/parallel.py, re-exported by training/common/parallel.py): results
independent of the worker count, a killed worker's task rerun, every episode exactly once;
single-process without Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training import cli as training_cli
from training import collect as collect_mod
from training.collect import TaskCollector, collect_dataset
from training.common.parallel import WorkerPool, run_ordered
from training.config import CollectConfig
from zshot import parallel
from zshot.config import load_config

from .ray_helpers import DiesOnOdd, Echo, Failing, Niceness, Offset

ROOT = Path(__file__).resolve().parents[3]
TINY = {
    "env": "point",
    "num_tasks": 4,
    "episodes_per_task": 3,
    "mix": {"scripted": 1, "random": 1, "policy": 0},
}


def _cfg(**over: Any) -> CollectConfig:
    return CollectConfig.model_validate({**TINY, **over})


def test_more_workers_without_ray_is_a_one_line_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(parallel, "ray_available", lambda: False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("env: point\n")
    assert collect_mod.main([str(cfg), "--out", str(tmp_path / "d"), "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"zshot collect: {parallel.RAY_HINT}"
    assert not (tmp_path / "d").exists()
    assert training_cli.eval_main(["spiral", "--workers", "3"]) == 2
    assert capsys.readouterr().err.strip() == f"zshot eval: {parallel.RAY_HINT}"
    assert collect_mod.main([str(cfg), "--out", str(tmp_path / "d"), "--workers", "0"]) == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err


def test_one_worker_runs_in_process_without_importing_ray(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from training.collect import collect_dataset\n"
        "from training.config import CollectConfig\n"
        f"collect_dataset(CollectConfig.model_validate({TINY!r}), {str(tmp_path / 'd')!r}, "
        "progress=False)\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=120)
    assert (tmp_path / "d" / "dataset.json").is_file()


def test_task_episodes_do_not_depend_on_the_order_tasks_run_in() -> None:
    a, b = TaskCollector(_cfg()), TaskCollector(_cfg())
    forward = {i: a.collect(i) for i in range(4)}
    backward = {i: b.collect(i) for i in reversed(range(4))}
    for i in range(4):
        assert [(m, e.seed) for m, e, *_ in forward[i]] == [(m, e.seed) for m, e, *_ in backward[i]]
        for (_, ea, *_), (_, eb, *_) in zip(forward[i], backward[i], strict=True):
            np.testing.assert_array_equal(ea.obs, eb.obs)
            np.testing.assert_array_equal(ea.actions, eb.actions)
    a.close()
    b.close()


def test_insertion_task_episodes_do_not_depend_on_the_tasks_run_before() -> None:
    # The insertion env keeps PyBullet state across set_task: on one reused env, task 2
    # after tasks 0 and 1 differed from task 2 first (obs by up to 30), hence a fresh env
    # per task in TaskCollector.collect.
    cfg = load_config(
        CollectConfig, ROOT / "configs" / "collect" / "insertion.yaml", ["episodes_per_task=2"]
    )
    a, b = TaskCollector(cfg), TaskCollector(cfg)
    after = [a.collect(i) for i in (0, 1, 2)][2]
    first = b.collect(2)
    assert [(m, e.seed) for m, e, *_ in after] == [(m, e.seed) for m, e, *_ in first]
    for (_, ea, *_), (_, eb, *_) in zip(after, first, strict=True):
        np.testing.assert_array_equal(ea.obs, eb.obs)
    a.close()
    b.close()


# ---- with a local Ray (the `ray` extra; `make setup` installs it, so CI runs these) ----


class DyingCollector(TaskCollector):
    """A collector whose process dies (os._exit) the first time it reaches task 1: the
    marker file says whether that happened already (it survives the process)."""

    def __init__(self, cfg: CollectConfig, marker: str) -> None:
        super().__init__(cfg)
        self.marker = Path(marker)

    def collect(self, index: int) -> Any:
        if index == 1 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)
        return super().collect(index)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_one_and_two_workers_write_the_same_dataset_byte_for_byte(
    local_ray: Any, tmp_path: Path
) -> None:
    m1 = collect_dataset(_cfg(), tmp_path / "one", progress=False, dataset_id="zshot/same-v0")
    m2 = collect_dataset(
        _cfg(), tmp_path / "two", progress=False, dataset_id="zshot/same-v0", workers=2
    )
    f1, f2 = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert set(f1) == set(f2) and "data/main_data.hdf5" in f1
    for name in f1:
        if name != "dataset.json":  # its `seconds` is the wall clock
            assert f1[name] == f2[name], f"{name} differs between 1 and 2 workers"
    m1.pop("seconds"), m2.pop("seconds")
    assert m1 == m2
    on_disk = json.loads((tmp_path / "two" / "dataset.json").read_text())
    assert [r["index"] for r in on_disk["tasks"]] == [0, 1, 2, 3]
    # a different seed gives different data: the comparison above could fail
    m3 = collect_dataset(_cfg(seed=1), tmp_path / "three", progress=False, workers=2)
    assert _files(tmp_path / "three")["data/main_data.hdf5"] != f1["data/main_data.hdf5"]
    assert m3["episodes"] == m1["episodes"]


@pytest.mark.slow
def test_a_killed_worker_has_its_task_rerun_and_every_episode_comes_once(
    local_ray: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"
    got = list(
        run_ordered(DyingCollector, (_cfg(), str(marker)), "collect", 4, workers=2, max_attempts=2)
    )
    assert marker.exists(), "the worker was never killed: the test proved nothing"
    assert int(marker.read_text()) != os.getpid()
    assert [i for i, _ in got] == [0, 1, 2, 3]
    ref = TaskCollector(_cfg())
    for i, episodes in got:
        want = ref.collect(i)
        assert [(m, e.seed) for m, e, *_ in episodes] == [(m, e.seed) for m, e, *_ in want]
        for (_, e, *_), (_, w, *_) in zip(episodes, want, strict=True):
            np.testing.assert_array_equal(e.obs, w.obs)
    ref.close()


@pytest.mark.slow
def test_more_workers_than_the_running_ray_has_cpus_still_finish(
    local_ray: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second fan-out in one process asking for more workers than the Ray started by the
    first (2 CPUs) runs on what there is instead of waiting forever for a CPU."""
    assert list(run_ordered(Echo, (), "run", 5, workers=4)) == [(i, i) for i in range(5)]
    assert "2 CPUs for 4 workers; running 2" in capsys.readouterr().err


@pytest.mark.slow
def test_an_exception_in_a_worker_is_raised_as_it_is(local_ray: Any) -> None:
    with pytest.raises(ValueError, match="task 2 is bad"):
        list(run_ordered(Failing, (), "run", 4, workers=2))


@pytest.mark.slow
def test_eval_with_two_workers_reports_what_one_worker_does(
    local_ray: Any, trained_run: Path, tmp_path: Path
) -> None:
    reports = []
    for n in (1, 2):
        out = tmp_path / f"eval{n}.json"
        argv = [str(trained_run), "-k", "1", "-n", "2", "--json", str(out), "--workers", str(n)]
        assert training_cli.eval_main(argv) == 0
        reports.append(json.loads(out.read_text()))
    assert reports[0] == reports[1]
    assert reports[0]["protocol"]["tasks"] >= 2


@pytest.mark.slow
def test_an_item_that_always_kills_its_worker_is_reported_and_the_rest_finish(
    local_ray: Any,
) -> None:
    got = list(run_ordered(DiesOnOdd, (), "run", 4, workers=2, max_attempts=2, lost=lambda i, r: r))
    assert [i for i, _ in got] == [0, 1, 2, 3]
    assert got[0][1] == 0 and got[2][1] == 2
    assert "item 1 lost its worker 2 times" in got[1][1]
    with pytest.raises(RuntimeError, match="item 1 lost its worker 1 times"):
        list(run_ordered(DiesOnOdd, (), "run", 2, workers=2, max_attempts=1))


@pytest.mark.slow
def test_two_calls_in_flight_per_worker_keep_the_order_and_rerun_a_killed_workers_items(
    local_ray: Any, tmp_path: Path
) -> None:
    assert list(run_ordered(Echo, (), "run", 7, workers=2, in_flight=2)) == [
        (i, i) for i in range(7)
    ]
    marker = tmp_path / "killed"
    got = list(
        run_ordered(
            DyingCollector,
            (_cfg(), str(marker)),
            "collect",
            4,
            workers=2,
            max_attempts=2,
            in_flight=2,
        )
    )
    assert marker.exists(), "the worker was never killed: the test proved nothing"
    assert [i for i, _ in got] == [0, 1, 2, 3]
    ref = TaskCollector(_cfg())
    for i, episodes in got:
        assert [e.seed for _, e, *_ in episodes] == [e.seed for _, e, *_ in ref.collect(i)]
    ref.close()


@pytest.mark.slow
def test_a_pool_keeps_its_workers_across_maps_and_sends_a_put_object_to_every_call(
    local_ray: Any,
) -> None:
    with WorkerPool(Offset, (), workers=2, in_flight=2) as pool:
        assert pool.size == 2 and pool.remote
        first = list(pool.map("run", range(6), pool.put(10)))
        second = list(pool.map("run", [5, 6, 7], pool.put(100)))
    assert [(k, v) for k, (v, _) in first] == [(k, k + 10) for k in range(6)]
    assert [(k, v) for k, (v, _) in second] == [(0, 105), (1, 106), (2, 107)]
    pids = {pid for _, (_, pid) in first}
    assert {pid for _, (_, pid) in second} <= pids and os.getpid() not in pids
    local = WorkerPool(Offset, (), workers=1)
    assert not local.remote and local.put(3) == 3
    assert [v for _, (v, _) in local.map("run", [1, 2], 3)] == [4, 5]
    with pytest.raises(ValueError, match="in_flight must be at least 1"):
        WorkerPool(Offset, (), in_flight=0)


class _FakeRay:
    """`ray.init`'s arguments, without starting Ray."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def is_initialized(self) -> bool:
        return False

    def init(self, **kw: Any) -> None:
        self.calls.append(kw)


@pytest.mark.parametrize(
    ("env", "lean", "address", "want"),
    [
        ({}, None, None, parallel.LOCAL_SYSTEM_CONFIG),
        ({"ZSHOT_RAY_DEFAULTS": "1"}, None, None, {}),
        ({}, False, None, {}),
        ({"ZSHOT_RAY_DEFAULTS": "1"}, True, None, parallel.LOCAL_SYSTEM_CONFIG),
        ({}, None, "10.0.0.1:6379", None),
        ({"RAY_ADDRESS": "auto"}, None, None, None),
    ],
)
def test_a_local_ray_starts_lean_and_a_cluster_keeps_its_own_settings(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    lean: bool | None,
    address: str | None,
    want: dict[str, Any] | None,
) -> None:
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    for key in ("ZSHOT_RAY_DEFAULTS", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # init_ray extends it
    parallel.init_ray(2, address, lean=lean)
    (kw,) = fake.calls
    if want is None:  # a cluster: only the address and the quiet logging
        assert "address" in kw and "_system_config" not in kw and "num_cpus" not in kw
    else:
        assert kw["_system_config"] == want and kw["num_cpus"] == 2
        assert kw["include_dashboard"] is False


@pytest.mark.slow
def test_local_workers_run_at_the_drivers_priority(local_ray: Any) -> None:
    """Ray's default worker_niceness (15) would put the actors below the driver and Ray's own
    processes; the local Ray `init_ray` starts runs them at the driver's nice value."""
    got = [nice for _, nice in run_ordered(Niceness, (), "run", 4, workers=2)]
    assert got == [os.getpriority(os.PRIO_PROCESS, 0)] * 4


def test_collect_rows_are_collects_episodes_with_their_info_table() -> None:
    tc = TaskCollector(_cfg())
    try:
        episodes, rows = tc.collect(1), tc.collect_rows(1)
    finally:
        tc.close()
    assert [r.mode for r in rows] == [name for name, *_ in episodes]
    for (_, ep, z, _), r in zip(episodes, rows, strict=True):
        assert r.seed == ep.seed and r.steps == ep.steps and r.ret == ep.ret
        np.testing.assert_array_equal(r.obs, ep.obs)
        np.testing.assert_array_equal(r.actions, ep.actions)
        want = collect_mod._infos_table(ep.reset_info, ep.infos)
        assert set(r.infos) == {*want, "z_mean", "z_var"}
        for key, col in want.items():
            np.testing.assert_array_equal(r.infos[key], col)
        assert r.infos["z_mean"].shape == (ep.steps + 1, len(z))
