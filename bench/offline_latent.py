"""Does an offline PEARL encoder carry task information? (BENCHMARKS.md, ## offline)

Encodes two 64-transition per-behaviour contexts from every 8th task of a dataset and prints
the posterior means and the across-task std of the means (near 0: the encoder collapsed to
the prior and z tells the policy nothing).

    python bench/offline_latent.py runs/offline_insertion_kl01-s0 runs/data/insertion-s0
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from training.algos.pearl.losses import product_of_gaussians
from training.common.datasets import load_dataset
from training.registry import load_finetune_run as load_run


def main() -> None:
    """Print the posterior means per task and their spread across tasks."""
    torch.set_num_threads(1)
    nets, _ = load_run(sys.argv[1])
    ds = load_dataset(sys.argv[2])
    rng = np.random.default_rng(0)
    means, zv = [], None
    for ti in range(0, len(ds.tasks), 8):
        for _ in range(2):
            ctx = ds.sample_context(np.array([ti]), 64, rng, per_behaviour=True)
            with torch.no_grad():
                mu, var = nets.encoder(torch.from_numpy(ctx))
                zm, zv = product_of_gaussians(mu, var)
            means.append(zm.numpy()[0])
            print(ti, ds.tasks[ti].label, np.round(means[-1], 2))
    spread = np.array(means).std(0)
    assert zv is not None
    print("across-task std of posterior means", spread.round(3))
    print("posterior variance (last context)", zv.numpy()[0].round(3))


if __name__ == "__main__":
    main()
