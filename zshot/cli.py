"""The `zshot` command: one entry point, subcommands imported only when run.

`zshot serve` on a robot must never import torch or pybullet, so this module imports
nothing heavy: each subcommand lives in its own package module, named here as a string and
imported when (and only when) that subcommand runs. Each target is `main(argv) -> int`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from zshot import __version__
from zshot.config import ConfigError


@dataclass(frozen=True)
class Command:
    """A subcommand: where its `main(argv) -> int` lives, and one line of help."""

    target: str  # "package.module:function"
    summary: str
    issue: int  # the issue that builds it
    built: bool


COMMANDS: dict[str, Command] = {
    "train": Command(
        "training.cli:train_main", "meta-train PEARL (or a baseline) from a config", 4, True
    ),
    "algos": Command(
        "training.cli:algos_main", "list the training algorithms and their papers", 18, True
    ),
    "export": Command(
        "training.cli:export_main",
        "export a run to encoder.onnx + policy.onnx + manifest.json",
        4,
        True,
    ),
    "artifact": Command(
        "training.artifact_cli:main",
        "artifact tools: `fuse DIR` adds the one-call posterior step graph",
        19,
        True,
    ),
    "eval": Command(
        "training.cli:eval_main", "few-shot evaluation of a run or an exported artifact", 4, True
    ),
    "collect": Command(
        "training.collect:main", "collect multi-task offline datasets from the sim", 7, True
    ),
    "sweep": Command(
        "training.sweep:main",
        "seed / hyper-parameter sweeps, one run dir per trial (Ray)",
        22,
        True,
    ),
    "dataset": Command(
        "training.dataset_cli:main",
        "export bridge recordings to a Minari dataset (zshot dataset export)",
        23,
        True,
    ),
    "adapt": Command(
        "training.algos.maml.adapt:main",
        "adapt a MAML run on a robot: episodes via the runtime, a gradient step, RELOAD",
        21,
        True,
    ),
    "serve": Command(
        "runtime.cli:serve_main", "serve an exported artifact over ZeroMQ (no torch)", 5, True
    ),
    "keys": Command(
        "runtime.cli:keys_main", "generate CurveZMQ key pairs for the runtime and clients", 5, True
    ),
    "trials": Command(
        "hardware_bridge.cli:trials_main",
        "run few-shot trials on a robot against a runtime",
        6,
        True,
    ),
    "demo": Command(
        "hardware_bridge.cli:demo_main",
        "the embedded end-to-end demo: runtime + sim robot + trials",
        6,
        True,
    ),
    "sim": Command(
        "sim.cli:main",
        "simulation tools: list plugs, view a plug and socket, check specs",
        3,
        True,
    ),
    "config": Command(
        "zshot.config_cli:main", "show or validate a config (defaults + YAML + --set)", 2, True
    ),
}


def _help() -> str:
    width = max(len(name) for name in COMMANDS)
    rows = []
    for name, cmd in COMMANDS.items():
        note = "" if cmd.built else f"  [not built yet: issue #{cmd.issue}]"
        rows.append(f"  {name:<{width}}  {cmd.summary}{note}")
    return (
        f"usage: zshot <command> [args...]\n\nzshot {__version__}: few-shot robot adaptation.\n\n"
        "commands:\n"
        + "\n".join(rows)
        + "\n\nRun `zshot <command> --help` for a command's options.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch `zshot <command> ...`; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(_help())
        return 0
    if args[0] in ("-V", "--version"):
        print(f"zshot {__version__}")
        return 0
    name, rest = args[0], args[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        sys.stderr.write(f"zshot: unknown command {name!r}\n\n{_help()}")
        return 2
    if not cmd.built:
        sys.stderr.write(f"zshot {name}: not built yet (issue #{cmd.issue}: {cmd.summary}).\n")
        return 3
    module_name, _, func_name = cmd.target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(rest) or 0)
    except ConfigError as exc:
        sys.stderr.write(f"zshot {name}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"zshot {name}: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
