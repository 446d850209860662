"""ms per PEARL update step on this machine for a few (meta_batch x batch, width) sizes.

PEARL's own default (oyster: meta_batch 16, batch 256, context 100, 300-wide Q/policy,
200-wide encoder) is the reference; the ratio column says how much cheaper each size is.

    python bench/train_update.py [--threads 2] [--repeats 20] [--obs-dim 20] [--act-dim 4]
"""

from __future__ import annotations

import argparse
import time

import torch

from training.algos.pearl.losses import PearlOptimizers, pearl_update
from training.algos.pearl.networks import make_nets
from training.common.batches import MetaBatch
from training.config import TrainConfig

SIZES = [
    # (label, meta_batch, batch, context, hidden, encoder_hidden)
    ("PEARL default 16x256", 16, 256, 100, [300, 300, 300], [200, 200, 200]),
    ("8x256 w256", 8, 256, 64, [256, 256], [200, 200]),
    ("8x128 w128 (zshot default)", 8, 128, 64, [128, 128], [128, 128]),
    ("4x128 w128", 4, 128, 64, [128, 128], [128, 128]),
    ("8x64 w64", 8, 64, 32, [64, 64], [64, 64]),
]


def time_update(meta_batch, batch, context, hidden, enc_hidden, obs_dim, act_dim, repeats):
    """Median ms of `repeats` pearl_update() calls after 3 warm-up calls."""
    cfg = TrainConfig(
        meta_batch=meta_batch,
        batch_size=batch,
        context_size=context,
        sac={"hidden": hidden},
        encoder={"hidden": enc_hidden},
    )
    torch.manual_seed(0)
    nets = make_nets(obs_dim, act_dim, cfg)
    opts = PearlOptimizers.create(nets, cfg)
    d = 2 * obs_dim + act_dim + 1
    b = MetaBatch(
        torch.randn(meta_batch, batch, obs_dim),
        torch.rand(meta_batch, batch, act_dim) * 2 - 1,
        torch.randn(meta_batch, batch, 1),
        torch.randn(meta_batch, batch, obs_dim),
        torch.zeros(meta_batch, batch, 1),
        torch.randn(meta_batch, context, d),
    )
    for _ in range(3):
        pearl_update(b, nets, opts, cfg)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pearl_update(b, nets, opts, cfg)
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1000 * times[len(times) // 2]


def main() -> None:
    """Print a table of ms/update and the ratio to PEARL's default size."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--obs-dim", type=int, default=20)
    p.add_argument("--act-dim", type=int, default=4)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = [
        (label, time_update(mb, b, c, h, eh, a.obs_dim, a.act_dim, a.repeats))
        for label, mb, b, c, h, eh in SIZES
    ]
    ref = rows[0][1]
    print(f"torch {torch.__version__}, {a.threads} threads, obs {a.obs_dim}, act {a.act_dim}")
    print(f"{'size':<30} {'ms/update':>10} {'x PEARL default':>16}")
    for label, ms in rows:
        print(f"{label:<30} {ms:>10.1f} {ms / ref:>16.3f}")


if __name__ == "__main__":
    main()
