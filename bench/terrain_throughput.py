"""Terrain env throughput on one core: env steps/s per registered id, against bare Bullet.

For each id it measures, in one process (one core):

- `env`: `env.step(random action)` per second, resets included, task fixed;
- `switch`: the same with `set_task` to the next train task at every reset, on a fresh env
  so each rough terrain's heightfield is built inside the timed loop (the worst case; PEARL
  collects across tasks, and a terrain met again comes from the env's heightfield cache);
- `bare`: the same torques and `stepSimulation()` calls on the same world (one call = the
  env's `substeps` physics steps), with no observation, reward or checks: the floor.

Rates are per CPU-second of this process (`time.process_time`; PyBullet DIRECT runs in
process), i.e. per core, which holds up better than wall time on a shared machine. The ratio
env/bare is what the Python side costs; it travels better between machines than the raw
rates. Prints a Markdown table.

    python bench/terrain_throughput.py --steps 3000
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np

from sim.terrain import ENV_IDS, TerrainEnv
from sim.terrain_config import TerrainEnvConfig
from sim.terrain_tasks import TerrainTaskFamily


def _env_rate(
    env: TerrainEnv,
    actions: np.ndarray,
    tasks: list | None,
    seed: int,
    ends: list[int] | None = None,
) -> float:
    env.reset(seed=seed)
    episode = 0
    start = time.process_time()
    for t, a in enumerate(actions):
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            if ends is not None:
                ends.append(t)
            episode += 1
            if tasks is not None:
                env.set_task(tasks[episode % len(tasks)])
            env.reset()
    return len(actions) / (time.process_time() - start)


def _bare_rate(env: TerrainEnv, actions: np.ndarray, ends: list[int]) -> float:
    # The floor: the same torques and Bullet steps, nothing else (no observation, reward or
    # checks); the body goes back to its start pose where the env's episodes ended.
    env.reset(seed=0)
    restart = np.zeros(len(actions), dtype=bool)
    restart[ends] = True
    c = env._client
    assert c is not None
    motors, torque = env._motors, env._max_torque
    start = time.process_time()
    for t, a in enumerate(actions):
        c.setJointMotorControlArray(
            env._robot, motors, 1, forces=(torque * a).tolist()
        )  # 1 = TORQUE_CONTROL
        c.stepSimulation()
        if restart[t]:
            c.restoreState(env._state_id)
    return len(actions) / (time.process_time() - start)


def _new_terrain_ms(config: TerrainEnvConfig, tasks: list, n: int = 5) -> float:
    """Mean CPU ms of `set_task` + `reset` onto a rough terrain not built before (nan if none)."""
    rough = [t for t in tasks if t.roughness > 0][:n]
    if not rough:
        return float("nan")
    env = TerrainEnv(config)
    try:
        env.reset(seed=0)
        start = time.process_time()
        for task in rough:
            env.set_task(task)
            env.reset()
        return 1000.0 * (time.process_time() - start) / len(rough)
    finally:
        env.close()


def measure(env_id: str, steps: int, repeats: int = 3, seed: int = 0) -> dict[str, float | str]:
    """Rates (steps/s) for one id, best of `repeats` interleaved runs; see the module docstring."""
    family = ENV_IDS[env_id]
    env = TerrainEnv(TerrainEnvConfig(family=family))
    tasks = TerrainTaskFamily(env.config, seed=seed).train_tasks
    first = tasks[0]
    actions = np.random.default_rng(seed).uniform(-1, 1, size=(steps, len(env.action_names)))
    env_rate = switch_rate = bare = 0.0
    try:
        # Interleaved and best-of: the machine is shared, so the fastest run of each is the
        # least disturbed one, and env and bare see the same background load.
        for _ in range(repeats):
            env.set_task(first)
            ends: list[int] = []
            env_rate = max(env_rate, _env_rate(env, actions, None, seed, ends))
            bare = max(bare, _bare_rate(env, actions, ends))
            # A fresh env, so every terrain is met for the first time (heightfields built
            # inside the timed loop, none from the cache): the worst case of switching.
            fresh = TerrainEnv(env.config)
            try:
                switch_rate = max(switch_rate, _env_rate(fresh, actions, tasks, seed))
            finally:
                fresh.close()
    finally:
        env.close()
    return {
        "id": env_id,
        "new_terrain_ms": _new_terrain_ms(TerrainEnvConfig(family=family), tasks),
        "task": first.name,
        "env_steps_per_s": env_rate,
        "switch_steps_per_s": switch_rate,
        "bare_steps_per_s": bare,
        "env_over_bare": env_rate / bare,
        "episodes": len(ends),
        "sim_seconds_per_cpu_second": env_rate * env.dt,
    }


def _ms(value: float | str) -> str:
    return "-" if isinstance(value, str) or value != value else f"{value:.1f}"  # nan -> "-"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print a Markdown table (and JSON with --json)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3000, help="control steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs; the best counts")
    parser.add_argument("--ids", nargs="*", default=sorted(ENV_IDS), help="env ids to measure")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args(argv)
    unknown = [i for i in args.ids if i not in ENV_IDS]
    if unknown:
        parser.error(f"unknown ids {unknown}; known: {sorted(ENV_IDS)}")
    rows = [measure(env_id, args.steps, args.repeats) for env_id in args.ids]
    print(
        "| id | env steps/s | new terrain every episode | bare stepSimulation/s | env / bare "
        "| sim s per CPU s | new heightfield (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['id']} | {r['env_steps_per_s']:.0f} | {r['switch_steps_per_s']:.0f} | "
            f"{r['bare_steps_per_s']:.0f} | {r['env_over_bare']:.2f} | {r['sim_seconds_per_cpu_second']:.0f} | {_ms(r['new_terrain_ms'])} |"
        )
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
