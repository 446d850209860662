"""`zshot adapt`: adapt a MAML run's policy to the robot's task, on the robot.

    zshot serve artifacts/maml --set reload_root=/srv/zshot/adapted      # the meta-policy
    zshot adapt runs/maml-s0 --runtime tcp://127.0.0.1:5555 --robot sim --plug US-AC-plug \
        --adapt-episodes 10 --steps 1 --eval-episodes 3 --out /srv/zshot/adapted/us-ac

Per inner step s = 0 .. steps-1: K episodes through the runtime and the bridge's control
loop (hardware_bridge.loop, as `zshot trials` runs them), the runtime sampling actions
(STEP's stochastic flag: the policy gradient needs the policy's own samples), recorded by
hardware_bridge.recorder into OUT/recordings/step-s; then, here on the workstation (torch),
one policy-gradient step from the recorded episodes (the run's inner step: REINFORCE with
the linear baseline, `maml.inner_lr`), the adapted policy exported as a `weights` artifact
OUT/adapted-(s+1) and the runtime told to serve it (RELOAD, this session only). Then N
evaluation episodes with the adapted policy's mean action (OUT/recordings/eval). OUT/adapt.json
holds the returns of every stage and the artifacts' hashes.

The log-probabilities come from the *commanded* actions (the runtime's samples), not those
the safety layer let through; a period without a reply (the watchdog held the robot) has
no sample and stays out of the loss, its reward still counts in the return. OUT must be
under the server's `reload_root` (or, with `--server-path`, be that directory as mounted
here); docs/ADAPTERS.md "Gradient adaptation" says what link a robot cell needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hardware_bridge.config import TrialsConfig
from training.algos.maml.export import export_weights
from training.algos.maml.losses import adapt, make_batch
from training.algos.maml.networks import MAMLNets, Params, make_nets
from training.common.checkpoint import CHECKPOINT, checkpoint_algorithm, load_checkpoint
from training.config import TrainConfig
from zshot.config import ConfigError, add_set_argument, load_config
from zshot.jsonio import write_json

PROG = "zshot adapt"
Episodes = list[tuple[np.ndarray, np.ndarray, np.ndarray]]


class AdaptError(Exception):
    """A problem `zshot adapt` reports in one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Adapt a MAML run's policy on a robot: K episodes through the runtime "
        "(recorded), a policy-gradient step here, the adapted weights exported under the "
        "server's reload_root and hot-reloaded (RELOAD); then N evaluation episodes.",
    )
    p.add_argument("run", help="the MAML run directory (its checkpoint.pt)")
    p.add_argument("--runtime", required=True, help="endpoint of the runtime serving the run's "
                   "weights artifact, e.g. tcp://127.0.0.1:5555")  # fmt: skip
    p.add_argument("--robot", default="sim", choices=["sim", "sim-locomotion", "ur", "mock"])
    p.add_argument("--plug", required=True, help="the task: a plug name or spec file (sim, ur), "
                   "a task split or id (sim-locomotion: test/3)")  # fmt: skip
    p.add_argument("--task-index", type=int, default=0, help="which task of the plug (seed + i)")
    p.add_argument("--adapt-episodes", type=int, help="K episodes per inner step "
                   "(default: the run's maml.episodes_per_task)")  # fmt: skip
    p.add_argument("--steps", type=int, default=1, help="inner steps (each on K new episodes)")
    p.add_argument("--eval-episodes", type=int, default=1, help="N evaluation episodes (0: none)")
    p.add_argument("--inner-lr", type=float, help="inner step size (default: the run's)")
    p.add_argument("--out", required=True, help="directory for the adapted artifacts, the "
                   "recordings and adapt.json; under the server's reload_root")  # fmt: skip
    p.add_argument("--server-path", help="--out as the server sees it, if mounted elsewhere there")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--config", help="YAML of hardware_bridge.config.TrialsConfig (safety, sim, ..)")
    add_set_argument(p, help="override a TrialsConfig key, e.g. --set safety.max_force=30",
                     dest="set")  # fmt: skip
    p.add_argument("--server-key", help="CurveZMQ: the runtime's public key file (NAME.key)")
    p.add_argument("--client-key", help="CurveZMQ: this client's key pair (NAME.key_secret); its "
                   "public key must be in the server's reload_clients")  # fmt: skip
    p.add_argument("--seed", type=int, help="task / start-pose seed (default: the config's)")
    p.add_argument("--quiet", action="store_true", help="no per-episode lines")
    return p


