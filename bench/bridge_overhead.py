"""The hardware bridge's own overhead per control step, as a ratio to the bare runtime round trip.

    python bench/bridge_overhead.py [--steps 2000] [--repeats 5]

Starts `zshot serve` on loopback (the shipped demo artifact if present, else a random artifact
with the insertion env's dims: obs 18, act 4, latent 5), then times, interleaved over
`--repeats` rounds:

  rtt       bare `RuntimeClient.step(obs, transition)` calls (the floor)
  bridge only  ControlLoop steps with an in-process policy that answers instantly: the
            loop's own CPU cost per step (safety, watchdog, bookkeeping), no IPC
  loop      ControlLoop steps on a zero-cost robot, no recorder
  loop+rec fsync/K  the same with the Recorder, fsync of the log every K steps (default
            10; 0: never)

overhead = (per-step time of the variant) - (rtt per step) (for "bridge only": its whole
time); ratio = overhead / rtt. Medians over rounds. The robot does no work, so everything above the floor is the bridge's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hardware_bridge.cli import DEMO_ARTIFACT, start_runtime  # noqa: E402
from hardware_bridge.config import RecorderConfig, SafetyLimits, WatchdogConfig  # noqa: E402
from hardware_bridge.loop import ControlLoop  # noqa: E402
from hardware_bridge.recorder import Recorder  # noqa: E402
from hardware_bridge.robot import ActionSpec, RobotState  # noqa: E402
from runtime.client import RuntimeClient  # noqa: E402

OBS_DIM, ACT_DIM = 18, 4


class NullRobot:
    """A Robot that costs nothing: a fixed reading, commands dropped."""

    def __init__(self, max_steps: int) -> None:
        self.obs_names = tuple(f"o{i}" for i in range(OBS_DIM))
        self.action_spec = ActionSpec(names=("vx", "vy", "vz", "wz"), scale=(0.02,) * 3 + (0.2,))
        self.control_hz = 10.0
        self.max_steps = max_steps
        rng = np.random.default_rng(0)
        self._state = RobotState(
            t=0.0,
            obs=rng.normal(size=OBS_DIM).astype(np.float32),
            tcp_position=np.array([0.0, 0.0, 0.01]),
            wrench=np.zeros(6),
        )

    def connect(self) -> None:
        pass

    def set_task(self, plug: str, index: int) -> dict[str, Any]:
        return {"plug": plug, "index": index}

    def reset(self) -> RobotState:
        return self._state

    def observe(self) -> RobotState:
        return self._state

    def command(self, action: Any) -> None:
        pass

    def hold(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def disconnect(self) -> None:
        pass


class NullPolicy:
    """A runtime that answers instantly in-process: the loop's own cost, no IPC at all."""

    def __init__(self) -> None:
        self.action = np.array([0.1, -0.1, -0.5, 0.0], dtype=np.float32)

    def hello(self, **_: Any) -> None:
        pass

    def step(self, obs: Any, transition: Any = None, *, timeout_s: float | None = None) -> Any:
        return self.action

    def observe(self, transitions: Any) -> int:
        return 0

    def reset_task(self) -> None:
        pass

    def reset_episode(self) -> None:
        pass

    def set_mode(self, mode: str, update: str = "episode") -> None:
        pass

    def get_state(self) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(mean=np.zeros(5), var=np.ones(5), count=0)


def artifact_dir(tmp: Path) -> Path:
    """The demo artifact, or a random one with the env's dims (needs onnx: train extra)."""
    if (DEMO_ARTIFACT / "manifest.json").is_file():
        return DEMO_ARTIFACT
    from tests.runtime.onnx_fixture import make_artifact

    out = tmp / "artifact"
    make_artifact(out, obs_dim=OBS_DIM, act_dim=ACT_DIM, latent_dim=5, seed=0, control_hz=10.0)
    return out


def time_rtt(client: RuntimeClient, n: int) -> float:
    obs = np.random.default_rng(1).normal(size=OBS_DIM).astype(np.float32)
    tr = np.random.default_rng(2).normal(size=2 * OBS_DIM + ACT_DIM + 1).astype(np.float32)
    client.reset_task()
    t0 = time.perf_counter()
    for _ in range(n):
        client.step(obs, tr, timeout_s=1.0)
    return (time.perf_counter() - t0) / n


def time_loop(client: Any, n: int, recorder: Recorder | None) -> float:
    robot = NullRobot(n)
    # A 1 s deadline: the bench measures cost, not misses (the default is half a period).
    wd = WatchdogConfig(deadline_fraction=1.0)
    loop = ControlLoop(
        robot, client, safety=SafetyLimits(), watchdog=wd, control_hz=1.0, sink=recorder,
        latent_dim=5, log=lambda m: None,
    )  # fmt: skip
    loop.reset_task()
    t0 = time.perf_counter()
    res = loop.run_episode("exploit", {"plug": "bench"})
    dt = time.perf_counter() - t0
    assert res.steps == n and res.misses == 0, res
    return dt / n


def main() -> int:
    """Run the benchmark and print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        art = artifact_dir(tmp)
        proc, endpoint = start_runtime(art)
        try:
            client = RuntimeClient(endpoint, timeout_s=2.0)
            client.hello(obs_dim=OBS_DIM, act_dim=ACT_DIM)
            time_rtt(client, 200)  # warm-up
            res: dict[str, list[float]] = {
                "rtt": [], "bridge only": [], "loop": [],
                "loop+rec fsync/1": [], "loop+rec fsync/10": [], "loop+rec fsync/0": [],
            }  # fmt: skip
            for r in range(args.repeats):
                res["rtt"].append(time_rtt(client, args.steps))
                res["bridge only"].append(time_loop(NullPolicy(), args.steps, None))
                res["loop"].append(time_loop(client, args.steps, None))
                for every in (1, 10, 0):
                    rec = Recorder(
                        tmp / f"rec{every}_{r}", RecorderConfig(fsync_every=every), latent_dim=5
                    )
                    res[f"loop+rec fsync/{every}"].append(time_loop(client, args.steps, rec))
            client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    med = {k: statistics.median(v) for k, v in res.items()}
    rtt = med["rtt"]
    print(f"artifact: {art.name}; {args.steps} steps x {args.repeats} rounds (medians)\n")
    print("| variant | per step [us] | overhead vs rtt [us] | overhead / rtt |")
    print("|---|---|---|---|")
    for k, v in med.items():
        # "bridge only" has no round trip in it: its whole time is overhead.
        over = v if k == "bridge only" else v - rtt
        ratio = "-" if k == "rtt" else f"{over / rtt:.2f}"
        print(f"| {k} | {v * 1e6:.0f} | {'-' if k == 'rtt' else f'{over * 1e6:.0f}'} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
