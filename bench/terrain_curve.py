"""Few-shot return against environment steps for terrain runs, beside the PEARL paper's figure.

Reads the periodic few-shot evaluations that `zshot train` writes to `RUN/history.json`
(`eval_return`, `counters/env_steps`) and plots one curve per run; with `--paper` it marks
the band the PEARL paper's cheetah-vel curve lies in after 1-2M steps (MuJoCo, read off the
figure, approximate: the simulator, the episode budget and the scale differ). It also prints
the table that BENCHMARKS.md records (`--metric success` plots the insertion runs' success
rate instead), plus the return of standing still (zero torque:
-sum |0 - v_target| = -200 v_target per 200-step episode) on the same evaluation tasks.

    python bench/terrain_curve.py runs/cheetah_vel-s0 runs/cheetah_vel_nocontext-s0 \
        --labels PEARL "no context (DR)" --paper cheetah-vel --out docs/img/cheetah_vel_curve.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# PEARL (Rakelly et al. 2019), Fig. 3, cheetah-vel: average return of the few-shot
# evaluation after ~1-2M environment steps, read off the plot (approximate).
PAPER_BANDS = {"cheetah-vel": (-100.0, -50.0, 1.0e6, 2.0e6)}


def load_curve(run: Path, metric: str = "return") -> list[tuple[int, float]]:
    """(env steps, few-shot eval return or success rate) pairs of a run dir's history.json."""
    path = run / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no history (is {run} a `zshot train` run dir?)")
    history = json.loads(path.read_text())
    key = f"eval_{metric}"
    return [(int(h["counters/env_steps"]), float(h[key])) for h in history if key in h]


def standing_still_return(run: Path) -> float | None:
    """Mean return of zero torque on the run's evaluation tasks (vel families only)."""
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        return None
    import yaml

    from training.common.tasks import make_task_source
    from training.config import TrainConfig

    cfg = TrainConfig.model_validate(yaml.safe_load(cfg_path.read_text()))
    if cfg.env != "terrain":
        return None
    source = make_task_source(cfg)
    tasks = source.test_tasks[: cfg.eval.max_tasks] if cfg.eval.max_tasks else source.test_tasks
    if not str(tasks[0].family).endswith("-vel"):
        return None
    steps = source.env_info["terrain_config"]["max_steps"]
    return -steps * sum(abs(t.target_velocity) for t in tasks) / len(tasks)


def main(argv: list[str]) -> int:
    """Plot and tabulate; returns an exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run dirs of `zshot train`")
    p.add_argument("--labels", nargs="+", help="one legend label per run (default: dir names)")
    p.add_argument("--paper", choices=sorted(PAPER_BANDS), help="mark the PEARL paper's band")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument(
        "--metric",
        choices=["return", "success"],
        default="return",
        help="few-shot return (locomotion) or success rate (insertion)",
    )
    args = p.parse_args(argv)
    labels = args.labels or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        print("terrain_curve: give one label per run", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    still = None
    for run, label in zip(args.runs, labels, strict=True):
        curve = load_curve(run, args.metric)
        if not curve:
            print(f"terrain_curve: {run} has no evaluation yet", file=sys.stderr)
            continue
        steps, ret = zip(*curve, strict=True)
        ax.plot(steps, ret, "o-", label=label)
        print(f"{label}: " + ", ".join(f"{s / 1e3:.0f}k: {r:.2f}" for s, r in curve))
        if args.metric == "return":
            still = still if still is not None else standing_still_return(run)
    if still is not None:
        ax.axhline(still, color="grey", ls=":", label=f"standing still ({still:.0f})")
        print(f"standing still (zero torque) on the same tasks: {still:.1f}")
    if args.paper:
        lo, hi, s0, s1 = PAPER_BANDS[args.paper]
        ax.fill_between([s0, s1], lo, hi, color="tab:red", alpha=0.2,
                        label="PEARL paper (MuJoCo), approx.")  # fmt: skip
        ax.set_xscale("log")
    what = "average return" if args.metric == "return" else "success rate"
    ax.set(xlabel="environment steps (meta-training)", ylabel=f"few-shot {what}",
           title=f"few-shot {what} on held-out tasks")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