def load_maml_run(run_dir: str | Path) -> tuple[MAMLNets, TrainConfig, dict[str, Any]]:
    """The run's meta-policy (weights loaded), config and checkpoint; AdaptError if it is
    not a MAML run."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise AdaptError(f"{run_dir}: no {CHECKPOINT} (a `zshot train` run of algo maml)")
    try:
        state = load_checkpoint(path)
        cfg = TrainConfig.model_validate(state["config"])
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise AdaptError(f"{path}: unreadable checkpoint ({exc})") from None
    algo = checkpoint_algorithm(state, cfg)
    if algo != "maml":
        raise AdaptError(f"{run_dir}: a {algo} run; zshot adapt adapts MAML runs (algo: maml)")
    nets = make_nets(int(state["dims"]["obs"]), int(state["dims"]["act"]), cfg)
    nets.load_state_dict(state["nets"])
    return nets, cfg, state


def recorded_episodes(directory: Path) -> Episodes:
    """(obs acted in (T, obs), commanded actions (T, act; NaN: no reply), rewards (T,)) of
    every episode recorded in `directory`, in recording order."""
    import h5py  # lazy with the recorder

    from hardware_bridge.recorder import load_recordings

    out: Episodes = []
    for ep in load_recordings(directory).episodes:
        with h5py.File(ep["file"], "r") as f:
            g = f[ep["group"]]
            obs = np.asarray(g["observations"][()], np.float32)[:-1]
            cmd = np.asarray(g["commanded_actions"][()], np.float32)
            rew = np.asarray(g["rewards"][()], np.float64)
        out.append((obs, cmd, rew))
    return out


def policy_gradient_batch(episodes: Episodes) -> Episodes:
    """Episodes with the unanswered periods (NaN commanded action: no sample of the policy)
    dropped, each one's reward added to the previous kept period's (to the first kept one's
    for leading ones): the episode's return is unchanged, a discounted return-to-go moves
    by a period at most. An episode with no answered period is left out."""
    out: Episodes = []
    for obs, cmd, rew in episodes:
        ok = np.all(np.isfinite(cmd), axis=1)
        if not ok.any():
            continue
        rewards = np.zeros(int(ok.sum()))
        j = -1
        for t in range(len(rew)):
            if ok[t]:
                j += 1
            rewards[max(j, 0)] += rew[t]
        out.append((obs[ok], cmd[ok], rewards))
    return out


def adapted_params(
    nets: MAMLNets, cfg: TrainConfig, params: Params, episodes: Episodes, lr: float
) -> Params:
    """One inner step from `params` on recorded episodes (the run's inner loss)."""
    m = cfg.maml
    batch = make_batch(
        nets.policy,
        params,
        policy_gradient_batch(episodes),
        gamma=m.gamma,
        reg=m.baseline_reg,
        normalize=m.normalize_advantages,
    )
    new = adapt(nets.policy, params, [batch], lr, estimator=m.inner_estimator)
    return {k: v.detach() for k, v in new.items()}


def _trials_config(args: argparse.Namespace) -> TrialsConfig:
    overrides = list(args.set)
    for key, value in {
        "runtime": args.runtime,
        "robot": args.robot,
        "seed": args.seed,
        "server_public_key": args.server_key,
        "client_secret_key": args.client_key,
    }.items():
        if value is not None:
            overrides.append(f"{key}={value}")
    overrides.append(f'plugs=["{args.plug}"]')
    return load_config(TrialsConfig, args.config, overrides)


def main(argv: Sequence[str]) -> int:
    """`zshot adapt ...`; exit 0 done, 1 the runtime or robot failed, 2 bad input."""
    args = _parser().parse_args(list(argv))
    try:
        return _adapt(args)
    except AdaptError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return exc.code


def _check_args(args: argparse.Namespace) -> None:
    from runtime.protocol import endpoint_problem

    if (problem := endpoint_problem(args.runtime)) is not None:
        raise AdaptError(f"--runtime: {problem}")
    for flag, value, low in (("--steps", args.steps, 1), ("--eval-episodes", args.eval_episodes, 0),
                             ("--adapt-episodes", args.adapt_episodes, 1)):  # fmt: skip
        if value is not None and value < low:
            raise AdaptError(f"{flag} must be >= {low}, got {value}")
    if args.inner_lr is not None and not (np.isfinite(args.inner_lr) and args.inner_lr > 0):
        raise AdaptError(f"--inner-lr must be a finite number > 0, got {args.inner_lr}")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise AdaptError(f"--out {out} exists; pass --force to replace it")
    if out.exists() and not _adapt_output(out):
        raise AdaptError(
            f"--out {out} exists and is not the output of a `zshot adapt` (no adapt.json or "
            "recordings/ in it); refusing to replace it even with --force"
        )


def _adapt_output(path: Path) -> bool:
    """Whether `path` is an empty directory or one a `zshot adapt` wrote (what --force may
    replace)."""
    if not path.is_dir():
        return False
    return (
        (path / "adapt.json").is_file() or (path / "recordings").is_dir() or not any(path.iterdir())
    )


def _adapt(args: argparse.Namespace) -> int:
    _check_args(args)
    nets, cfg, state = load_maml_run(args.run)
    try:
        tcfg = _trials_config(args)
    except ConfigError as exc:
        raise AdaptError(str(exc)) from None
    from hardware_bridge.cli import _curve_keys
    from hardware_bridge.robot import RobotError
    from hardware_bridge.robots import make_robot
    from runtime.client import RuntimeClient, RuntimeErrorReply, RuntimeTimeout, RuntimeUnavailable

    try:
        keys = _curve_keys(tcfg)
        robot = make_robot(tcfg)
        check = getattr(robot, "check_plugs", None)
        if callable(check):
            check([args.plug])
    except (ValueError, RobotError, ImportError) as exc:
        raise AdaptError(f"--robot {tcfg.robot} / --plug {args.plug}: {exc}") from None
    try:
        client = RuntimeClient(
            tcfg.runtime,
            timeout_s=1.0,
            server_public_key=None if keys is None else keys[0],
            client_keys=None if keys is None else keys[1],
        )
    except (ValueError, RuntimeUnavailable) as exc:
        raise AdaptError(f"cannot reach the runtime: {exc}") from None
    try:
        return _session(args, nets, cfg, state, tcfg, robot, client)
    except RobotError as exc:
        raise AdaptError(f"robot error: {exc}", 1) from None
    except (RuntimeUnavailable, RuntimeTimeout, RuntimeErrorReply) as exc:
        raise AdaptError(f"the runtime failed: {exc}", 1) from None
    finally:
        client.bye_quietly()
        client.close()


def _session(
    args: argparse.Namespace,
    nets: MAMLNets,
    cfg: TrainConfig,
    state: dict[str, Any],
    tcfg: TrialsConfig,
    robot: Any,
    client: Any,
) -> int:
    from hardware_bridge.loop import ControlLoop
    from hardware_bridge.recorder import Recorder, RecordingError
    from runtime.client import RuntimeErrorReply

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    obs_dim, act_dim = len(robot.obs_names), robot.action_spec.act_dim
    if (obs_dim, act_dim) != (nets.obs_dim, nets.act_dim):
        raise AdaptError(
            f"the robot has obs/act dims {(obs_dim, act_dim)}, the run's policy "
            f"{(nets.obs_dim, nets.act_dim)}"
        )
    info = client.hello(obs_dim=obs_dim, act_dim=act_dim, client=PROG)
    if info.kind != "weights":
        raise AdaptError(
            f"the runtime serves a {info.kind} artifact; zshot adapt needs the run's weights "
            f"artifact (`zshot export {args.run} DIR`, then `zshot serve DIR --set reload_root=..`)"
        )
    control_hz = float(tcfg.control_hz or robot.control_hz)
    if abs(info.control_hz - control_hz) > 1e-6 * max(info.control_hz, control_hz):
        raise AdaptError(
            f"the artifact runs at {info.control_hz:g} Hz, this robot's loop at {control_hz:g} Hz"
        )
    out = Path(args.out)
    if out.exists():  # --force (checked before)
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    server_out = Path(args.server_path) if args.server_path else out.resolve()
    lr = float(args.inner_lr or cfg.maml.inner_lr)
    k = int(args.adapt_episodes or cfg.maml.episodes_per_task)
    loop = ControlLoop(
        robot,
        client,
        safety=tcfg.safety,
        watchdog=tcfg.watchdog,
        control_hz=control_hz,
        realtime=tcfg.realtime if tcfg.realtime is not None else tcfg.robot == "ur",
        update=tcfg.update,
        stochastic=True,
        latent_dim=0,
        log=log,
    )
    counters = {key: int(state[key]) for key in ("iteration", "updates", "env_steps")}
    report: dict[str, Any] = {
        "run": str(Path(args.run).resolve()),
        "plug": args.plug,
        "inner_lr": lr,
        "episodes_per_step": k,
        "meta_artifact_sha256": info.artifact_sha256,
        "stages": [],
    }
    robot.connect()
    try:
        task = robot.set_task(args.plug, tcfg.seed + args.task_index)
        report["task"] = task
        loop.reset_task()
        params = nets.policy.detached_params()

        def stage(name: str, n: int, mode: str, stochastic: bool) -> tuple[Path, list[Any]]:
            rec_dir = out / "recordings" / name
            try:
                rec = Recorder(rec_dir, tcfg.recorder, latent_dim=0)
            except (OSError, RecordingError) as exc:
                raise AdaptError(f"recording into {rec_dir}: {exc}") from None
            loop.sink = rec
            loop.stochastic = stochastic
            results = []
            try:
                for i in range(n):
                    res = loop.run_episode(mode, {"plug": args.plug, "task": task, "stage": name,
                                                  "episode_in_plug": i})  # fmt: skip
                    results.append(res)
                    log(f"{name:<8} {i + 1:>3}/{n}  return {res.episode_return:9.2f}  "
                        f"{res.steps:>4} steps" + ("  success" if res.success else "")
                        + (f"  ABORTED ({res.abort_reason})" if res.aborted else ""))  # fmt: skip
            finally:
                rec.close()
                loop.sink = None
            return rec_dir, results

        for s in range(args.steps):
            rec_dir, results = stage(f"step-{s}", k, "explore", True)
            _record_stage(report, f"step-{s}", s, results)
            if any(r.aborted and r.abort_reason.startswith("runtime_lost") for r in results):
                raise AdaptError("the runtime was lost during the adaptation episodes", 1)
            params = adapted_params(nets, cfg, params, recorded_episodes(rec_dir), lr)
            target = out / f"adapted-{s + 1}"
            adaptation = {"steps": s + 1, "episodes_per_step": k, "inner_lr": lr,
                          "plug": args.plug, "task": task, "recordings": str(out / "recordings"),
                          "from_sha256": info.artifact_sha256}  # fmt: skip
            artifact, _ = export_weights(
                nets, cfg, target, name=f"zshot-maml-adapted-{s + 1}", algorithm="maml",
                run_dir=args.run, counters=counters, params=params, adaptation=adaptation,
            )  # fmt: skip
            try:
                info = client.reload(str(server_out / target.name))
            except RuntimeErrorReply as exc:
                raise AdaptError(
                    f"the runtime refused RELOAD of {server_out / target.name} ({exc}): is --out "
                    "under its reload_root (and this client's key in reload_clients)?",
                    1,
                ) from None
            if info.artifact_sha256 != artifact.sha256:
                raise AdaptError(
                    f"the runtime reloaded {info.artifact_sha256[:12]}, not the exported "
                    f"{artifact.sha256[:12]}: is --server-path the same directory as --out?",
                    1,
                )
            report["stages"][-1]["artifact"] = str(target)
            report["stages"][-1]["artifact_sha256"] = artifact.sha256
            log(f"adapted-{s + 1}: exported {target} ({artifact.sha256[:12]}), runtime reloaded")
        if args.eval_episodes:
            _, results = stage("eval", args.eval_episodes, "exploit", False)
            _record_stage(report, "eval", args.steps, results)
    finally:
        robot.disconnect()
    write_json(out / "adapt.json", report, indent=1)
    for st in report["stages"]:
        print(f"{st['stage']:<8} after {st['steps_before']} step(s): mean return "
              f"{st['mean_return']:9.2f}, successes {st['successes']}/{st['episodes']}")  # fmt: skip
    print(f"saved {out / 'adapt.json'}; the runtime serves {out / f'adapted-{args.steps}'}")
    return 0


def _record_stage(report: dict[str, Any], name: str, steps: int, results: list[Any]) -> None:
    rets = [float(r.episode_return) for r in results]
    report["stages"].append(
        {
            "stage": name,
            "steps_before": steps,
            "episodes": len(results),
            "returns": rets,
            "mean_return": float(np.mean(rets)) if rets else float("nan"),
            "successes": sum(int(r.success) for r in results),
            "aborted": sum(int(r.aborted) for r in results),
        }
    )
