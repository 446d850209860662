"""The natural-parameter posterior equals PEARL's product of Gaussians, in any order/batching."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from runtime.posterior import NaturalPosterior

L = 3
means = arrays(np.float64, st.tuples(st.integers(1, 20), st.just(L)), elements=st.floats(-10, 10))


def direct_product(
    mu0: np.ndarray, var0: np.ndarray, mu: np.ndarray, var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Product of N(mu0, var0) and N(mu_i, var_i), computed from scratch over the whole context
    (rlkit's product_of_gaussians with the prior as one more factor)."""
    all_mu = np.vstack([mu0, mu])
    all_var = np.vstack([var0, var])
    var_p = 1.0 / np.sum(1.0 / all_var, axis=0)
    return var_p * np.sum(all_mu / all_var, axis=0), var_p


@settings(max_examples=200, deadline=None)
@given(means, st.data())
def test_matches_product_of_gaussians(mu: np.ndarray, data: st.DataObject) -> None:
    n = mu.shape[0]
    var = data.draw(arrays(np.float64, (n, L), elements=st.floats(1e-3, 100)))
    mu0 = data.draw(arrays(np.float64, (L,), elements=st.floats(-3, 3)))
    var0 = data.draw(arrays(np.float64, (L,), elements=st.floats(0.1, 10)))
    post = NaturalPosterior(mu0, var0)
    for i in range(n):  # one at a time, as the server does per step
        post.add(mu[i], var[i])
    want_mean, want_var = direct_product(mu0, var0, mu, var)
    np.testing.assert_allclose(post.var, want_var, rtol=1e-9)
    np.testing.assert_allclose(post.mean, want_mean, rtol=1e-7, atol=1e-9)
    assert post.count == n


