"""Learning curves of rdistill runs side by side (BENCHMARKS.md `## rdistill`): per round
(then per PPO iteration of an RL phase), the student's episode success in its own trials on
the training tasks (DAgger's student-driven trials, the `probe_trials` of a
behaviour-cloning run, the RL phase's own trials) per profile, and bc_loss.

    python bench/rdistill_curves.py dagger=runs/rd/a-s0 bc=runs/rd/b-s0 \\
        "bc, noise 0.1"=runs/rd/d-s0 --png docs/img/rdistill_curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def student_success(row: dict[str, Any], profile: str) -> float | None:
    """The student's success in this round's trials of `profile`: its DAgger trials if it
    drove any, else its probe trials, or a PPO iteration's trials (its RL phase; None when
    it drove none)."""
    keys = (f"student_success_{profile}", f"probe_success_{profile}", f"rl_success_{profile}")
    for key in keys:
        v = row.get(key)
        if v is not None and v == v:
            return float(v)
    return None


def smoothed(ys: list[float | None], window: int) -> list[float]:
    """The trailing mean over the last `window` values that exist (NaN where none do)."""
    out = []
    for i in range(len(ys)):
        seen = [y for y in ys[max(0, i - window + 1) : i + 1] if y is not None]
        out.append(sum(seen) / len(seen) if seen else float("nan"))
    return out


def main(argv: list[str] | None = None) -> int:
    """Draw the PNG; print one line per run and round."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    p.add_argument("--png", required=True)
    p.add_argument(
        "--smooth",
        type=int,
        default=1,
        help="draw the student's success as a trailing mean over this many rows (an RL "
        "phase's rows are 32 episodes per profile each; default 1: none)",
    )
    args = p.parse_args(argv)
    if args.smooth < 1:
        print(f"rdistill_curves: --smooth must be >= 1, got {args.smooth}", file=sys.stderr)
        return 2
    runs = []
    for item in args.runs:
        label, sep, path = item.partition("=")
        hist = Path(path) / "history.json"
        if not sep or not label:
            print(f"rdistill_curves: expected LABEL=RUN_DIR, got {item!r}", file=sys.stderr)
            return 2
        if not hist.is_file():
            print(f"rdistill_curves: {hist}: no such file (an rdistill run dir?)", file=sys.stderr)
            return 2
        runs.append((label, json.loads(hist.read_text())))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = ("known", "oda", "hard")
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for k, (label, hist) in enumerate(runs):
        c = f"C{k}"
        it = [h["iteration"] for h in hist]
        for ax, prof in zip(axes[:3], profiles, strict=True):
            ys = smoothed([student_success(h, prof) for h in hist], args.smooth)
            ax.plot(it, ys, "o-" if args.smooth == 1 else "-", color=c, label=label)
            teacher = [h.get(f"teacher_success_{prof}") for h in hist]
            ax.plot(
                it, [float("nan") if t is None else t for t in teacher], "x:", color=c, alpha=0.5
            )
        bc = [float("nan") if h.get("bc_loss") is None else h["bc_loss"] for h in hist]
        axes[3].plot(it, bc, "o-", color=c, label=label)
        for h in hist:
            cells = " ".join(f"{p} {student_success(h, p)}" for p in profiles)
            step = "rl" if h.get("phase") == "rl" else "round"
            loss = "-" if h.get("bc_loss") is None else f"{h['bc_loss']:.4f}"
            print(f"{label} {step} {h['iteration']}: student {cells} bc {loss}")
    for ax, prof in zip(axes[:3], profiles, strict=True):
        ax.set(
            title=f"student's episode success, {prof}\n(x: the teacher's, with its noise)",
            xlabel="round, then PPO iteration",
            ylim=(-0.02, 1.02),
        )
    axes[0].legend(fontsize=7)
    axes[3].set(title="bc_loss", xlabel="round", yscale="log")
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.png, dpi=80)
    plt.close(fig)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
