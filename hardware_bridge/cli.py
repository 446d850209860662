"""`zshot trials` and `zshot demo`.

    zshot trials --runtime tcp://127.0.0.1:5555 --robot sim --plugs US-AC-plug,EU-AC-plug \
        --adapt-episodes 3 --eval-episodes 10 --record runs/trials
    zshot trials --config configs/trials/locomotion.yaml   # legged robot, per-step posterior
    zshot demo        # starts a runtime on loopback with the shipped artifact, runs SimRobot
    zshot trials --runtime tcp://127.0.0.1:5555 --robot sim --workers 4   # on Ray (fanout.py)
    zshot trials --runtime tcp://127.0.0.1:5555 --robot sim --plugs my_plug.yaml \
        --plug-descriptors   # a conditioned artifact told each plug's spec descriptor
    zshot trials --runtime tcp://127.0.0.1:5555 --robot sim --profile known \
        --plugs US-AC-plug --goal-descriptors   # a goal artifact told each plug's inserted pose
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hardware_bridge.config import TrialsConfig
from zshot.config import (
    ConfigError,
    add_profile_argument,
    add_set_argument,
    load_config,
    profile_override,
)
from zshot.parallel import add_workers_arguments, workers_error

if TYPE_CHECKING:
    from hardware_bridge.robot import Robot
    from runtime.client import RuntimeClient
    from runtime.protocol import HelloReply

__all__ = ["DEMO_ARTIFACT", "demo_main", "run_session", "trials_main"]

DEMO_ARTIFACT = Path(__file__).resolve().parent / "demo_artifact"
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "trials" / "demo.yaml"


def _endpoint_problem(endpoint: str) -> str | None:
    from runtime.protocol import endpoint_problem

    return endpoint_problem(endpoint)


def _trials_parser(prog: str = "zshot trials") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Few-shot trials: per plug, reset the task, K adaptation episodes "
        "(explore), N evaluation episodes (exploit); prints the per-plug table and saves it "
        "as JSON and PNG.",
    )
    p.add_argument("--config", help="YAML overriding hardware_bridge.config.TrialsConfig")
    add_set_argument(p, help="override one config key, e.g. --set safety.max_force=30", dest="set")
    p.add_argument("--runtime", help="runtime endpoint, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--server-key", help="CurveZMQ: the runtime's public key file (NAME.key)")
    p.add_argument("--client-key", help="CurveZMQ: this bridge's key pair file (NAME.key_secret)")
    p.add_argument("--robot", choices=["sim", "sim-locomotion", "ur", "mock"], help="robot adapter")
    p.add_argument("--update", choices=["step", "episode"],
                   help="posterior update (default: step for sim-locomotion, else episode)")  # fmt: skip
    p.add_argument(
        "--plugs",
        help="comma-separated shipped plug names or plug spec files, e.g. US-AC-plug,my.yaml",
    )
    p.add_argument("--adapt-episodes", type=int, help="K exploration episodes per task")
    p.add_argument("--eval-episodes", type=int, help="N evaluation episodes per task")
    p.add_argument("--tasks-per-plug", type=int, help="T hidden tasks per plug (default 1)")
    p.add_argument(
        "--task-descriptor",
        action="append",
        default=[],
        metavar="PLUG=V1,V2,..",
        help="task descriptor of one plug entry (repeat per plug): what a `conditioned` "
        "artifact is told at each RESET_TASK, e.g. US-AC-plug=1,0,0",
    )
    p.add_argument(
        "--plug-descriptors",
        action="store_true",
        help="tell a `conditioned` artifact trained with plug descriptors (mtsac.task_input "
        "descriptor) each plug's descriptor, computed from its spec file "
        "(zshot/plug_descriptor.py); refused when the artifact reports another "
        "plug_descriptor_version at HELLO; a --task-descriptor given for a plug wins",
    )
    p.add_argument(
        "--goal-descriptors",
        action="store_true",
        help="tell a goal-conditioned artifact (algo her or crl on env insertion_goal, "
        "docs/GOALS.md) each plug's inserted pose as its goal (x = y = yaw = 0, z from the "
        "plug spec and the artifact's epsilon); a --task-descriptor PLUG=X,Y,Z,YAW given for "
        "a plug wins (any pose)",
    )
    add_profile_argument(p)
    p.add_argument("--record", help="directory to record every step into (HDF5 episodes)")
    p.add_argument("--out", help="where the table JSON/PNG go (default: --record dir, else .)")
    p.add_argument("--seed", type=int, help="task/start-pose seed")
    p.add_argument("--quiet", action="store_true", help="no per-episode lines")
    add_workers_arguments(p)  # --workers N > 1: the (plug, task) units on Ray (sim robots)
    return p


def _config_from_args(args: argparse.Namespace) -> TrialsConfig:
    overrides = list(args.set)
    flag_keys = {
        "runtime": args.runtime,
        "robot": args.robot,
        "adapt_episodes": args.adapt_episodes,
        "eval_episodes": args.eval_episodes,
        "record": args.record,
        "seed": args.seed,
        "update": args.update,
        "tasks_per_plug": args.tasks_per_plug,
        "server_public_key": args.server_key,
        "client_secret_key": args.client_key,
    }
    for key, value in flag_keys.items():
        if value is not None:
            overrides.append(f"{key}={value}")
    overrides += profile_override(args.profile, "sim.profile")
    if args.plugs is not None:
        plugs = [s.strip() for s in args.plugs.split(",") if s.strip()]
        overrides.append("plugs=[" + ", ".join(f'"{s}"' for s in plugs) + "]")
    if args.task_descriptor:
        overrides.append("task_descriptors=" + json.dumps(_descriptors(args.task_descriptor)))
    if args.plug_descriptors:
        overrides.append("plug_descriptors=true")
    if args.goal_descriptors:
        overrides.append("goal_descriptors=true")
    cfg = load_config(TrialsConfig, args.config, overrides)
    if cfg.plug_descriptors:
        cfg.task_descriptors = {**_plug_descriptors(cfg.plugs), **cfg.task_descriptors}
    return cfg


def _plug_descriptors(plugs: list[str]) -> dict[str, list[float]]:
    """Each plug entry's descriptor from its spec (a shipped name or a .yaml file);
    ConfigError naming a plug whose spec cannot give one."""
    from zshot.plug_descriptor import PlugDescriptorError, plug_descriptor_of

    out = {}
    for plug in plugs:
        try:
            out[plug] = plug_descriptor_of(plug)
        except PlugDescriptorError as exc:
            raise ConfigError(f"--plug-descriptors: {exc}") from None
    return out


def _told_problem(cfg: TrialsConfig, info: HelloReply) -> str | None:
    """--plug-descriptors: why the served artifact's plug descriptor version does not fit
    this code's; --goal-descriptors: why the artifact takes no goal, else each plug (without
    a given descriptor) gets its inserted pose at the artifact's epsilon. None: it fits."""
    from zshot.plug_descriptor import (
        PLUG_DESCRIPTOR_VERSION,
        PlugDescriptorError,
        plug_inserted_goal_of,
    )

    if cfg.plug_descriptors and info.plug_descriptor_version != PLUG_DESCRIPTOR_VERSION:
        got = info.plug_descriptor_version
        return (
            f"--plug-descriptors: this bridge computes plug descriptor version "
            f"{PLUG_DESCRIPTOR_VERSION}, but the runtime's artifact {info.artifact_name} "
            + (
                f"was trained on version {got}"
                if got is not None
                else "reports none (exported before versions, not told plug descriptors, or "
                "served by a runtime too old to say)"
            )
            + "; serve an artifact exported with this version"
        )
    if not cfg.goal_descriptors:
        return None
    if info.goal_epsilon is None:
        return (
            f"--goal-descriptors: the runtime serves {info.artifact_name}, a {info.kind} "
            "artifact that is not goal-conditioned (its HELLO reports no goal_epsilon)"
        )
    if info.descriptor_dim != 4:
        return (
            f"--goal-descriptors: the artifact's goal has {info.descriptor_dim} values, a plug "
            "pose has 4 (x mm, y mm, z mm, yaw deg: env insertion_goal)"
        )
    try:
        goals = {
            p: plug_inserted_goal_of(p, info.goal_epsilon)
            for p in cfg.plugs
            if p not in cfg.task_descriptors
        }
    except PlugDescriptorError as exc:
        return f"--goal-descriptors: {exc}"
    cfg.task_descriptors = {**goals, **cfg.task_descriptors}
    return None


