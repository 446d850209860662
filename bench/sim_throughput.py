"""Control steps per second per core for each named plug: free space, in contact, seated,
and episode means with a random and with the spiral policy; ratio to bare stepSimulation.

Rates are control steps per CPU-second of this process (`time.process_time`), i.e. per core.
One control step = `substeps` physics steps, each with the Python impedance controller (4
PyBullet calls) and no contact-point read (the F/T comes from the plug's momentum); the
"bare" column is the same number of bare `stepSimulation` calls in the seated scene.

    timeout 600 python bench/sim_throughput.py [--steps 200] [--episodes 5] [--plug NAME ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pybullet as p

from sim.config import InsertionEnvConfig
from sim.insertion import InsertionEnv
from sim.plugs import NAMED_PLUGS
from sim.spiral import SpiralSearchPolicy
from sim.tasks import InsertionTask


def _rate(env: InsertionEnv, action: np.ndarray, steps: int) -> float:
    t = time.process_time()
    for _ in range(steps):
        env.step(action)
    return steps / max(time.process_time() - t, 1e-9)


def _bare(env: InsertionEnv, steps: int) -> float:
    """Control steps/s if each were only `substeps` bare stepSimulation calls (same scene)."""
    n = steps * env.config.substeps
    t = time.process_time()
    for _ in range(n):
        p.stepSimulation(physicsClientId=env._cid)
    return steps / max(time.process_time() - t, 1e-9)


def _episodes(env: InsertionEnv, policy, n: int, rng: np.random.Generator) -> float:  # type: ignore[no-untyped-def]
    steps = 0
    t = time.process_time()
    for ep in range(n):
        obs, _ = env.reset(seed=ep)
        if policy is not None:
            policy.reset()
        while True:
            a = policy.act(obs) if policy is not None else rng.uniform(-1, 1, 4).astype(np.float32)
            obs, _, term, trunc, _ = env.step(a)
            steps += 1
            if term or trunc:
                break
    return steps / max(time.process_time() - t, 1e-9)


def main() -> None:
    """Print a markdown table of control steps/s per core (CPU time of this process)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--plug", action="append", default=None)
    args = ap.parse_args()
    cfg = InsertionEnvConfig(start_xy_noise=0.0, start_yaw_noise=0.0)
    rng = np.random.default_rng(0)
    print(
        f"substeps {cfg.substeps}, solver iterations {cfg.solver_iterations}, control {cfg.control_hz} Hz"
    )
    print(
        "| plug | free | contact | seated | bare stepSimulation (seated) | seated/bare | random ep | spiral ep |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for plug in args.plug or NAMED_PLUGS:
        env = InsertionEnv(cfg, task=InsertionTask(plug=plug))
        env.reset(seed=0)
        free = _rate(env, np.array([0.3, -0.3, 0.0, 0.0], np.float32), args.steps)
        env.set_task(InsertionTask(plug=plug, dx=0.004))
        env.reset(seed=0)
        for _ in range(40):  # down onto the face (not over the cavities)
            env.step(np.array([0, 0, -0.3, 0], np.float32))
        contact = _rate(env, np.array([0.0, 0.0, -0.05, 0.0], np.float32), args.steps)
        env.set_task(InsertionTask(plug=plug))
        cfg_seated = env.config.model_copy(update={"max_steps": 10**6})
        env.config = cfg_seated
        env.reset(seed=0)
        for _ in range(60):
            env.step(np.array([0, 0, -0.5, 0], np.float32))
        seated = _rate(env, np.array([0.0, 0.0, -0.05, 0.0], np.float32), args.steps)
        bare = _bare(env, args.steps)
        env.config = cfg
        env.set_task(InsertionTask(plug=plug, dx=0.001, dy=-0.001, dyaw=0.02))
        rand = _episodes(env, None, args.episodes, rng)
        spiral = _episodes(env, SpiralSearchPolicy(cfg), args.episodes, rng)
        env.close()
        print(
            f"| {plug} | {free:.0f} | {contact:.0f} | {seated:.0f} | {bare:.0f} | "
            f"{seated / bare:.2f} | {rand:.0f} | {spiral:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
