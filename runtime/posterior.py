"""PEARL's product-of-Gaussians posterior over the task latent z, kept in natural parameters.

The encoder maps each transition c_i = (s, a, r, s') to a Gaussian factor N(mu_i, var_i)
over z (diagonal, [L] each). The posterior is the normalised product of the prior and all
factors (Rakelly et al. 2019, eq. 3 / `product_of_gaussians` in rlkit):

    precision  = 1/var0 + sum_i 1/var_i
    var        = 1 / precision
    mean       = var * (mu0/var0 + sum_i mu_i/var_i)

We keep the two sums (`precision_sum`, `eta_sum` = precision-weighted mean sum) instead of the
context itself, so adding a transition costs O(L) whatever the context length, and memory is
O(L). Sums are float64: float32 loses the last factors after ~1e7 unit precisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["NaturalPosterior"]

F64 = npt.NDArray[np.float64]


@dataclass
class NaturalPosterior:
    """Diagonal Gaussian posterior over z as prior + sum of per-transition natural params."""

    prior_mean: F64
    prior_var: F64
    # Totals *including* the prior, so the mean is one division: [L] each, float64.
    precision: F64 = field(init=False)  # 1/var0 + sum_i 1/var_i
    eta: F64 = field(init=False)  # mu0/var0 + sum_i mu_i/var_i
    count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.prior_mean = np.asarray(self.prior_mean, dtype=np.float64).reshape(-1)
        self.prior_var = np.asarray(self.prior_var, dtype=np.float64).reshape(-1)
        if self.prior_mean.shape != self.prior_var.shape:
            raise ValueError(
                f"prior mean {self.prior_mean.shape} and var {self.prior_var.shape} differ"
            )
        if not np.all(np.isfinite(self.prior_var) & (self.prior_var > 0)):
            raise ValueError("prior variance must be finite and > 0")
        if not np.all(np.isfinite(self.prior_mean)):
            raise ValueError("prior mean must be finite")
        self._prior_precision = 1.0 / self.prior_var  # [L] natural parameters of the prior
        self._prior_eta = self.prior_mean / self.prior_var
        self.reset()

    @classmethod
    def standard(cls, latent_dim: int) -> NaturalPosterior:
        """The PEARL prior N(0, I) over a `latent_dim`-dimensional z."""
        return cls(np.zeros(latent_dim), np.ones(latent_dim))

    @property
    def latent_dim(self) -> int:
        """Size L of z."""
        return int(self.prior_mean.shape[0])

    @property
    def precision_sum(self) -> F64:
        """sum_i 1/var_i over the context (prior excluded) [L]."""
        return self.precision - self._prior_precision

    @property
    def eta_sum(self) -> F64:
        """sum_i mu_i/var_i over the context (prior excluded) [L]."""
        return self.eta - self._prior_eta

    def reset(self) -> None:
        """Back to the prior: forget every transition."""
        # precision and eta are the rows of one [2, L] array, so that `add_one` updates
        # both with one in-place add; `_num` / `_fac` are its scratch rows (1, mu) and
        # (1/var, mu/var).
        nat = np.stack([self._prior_precision, self._prior_eta])
        self._nat = nat
        self.precision = nat[0]
        self.eta = nat[1]
        self._num = np.ones_like(nat)
        self._fac = np.empty_like(nat)
        self._fac_prec, self._fac_eta = self._fac[0], self._fac[1]
        self.count = 0

    def add_one(self, mu: npt.NDArray[np.floating], var: npt.NDArray[np.floating]) -> None:
        """Multiply in one factor, `mu`, `var` [1, L] or [L]: the per-step fast path.

        Rejects (ValueError) NaN/Inf in mu, NaN in var and var <= 0, leaving the state
        unchanged. var = +Inf (a factor carrying no information) only counts.
        """
        v = var.reshape(-1)  # [L]
        # Python's min over L floats is ~5x cheaper than a numpy reduce at this size. A NaN
        # can make it skip an entry (NaN compares false), but a NaN var makes `check` below
        # non-finite, so every var <= 0 or NaN is still rejected.
        if not min(v.tolist()) > 0:
            raise ValueError("encoder factor rejected: need finite mu and finite var > 0")
        if v.shape[0] != self.latent_dim:
            raise ValueError(f"factor has {v.shape[0]} entries, expected {self.latent_dim}")
        num = self._num
        num[1] = mu  # [1, L] or [L]; a wrong size raises ValueError, state unchanged
        fac = np.divide(num, v, out=self._fac)  # float64 [2, L]: 1/var, mu/var
        # NaN/Inf in mu (or an overflow) makes the dot product non-finite: x - x != 0.
        check = float(self._fac_eta.dot(self._fac_prec))
        if check - check != 0:
            raise ValueError("encoder factor rejected: need finite mu and finite var > 0")
        self._nat += fac
        self.count += 1

    def add(self, mu: npt.ArrayLike, var: npt.ArrayLike) -> None:
        """Multiply in factors: `mu`, `var` are [L] (one transition) or [n, L] (n of them).

        All or nothing: a non-finite factor or var <= 0 anywhere raises ValueError and
        changes nothing.
        """
        mu_a = np.asarray(mu, dtype=np.float64)
        var_a = np.asarray(var, dtype=np.float64)
        if mu_a.ndim == 1:
            mu_a, var_a = mu_a[None, :], var_a[None, :]
        if mu_a.shape != var_a.shape or mu_a.ndim != 2 or mu_a.shape[1] != self.latent_dim:
            raise ValueError(
                f"factors must be [n, {self.latent_dim}] each, got mu {mu_a.shape} var {var_a.shape}"
            )
        if not (np.all(np.isfinite(mu_a)) and np.all(np.isfinite(var_a)) and np.all(var_a > 0)):
            raise ValueError("encoder factor rejected: need finite mu and finite var > 0")
        prec = 1.0 / var_a  # [n, L]
        self.precision += prec.sum(axis=0)
        self.eta += (mu_a * prec).sum(axis=0)
        self.count += int(mu_a.shape[0])

    @property
    def var(self) -> F64:
        """Posterior variance [L]."""
        return 1.0 / self.precision

    @property
    def mean(self) -> F64:
        """Posterior mean [L]."""
        return self.eta / self.precision

    def mean_into(self, out: npt.NDArray[np.float32]) -> None:
        """Write the posterior mean into `out` [L] (float32) without allocating."""
        np.divide(self.eta, self.precision, out=out, casting="unsafe")

    def sample(self, rng: np.random.Generator) -> F64:
        """One draw z ~ N(mean, var) [L]."""
        return self.mean + np.sqrt(self.var) * rng.standard_normal(self.latent_dim)
