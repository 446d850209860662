"""The PCGrad illustration (Yu et al. 2020, Figure 1): Adam against Adam + PCGrad on two
conflicting 2-D losses, the trajectories drawn over the loss surface.

    L1(θ) = 20 log(max(|0.5 θ1 + tanh θ2|, 5e-6))
    L2(θ) = 25 log(max(|0.5 θ1 - tanh θ2 + 2|, 5e-6))

Both are minimised on a line; the lines meet only where θ1 = -2 and tanh θ2 = 1, so the
joint minimum is the valley θ1 ≈ -2, θ2 ≳ 6.4 (tanh θ2 within 5e-6 of 1), where
L1 + L2 = 45 log 5e-6 ≈ -549. Plain Adam on L1 + L2 slides into one loss's valley and
stalls there (the other's gradient is cancelled); with the two gradients' conflicting
components projected away (training/common/pcgrad.py) it follows the valley to the
joint minimum.

    python bench/pcgrad_illustration.py [--steps 6000] [--lr 0.003] [--out docs/img/pcgrad_illustration.png]

prints each start point's final θ, L1 + L2 and distance to the joint minimum's valley, and
writes the figure. The start points are our own choice (the paper's exact ones were not at
hand): points off both valleys on either side of the conflict.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from training.common.pcgrad import project_conflicting

FLOOR = 5e-6
STARTS: tuple[tuple[float, float], ...] = ((-3.0, 2.0), (0.0, 0.0))
"""(θ1, θ2) start points of the figure and of the test."""
VALLEY_THETA2 = math.atanh(1.0 - FLOOR)
"""θ2 from which tanh θ2 is within the floor of 1: the joint minimum's valley starts there."""
JOINT_MIN = 45.0 * math.log(FLOOR)
"""L1 + L2 on the joint minimum's valley."""


def losses(theta: torch.Tensor) -> torch.Tensor:
    """(L1, L2) at θ (..., 2) -> (..., 2)."""
    t1, t2 = theta[..., 0], theta[..., 1]
    l1 = 20.0 * torch.log(torch.clamp((0.5 * t1 + torch.tanh(t2)).abs(), min=FLOOR))
    l2 = 25.0 * torch.log(torch.clamp((0.5 * t1 - torch.tanh(t2) + 2.0).abs(), min=FLOOR))
    return torch.stack([l1, l2], -1)


def valley_distance(theta: torch.Tensor) -> float:
    """Euclidean distance from θ to the joint minimum's valley {θ1 = -2, θ2 >= VALLEY_THETA2}."""
    t1, t2 = float(theta[0]), float(theta[1])
    return math.hypot(t1 + 2.0, max(VALLEY_THETA2 - t2, 0.0))


def task_gradients(theta: np.ndarray) -> np.ndarray:
    """(dL1/dθ, dL2/dθ) at θ (2,) -> (2, 2), one row per task, in closed form (zero where a
    loss sits on its floor); tests check it against autograd of `losses`."""
    t1, t2 = float(theta[0]), float(theta[1])
    th = math.tanh(t2)
    dth = 1.0 - th * th
    u, v = 0.5 * t1 + th, 0.5 * t1 - th + 2.0
    g1 = (0.0, 0.0) if abs(u) <= FLOOR else (10.0 / u, 20.0 * dth / u)
    g2 = (0.0, 0.0) if abs(v) <= FLOOR else (12.5 / v, -25.0 * dth / v)
    return np.array([g1, g2])


def optimise(
    start: tuple[float, float], *, pcgrad: bool, steps: int = 6000, lr: float = 0.003, seed: int = 0
) -> np.ndarray:
    """Adam on L1 + L2 from `start` (with `pcgrad`: on the PCGrad-projected sum of the two
    task gradients, training/common/pcgrad.py); returns the trajectory (steps + 1, 2)."""
    theta = torch.tensor(start, dtype=torch.float64)
    opt = torch.optim.Adam([theta], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    path = np.empty((steps + 1, 2))
    path[0] = start
    for k in range(steps):
        g = torch.from_numpy(task_gradients(path[k]))
        theta.grad = (project_conflicting(g, gen) if pcgrad else g).sum(0)
        opt.step()
        path[k + 1] = theta.numpy()
    return path


def final_figures(path: np.ndarray) -> tuple[float, float]:
    """(L1 + L2, distance to the joint minimum's valley) at the end of a trajectory."""
    end = torch.as_tensor(path[-1])
    return float(losses(end).sum()), valley_distance(end)


def figure(paths: dict[str, list[np.ndarray]], out: Path) -> None:
    """The loss surface L1 + L2 with each method's trajectories, side by side."""
    import matplotlib  # lazy: plotting only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t1, t2 = np.meshgrid(np.linspace(-10, 10, 400), np.linspace(-10, 10, 400))
    grid = torch.as_tensor(np.stack([t1, t2], -1))
    total = losses(grid).sum(-1).numpy()
    fig, axes = plt.subplots(1, len(paths), figsize=(5.2 * len(paths), 4.6), sharey=True)
    for ax, (label, runs) in zip(np.atleast_1d(axes), paths.items(), strict=True):
        cs = ax.contourf(t1, t2, total, levels=40, cmap="viridis")
        for run in runs:
            ax.plot(run[:, 0], run[:, 1], "r-", lw=1.5)
            ax.plot(*run[0], "wo", ms=6)
            ax.plot(*run[-1], "r*", ms=10)
        ax.plot([-2, -2], [VALLEY_THETA2, 10], "w--", lw=1, label="joint minimum")
        ax.set(title=label, xlabel="θ1", xlim=(-10, 10), ylim=(-10, 10))
        ax.legend(loc="lower right", fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("θ2")
    fig.colorbar(cs, ax=axes, label="L1 + L2")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> None:
    """Run both methods from every start point, print the figures, draw the plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--out", type=Path, default=Path("docs/img/pcgrad_illustration.png"))
    args = parser.parse_args()
    paths: dict[str, list[np.ndarray]] = {"Adam": [], "Adam + PCGrad": []}
    print(f"joint minimum L1 + L2 = {JOINT_MIN:.1f}; {args.steps} Adam steps, lr {args.lr}")
    print(f"{'start':>14}  {'method':<14} {'final θ':>18} {'L1 + L2':>9} {'dist':>6}")
    for start in STARTS:
        for label in paths:
            path = optimise(start, pcgrad=label != "Adam", steps=args.steps, lr=args.lr)
            paths[label].append(path)
            total, dist = final_figures(path)
            end = f"({path[-1, 0]:.2f}, {path[-1, 1]:.2f})"
            print(f"{start!s:>14}  {label:<14} {end:>18} {total:9.1f} {dist:6.2f}")
    figure(paths, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
