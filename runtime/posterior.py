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
from itertools import repeat
from operator import add, truediv

import numpy as np
import numpy.typing as npt

__all__ = ["REJECTED", "NaturalPosterior"]

REJECTED = "encoder factor rejected: need finite mu and finite var > 0"
"""Why a factor was refused (NaN/Inf in mu, NaN or <= 0 in var)."""

F64 = npt.NDArray[np.float64]


@dataclass
class NaturalPosterior:
    """Diagonal Gaussian posterior over z as prior + sum of per-transition natural params."""

    prior_mean: F64
    prior_var: F64
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
        self._L = int(self.prior_mean.shape[0])
        self._prec: list[float] | None = None  # set by reset
        self._eta: list[float] | None = None
        self._rows: tuple[F64, F64] | None = None
        self.reset()

    @classmethod
    def standard(cls, latent_dim: int) -> NaturalPosterior:
        """The PEARL prior N(0, I) over a `latent_dim`-dimensional z."""
        return cls(np.zeros(latent_dim), np.ones(latent_dim))

    @property
    def latent_dim(self) -> int:
        """Size L of z."""
        return self._L

    # The totals *including* the prior (so the mean is one division) are kept as two
    # Python lists of L floats, not numpy arrays: at L ~ 5-16 one numpy call costs more
    # than the whole update done on Python floats (IEEE doubles, the same roundings as
    # numpy's float64: the results are bit-identical). The arrays are built on demand.
    # The server's fused graph (runtime/artifact.py `FUSED_IO`) updates them as float64
    # [1, L] arrays instead (`rows` / `set_rows`): then the lists are None until a list
    # user needs them (`_lists`), and the rows are None after a list update.
    def _lists(self) -> tuple[list[float], list[float]]:
        if self._prec is None:
            assert self._rows is not None
            self._prec = self._rows[0][0].tolist()
            self._eta = self._rows[1][0].tolist()
        return self._prec, self._eta  # type: ignore[return-value]

    def rows(self) -> tuple[F64, F64]:
        """The totals (precision, eta, prior included) as float64 [1, L] arrays: the fused
        graph's inputs. Read-only: they may be the state itself."""
        r = self._rows
        if r is None:
            p, e = self._lists()
            r = self._rows = (np.array([p], np.float64), np.array([e], np.float64))
        return r

    def set_rows(self, precision: F64, eta: F64) -> None:
        """The totals after one more factor, as the fused graph computed them (float64
        [1, L] each, not modified afterwards): the same values `add_one` would have made."""
        self._rows = (precision, eta)
        self._prec = self._eta = None
        self.count += 1

    @property
    def precision(self) -> F64:
        """1/var0 + sum_i 1/var_i [L] (a fresh array)."""
        return np.array(self._lists()[0], np.float64)

    @property
    def eta(self) -> F64:
        """mu0/var0 + sum_i mu_i/var_i [L] (a fresh array)."""
        return np.array(self._lists()[1], np.float64)

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
        self._prec = self._prior_precision.tolist()
        self._eta = self._prior_eta.tolist()
        self._rows = None
        self.count = 0

    def add_one(self, mu: npt.NDArray[np.floating], var: npt.NDArray[np.floating]) -> None:
        """Multiply in one factor, `mu`, `var` [1, L] or [L]: the per-step fast path.

        Rejects (ValueError) NaN/Inf in mu, NaN in var and var <= 0, leaving the state
        unchanged. var = +Inf (a factor carrying no information) only counts.
        """
        v = var.ravel().tolist()  # [L] Python floats (float32 -> double is exact)
        m = mu.ravel().tolist()
        if len(v) != self._L or len(m) != self._L:
            raise ValueError(f"factor has {len(m)} mu and {len(v)} var entries, expected {self._L}")
        # min skips a NaN only when it is not first (NaN compares false), but then 1/NaN
        # makes the sum below NaN: every var <= 0 or NaN is rejected, and no division by 0.
        if not min(v) > 0:
            raise ValueError(REJECTED)
        prec = list(map(truediv, repeat(1.0), v))
        eta = list(map(truediv, m, v))
        # NaN/Inf in mu (or an overflow) makes the sum non-finite: x - x != 0. (Finite
        # float32 factors cannot overflow it: |mu/var| < 3e83.)
        check = sum(prec) + sum(eta)
        if check - check != 0:
            raise ValueError(REJECTED)
        old_prec, old_eta = self._lists()
        self._prec = list(map(add, old_prec, prec))
        self._eta = list(map(add, old_eta, eta))
        self._rows = None
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
            raise ValueError(REJECTED)
        prec = 1.0 / var_a  # [n, L]
        self._prec = (self.precision + prec.sum(axis=0)).tolist()
        self._eta = (self.eta + (mu_a * prec).sum(axis=0)).tolist()
        self._rows = None
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
        """Write the posterior mean into `out` [L] (float32)."""
        p, e = self._lists()
        out[:] = list(map(truediv, e, p))

    def mean_row(self) -> npt.NDArray[np.float32]:
        """The posterior mean as a new float32 [1, L] array (the policy's z input)."""
        p, e = self._lists()
        return np.array([list(map(truediv, e, p))], np.float32)

    def sample(self, rng: np.random.Generator) -> F64:
        """One draw z ~ N(mean, var) [L]."""
        return self.mean + np.sqrt(self.var) * rng.standard_normal(self.latent_dim)