def _descriptors(entries: list[str]) -> dict[str, list[float]]:
    """`PLUG=v1,v2,..` entries as {plug: [v1, v2, ..]}; ConfigError naming a bad one."""
    out: dict[str, list[float]] = {}
    for entry in entries:
        plug, sep, values = entry.rpartition("=")
        try:
            if not sep or not plug.strip():
                raise ValueError("no PLUG=")
            vec = [float(v) for v in values.split(",")]
            if not all(math.isfinite(v) for v in vec):
                raise ValueError("not finite")
        except ValueError:
            raise ConfigError(
                f"--task-descriptor {entry!r}: expected PLUG=V1,V2,.. with finite numbers"
            ) from None
        out[plug.strip()] = vec
    return out


def _descriptor_problem(cfg: TrialsConfig, kind: str, size: int) -> str | None:
    """Why the config's task descriptors do not fit the served kind (None: they do)."""
    if kind != "conditioned":
        if cfg.task_descriptors:
            return (
                f"task descriptors given, but the runtime serves a {kind} artifact, which "
                "takes none"
            )
        return None
    missing = [p for p in cfg.plugs if p not in cfg.task_descriptors]
    if missing:
        return (
            f"the runtime serves a conditioned artifact: give each plug its task descriptor "
            f"({size} values; --task-descriptor PLUG=V1,..); missing for {', '.join(missing)}"
        )
    wrong = [f"{p} ({len(v)})" for p, v in cfg.task_descriptors.items() if len(v) != size]
    if wrong:
        return f"task descriptors must have {size} values (the artifact's); got {', '.join(wrong)}"
    return None


