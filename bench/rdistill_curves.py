"""Learning curves of rdistill runs side by side (BENCHMARKS.md `## rdistill`): per round,
the student's episode success in its own trials on the training tasks (DAgger's
student-driven trials, or the `probe_trials` of a behaviour-cloning run) per profile, and
bc_loss.

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
    drove any, else its probe trials (None when it drove none)."""
    for key in (f"student_success_{profile}", f"probe_success_{profile}"):
        v = row.get(key)
        if v is not None and v == v:
            return float(v)
    return None


def main(argv: list[str] | None = None) -> int:
    """Draw the PNG; print one line per run and round."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    p.add_argument("--png", required=True)
    args = p.parse_args(argv)
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
            ys = [student_success(h, prof) for h in hist]
            ax.plot(it, [float("nan") if y is None else y for y in ys], "o-", color=c, label=label)
            teacher = [h.get(f"teacher_success_{prof}") for h in hist]
            ax.plot(
                it, [float("nan") if t is None else t for t in teacher], "x:", color=c, alpha=0.5
            )
        axes[3].plot(it, [h["bc_loss"] for h in hist], "o-", color=c, label=label)
        for h in hist:
            cells = " ".join(f"{p} {student_success(h, p)}" for p in profiles)
            print(f"{label} round {h['iteration']}: student {cells} bc {h['bc_loss']:.4f}")
    for ax, prof in zip(axes[:3], profiles, strict=True):
        ax.set(
            title=f"student's episode success, {prof}\n(x: the teacher's, with its noise)",
            xlabel="round",
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