@settings(max_examples=100, deadline=None)
@given(means, st.data())
def test_batching_and_order_do_not_matter(mu: np.ndarray, data: st.DataObject) -> None:
    n = mu.shape[0]
    var = data.draw(arrays(np.float64, (n, L), elements=st.floats(1e-2, 10)))
    perm = data.draw(st.permutations(range(n)))
    split = data.draw(st.integers(0, n))
    one = NaturalPosterior.standard(L)
    one.add(mu, var)  # the whole batch
    two = NaturalPosterior.standard(L)
    p = np.array(perm, dtype=int)
    if split:
        two.add(mu[p[:split]], var[p[:split]])
    if split < n:
        two.add(mu[p[split:]], var[p[split:]])
    np.testing.assert_allclose(one.mean, two.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(one.var, two.var, rtol=1e-12)
    assert one.count == two.count == n


@settings(max_examples=100, deadline=None)
@given(means, st.data())
def test_variance_never_grows_and_reset_restores_prior(mu: np.ndarray, data: st.DataObject) -> None:
    n = mu.shape[0]
    var = data.draw(arrays(np.float64, (n, L), elements=st.floats(1e-3, 1e3)))
    post = NaturalPosterior.standard(L)
    prev = post.var.copy()
    for i in range(n):
        post.add(mu[i], var[i])
        assert np.all(post.var < prev)  # evidence only sharpens a product of Gaussians
        prev = post.var.copy()
    post.reset()
    np.testing.assert_array_equal(post.mean, np.zeros(L))
    np.testing.assert_array_equal(post.var, np.ones(L))
    assert post.count == 0


def test_state_is_constant_size_in_context_length() -> None:
    # O(1): after 100,000 transitions the posterior still holds two [L] sums and a count.
    post = NaturalPosterior.standard(L)
    rng = np.random.default_rng(0)
    for _ in range(100):
        post.add(rng.normal(size=(1000, L)), rng.uniform(0.5, 2, size=(1000, L)))
    assert post.count == 100_000
    assert post.precision_sum.shape == post.eta_sum.shape == (L,)
    # 1e5 factors of var ~ U(0.5, 2): posterior var ~ 1/(1e5 * E[1/var]) ~ 1e-5
    assert np.all(post.var < 2e-5) and np.all(post.var > 5e-6)


def test_identical_factors_shrink_like_one_over_n() -> None:
    post = NaturalPosterior.standard(2)
    post.add(np.full((9, 2), 4.0), np.ones((9, 2)))
    np.testing.assert_allclose(post.var, [0.1, 0.1])  # 1 / (1 + 9)
    np.testing.assert_allclose(post.mean, [3.6, 3.6])  # 0.1 * 9 * 4


def test_sample_has_posterior_moments() -> None:
    post = NaturalPosterior(np.array([1.0, -2.0]), np.array([4.0, 0.25]))
    rng = np.random.default_rng(1)
    draws = np.array([post.sample(rng) for _ in range(20000)])
    np.testing.assert_allclose(draws.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(draws.var(0), [4.0, 0.25], rtol=0.05)


@pytest.mark.parametrize(
    ("mu", "var", "match"),
    [
        (np.zeros(2), np.ones(2), r"\[n, 3\]"),
        (np.zeros(3), np.array([1.0, np.nan, 1.0]), "finite"),
        (np.array([np.inf, 0, 0]), np.ones(3), "finite"),
        (np.zeros(3), np.array([1.0, 0.0, 1.0]), "var > 0"),
        (np.zeros(3), np.array([1.0, -2.0, 1.0]), "var > 0"),
    ],
)
def test_bad_factors_are_rejected_and_leave_state_alone(
    mu: np.ndarray, var: np.ndarray, match: str
) -> None:
    for add in ("add", "add_one"):
        post = NaturalPosterior.standard(3)
        want = match if add == "add" or "n," not in match else "entries"
        with pytest.raises(ValueError, match=want), np.errstate(all="ignore"):
            getattr(post, add)(mu, var)
        assert post.count == 0 and np.all(post.precision_sum == 0) and np.all(post.eta_sum == 0)


@settings(max_examples=100, deadline=None)
@given(means, st.data())
def test_fast_path_equals_batch_path(mu: np.ndarray, data: st.DataObject) -> None:
    n = mu.shape[0]
    var = data.draw(arrays(np.float64, (n, L), elements=st.floats(1e-3, 100)))
    fast, batch = NaturalPosterior.standard(L), NaturalPosterior.standard(L)
    for i in range(n):
        fast.add_one(mu[i : i + 1].astype(np.float32), var[i : i + 1].astype(np.float32))
    batch.add(mu.astype(np.float32), var.astype(np.float32))
    np.testing.assert_allclose(fast.mean, batch.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.var, batch.var, rtol=1e-12)
    z = np.empty(L, np.float32)
    fast.mean_into(z)
    np.testing.assert_allclose(z, fast.mean, rtol=1e-6, atol=1e-30)


def test_bad_prior_is_rejected() -> None:
    with pytest.raises(ValueError, match="prior variance"):
        NaturalPosterior(np.zeros(2), np.array([1.0, 0.0]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(1.0, 5e5), min_size=1, max_size=300), st.sampled_from([50.0, 90.0, 99.0]))
def test_histogram_percentiles_are_within_one_bin(values: list[float], q: float) -> None:
    from runtime.server import LatencyHistogram

    h = LatencyHistogram()
    for v in values:
        h.record(v)
    got = h.percentile(q)
    exact = float(np.percentile(values, q, method="inverted_cdf"))
    # The upper edge of the bin holding the exact percentile: never below it, <= 9 % above.
    assert exact <= got * (1 + 1e-12) and got <= exact * 2 ** (1 / 8) * (1 + 1e-12)
    assert h.max_us == max(values) and h.n == len(values)


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float32,
        (L,),
        elements=st.one_of(
            st.floats(-10, 10, width=32),
            st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, -1.0, 1e-30]),
        ),
    ),
    arrays(np.float32, (L,), elements=st.floats(-10, 10, width=32)),
)
def test_add_one_accepts_exactly_what_add_accepts(var: np.ndarray, mu: np.ndarray) -> None:
    """add_one's cheap checks (Python min over var, which a NaN can make skip an entry, and a
    dot product) accept exactly the factors `add` accepts (finite mu, finite var > 0, or var
    +Inf), and a rejected one leaves the state as it was, after a reset too."""
    fast, batch = NaturalPosterior.standard(L), NaturalPosterior.standard(L)
    fast.add_one(np.zeros(L, np.float32), np.ones(L, np.float32))
    fast.reset()
    ok = bool(np.all(var > 0) and not np.any(np.isnan(var)))
    with np.errstate(all="ignore"):
        try:
            fast.add_one(mu[None, :], var[None, :])
            accepted = True
        except ValueError:
            accepted = False
    assert accepted == ok
    if ok:
        # +Inf var: a factor carrying no information (add() refuses it; add_one only counts)
        batch.add(mu, np.where(np.isinf(var), np.float32(3e38), var))
        np.testing.assert_allclose(fast.mean, batch.mean, rtol=1e-6, atol=1e-30)
        assert fast.count == 1
    else:
        assert fast.count == 0 and np.all(fast.precision_sum == 0) and np.all(fast.eta_sum == 0)


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float32, st.tuples(st.integers(1, 12), st.just(L)), elements=st.floats(-10, 10, width=32)
    ),
    st.data(),
)
def test_add_one_is_the_float64_update_bit_for_bit(mu: np.ndarray, data: st.DataObject) -> None:
    """The per-step path on Python floats gives exactly numpy's float64 sums (the same IEEE
    roundings in the same order), and the float32 z it hands the policy is their quotient
    rounded once."""
    var = data.draw(arrays(np.float32, mu.shape, elements=st.floats(2.0**-20, 2.0**20, width=32)))
    post = NaturalPosterior(np.full(L, 0.5), np.full(L, 2.0))
    prec, eta = 1.0 / np.full(L, 2.0), np.full(L, 0.5) / np.full(L, 2.0)
    for i in range(mu.shape[0]):
        post.add_one(mu[i : i + 1], var[i : i + 1])
        v = var[i].astype(np.float64)
        prec, eta = prec + 1.0 / v, eta + mu[i].astype(np.float64) / v
    np.testing.assert_array_equal(post.precision, prec)
    np.testing.assert_array_equal(post.eta, eta)
    np.testing.assert_array_equal(post.mean_row(), (eta / prec).astype(np.float32)[None, :])
    z = np.empty(L, np.float32)
    post.mean_into(z)
    np.testing.assert_array_equal(z, (eta / prec).astype(np.float32))
    assert post.count == mu.shape[0]