def _curve_keys(cfg: TrialsConfig) -> tuple[bytes, tuple[bytes, bytes]] | None:
    """(server public key, (client public, client secret)) from the config's key files."""
    if cfg.server_public_key is None or cfg.client_secret_key is None:
        return None
    import zmq.auth

    try:
        server, _ = zmq.auth.load_certificate(cfg.server_public_key)
        public, secret = zmq.auth.load_certificate(cfg.client_secret_key)
    except (OSError, ValueError) as exc:
        raise ValueError(f"CurveZMQ key file unreadable: {exc}") from None
    if secret is None:
        raise ValueError(
            f"client_secret_key {cfg.client_secret_key} holds no secret key "
            "(give the NAME.key_secret file)"
        )
    return server, (public, secret)


def _rates_agree(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b))


def run_session(
    cfg: TrialsConfig,
    out_dir: Path | None,
    *,
    quiet: bool = False,
    workers: int = 1,
    ray_address: str | None = None,
) -> int:
    """Connect runtime + robot, run the trials, print and save the table. Returns an exit code.

    `workers` > 1: the (plug, task) units on that many Ray workers (hardware_bridge/fanout.py),
    a simulated robot each; the same report as 1 worker."""
    from hardware_bridge.fanout import FANOUT_ROBOTS
    from hardware_bridge.recorder import RecordingError
    from hardware_bridge.robot import RobotError
    from hardware_bridge.robots import make_robot
    from runtime.client import RuntimeClient, RuntimeErrorReply, RuntimeTimeout, RuntimeUnavailable

    def log(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    def warn(msg: str) -> None:
        sys.stderr.write(f"zshot trials: {msg}\n")

    if workers > 1 and cfg.robot not in FANOUT_ROBOTS:
        warn(f"--workers {workers} needs a simulated robot ({', '.join(FANOUT_ROBOTS)}), "
             f"not {cfg.robot}")  # fmt: skip
        return 2
    if workers > 1 and cfg.record is not None:
        warn("--record records one robot's session: use it with --workers 1")
        return 2
    if cfg.record is not None and Path(cfg.record).exists() and not Path(cfg.record).is_dir():
        warn(f"--record {cfg.record}: exists and is not a directory")
        return 2
    try:
        keys = _curve_keys(cfg)
    except ValueError as exc:
        warn(str(exc))
        return 2
    try:
        robot = make_robot(cfg)
    except (RobotError, ImportError) as exc:
        warn(f"cannot create the {cfg.robot} robot: {exc}")
        return 2
    check_plugs = getattr(robot, "check_plugs", None)  # sim: plug files, names with tasks
    if callable(check_plugs):
        try:
            check_plugs(list(cfg.plugs))
        except RobotError as exc:
            warn(f"--plugs: {exc}")
            return 2
    # The loop's rate and deadlines are the robot's (or the config's), never the runtime's.
    control_hz = float(cfg.control_hz or robot.control_hz)
    if not _rates_agree(control_hz, robot.control_hz) and cfg.robot != "ur":
        warn(
            f"control rate {control_hz} Hz differs from the robot's {robot.control_hz} Hz; "
            f"a simulated period is {1 / robot.control_hz:.3f} s whatever the loop's rate"
        )
    # Handshake calls get a generous deadline; per-step deadlines come from the watchdog.
    try:
        client = RuntimeClient(
            cfg.runtime,
            timeout_s=1.0,
            server_public_key=None if keys is None else keys[0],
            client_keys=None if keys is None else keys[1],
        )
    except (ValueError, RuntimeUnavailable) as exc:
        warn(f"cannot reach the runtime: {exc}")
        return 2
    try:
        fanout = (workers, ray_address, keys) if workers > 1 else None
        return _run_connected(cfg, out_dir, robot, client, control_hz, log, warn, fanout)
    except RecordingError as exc:
        warn(f"recording: {exc}")
        return 2
    except RobotError as exc:
        warn(f"robot error: {exc}")
        return 1
    except (RuntimeUnavailable, RuntimeTimeout, RuntimeErrorReply) as exc:
        warn(f"the runtime failed: {exc}")
        return 1
    finally:
        client.bye_quietly()  # also on SIGINT/SIGTERM (trials_main turns them into these)
        client.close()


def _run_connected(
    cfg: TrialsConfig,
    out_dir: Path | None,
    robot: Robot,
    client: RuntimeClient,
    control_hz: float,
    log: Callable[[str], None],
    warn: Callable[[str], None],
    fanout: tuple[int, str | None, tuple[bytes, tuple[bytes, bytes]] | None] | None = None,
) -> int:
    """run_session once the robot and the client exist (the caller closes the client);
    `fanout` = (workers, ray address, keys): the units on Ray workers, not on `robot`."""
    from hardware_bridge.loop import ControlLoop
    from hardware_bridge.recorder import Recorder
    from hardware_bridge.robot import RobotError
    from hardware_bridge.trials import format_table, run_trials, save_plot
    from runtime.client import RuntimeErrorReply, RuntimeTimeout, RuntimeUnavailable

    try:
        info = client.hello(
            obs_dim=len(robot.obs_names), act_dim=robot.action_spec.act_dim, client="zshot trials"
        )
    except (RuntimeUnavailable, RuntimeTimeout) as exc:
        warn(
            f"no runtime answering at {cfg.runtime} ({exc}). Start one with "
            "`zshot serve ARTIFACT_DIR --bind ENDPOINT`."
        )
        return 1
    except RuntimeErrorReply as exc:
        warn(f"the runtime refused the handshake: {exc}")
        return 1
    problem = _told_problem(cfg, info) or _descriptor_problem(cfg, info.kind, info.descriptor_dim)
    if problem is not None:
        warn(problem)
        return 2
    if not _rates_agree(info.control_hz, control_hz):
        warn(
            f"refusing the runtime: its artifact runs at {info.control_hz:g} Hz, this robot's "
            f"loop at {control_hz:g} Hz (set control_hz, or serve an artifact for this rate)"
        )
        return 1
    if list(info.obs_names) != list(robot.obs_names):
        warn(
            f"the artifact's observation names {info.obs_names} differ from the robot's "
            f"{list(robot.obs_names)}: trials go on, the policy may misread its inputs"
        )
    realtime = cfg.realtime if cfg.realtime is not None else cfg.robot == "ur"
    try:
        recorder = (
            Recorder(cfg.record, cfg.recorder, latent_dim=info.latent_dim) if cfg.record else None
        )
    except OSError as exc:
        warn(f"--record {cfg.record}: {exc.strerror or exc}")
        return 2
    if recorder is not None and recorder.recovered:
        log(f"recovered {len(recorder.recovered)} episode(s) a crash left in {cfg.record}")
    if recorder is not None and recorder.quarantined:
        warn(
            f"{len(recorder.quarantined)} unreadable write-ahead log(s) in {cfg.record} set "
            f"aside as *.corrupt: {', '.join(p.name for p in recorder.quarantined)}"
        )
    loop = ControlLoop(
        robot,
        client,
        safety=cfg.safety,
        watchdog=cfg.watchdog,
        control_hz=control_hz,
        realtime=realtime,
        update=cfg.update,
        stochastic=cfg.sample_actions,
        latent_dim=info.latent_dim,
        sink=recorder,
        log=log,
    )
    t0 = time.monotonic()
    try:
        if fanout is not None:
            from hardware_bridge.fanout import run_trials_fanout

            workers, address, keys = fanout
            metric = str(getattr(robot, "metric", "success"))
            report = run_trials_fanout(
                cfg, control_hz, metric, workers=workers, ray_address=address, keys=keys, log=log
            )
        else:
            robot.connect()
            report = run_trials(loop, cfg, log=log)
    except RobotError as exc:
        warn(f"robot error: {exc}")
        return 1
    finally:
        if recorder is not None:
            recorder.close()
        robot.disconnect()
    elapsed = time.monotonic() - t0
    print()
    print(format_table(report))
    print(
        f"\n{len(report.plugs)} plug(s) x {cfg.tasks_per_plug} task(s), K = "
        f"{cfg.adapt_episodes} adaptation + N = {cfg.eval_episodes} evaluation episodes each"
        + (f", profile {cfg.sim.profile}" if cfg.sim.profile else "")
        + f", {elapsed:.1f} s wall clock; "
        f"artifact {info.artifact_name} ({info.artifact_sha256[:12]})"
    )
    out = out_dir or (Path(cfg.record) if cfg.record else Path("."))
    json_path = report.save_json(out / "trials.json")
    png = save_plot(report, out / "trials.png")
    print(f"saved {json_path}" + (f" and {png}" if png else " (no PNG: matplotlib missing)"))
    if recorder is not None:
        print(f"recorded {len(recorder.written)} episode file(s) in {cfg.record}")
    if report.incomplete:
        warn(f"session incomplete: {report.incomplete}")
        return 1
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that every `finally` runs (robot stopped,
    recording closed, BYE sent)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def trials_main(argv: Sequence[str]) -> int:
    """`zshot trials ...`: few-shot trials against a running runtime."""
    args = _trials_parser().parse_args(list(argv))
    if args.runtime and (problem := _endpoint_problem(args.runtime)) is not None:
        sys.stderr.write(f"zshot trials: --runtime: {problem}\n")
        return 2
    if (err := workers_error(args.workers)) is not None:
        sys.stderr.write(f"zshot trials: {err}\n")
        return 2
    cfg = _config_from_args(args)  # a bad value: ConfigError, one line by zshot.cli
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        previous = None
    try:
        return run_session(
            cfg,
            Path(args.out) if args.out else None,
            quiet=args.quiet,
            workers=args.workers,
            ray_address=args.ray_address,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# -- zshot demo -----------------------------------------------------------------------------
_LISTEN_RE = re.compile(r"listening on (tcp://\S+?):?\s")


def start_runtime(
    artifact: Path, *, bind: str = "tcp://127.0.0.1:*", timeout_s: float = 30.0
) -> tuple[subprocess.Popen[str], str]:
    """Start `zshot serve ARTIFACT` (default: a free loopback port); returns (process, endpoint)."""
    code = "import sys; from runtime.cli import serve_main; sys.exit(serve_main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(artifact), "--bind", bind, "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = _LISTEN_RE.search(line)
        if m:
            return proc, m.group(1)
    proc.kill()
    proc.wait()
    raise RuntimeError("the runtime did not start:\n" + "".join(seen[-20:]))


def demo_main(argv: Sequence[str]) -> int:
    """`zshot demo`: runtime on loopback with the shipped artifact + SimRobot trials on 3 plugs."""
    p = argparse.ArgumentParser(
        prog="zshot demo",
        description="The embedded demo: starts `zshot serve` on loopback with the artifact "
        f"shipped in {DEMO_ARTIFACT}, runs few-shot trials with SimRobot on three held-out "
        "plugs and prints the table. No downloads.",
    )
    p.add_argument("--artifact", default=str(DEMO_ARTIFACT), help="artifact directory")
    p.add_argument("--out", default="demo_out", help="where trials.json/png and recordings go")
    add_set_argument(p, help="override a TrialsConfig key (configs/trials/demo.yaml is the base)",
                     dest="set")  # fmt: skip
    p.add_argument("--no-record", action="store_true", help="do not record episodes")
    args = p.parse_args(list(argv))
    artifact = Path(args.artifact)
    if not (artifact / "manifest.json").is_file():
        sys.stderr.write(
            f"zshot demo: no artifact at {artifact} (manifest.json missing). The demo artifact is "
            "produced by the project's train + export (see docs/ADAPTERS.md and the README); "
            "pass --artifact DIR to use another.\n"
        )
        return 2
    out = Path(args.out)
    overrides = [*args.set, "robot=sim"]
    if not args.no_record:
        overrides.append(f"record={out / 'recordings'}")
    # configs/ is not in the wheel; TrialsConfig's defaults are demo.yaml's (tested)
    cfg = load_config(TrialsConfig, DEMO_CONFIG if DEMO_CONFIG.is_file() else None, overrides)
    t0 = time.monotonic()
    try:
        proc, endpoint = start_runtime(artifact)
    except RuntimeError as exc:
        sys.stderr.write(f"zshot demo: {exc}\n")
        return 1
    print(f"zshot demo: runtime serving {artifact} on {endpoint}", flush=True)
    try:
        cfg = cfg.model_copy(update={"runtime": endpoint})
        rc = run_session(cfg, out, quiet=False)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print(f"zshot demo: done in {time.monotonic() - t0:.1f} s", flush=True)
    return rc
