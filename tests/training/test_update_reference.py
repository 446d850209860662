"""PEARL and offline-PEARL updates stay what they were when the reference was recorded
(before training/ was restructured into a family of algorithms, issue #18).

On the reference machine's torch build and CPU kernels the results must be bit-identical;
elsewhere (another CPU picks other SIMD kernels, so float sums round differently) they must
agree to float32 rounding accumulated over a few Adam steps.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.training import reference_updates as ref


@pytest.fixture(scope="module")
def results() -> dict[str, np.ndarray]:
    import torch

    threads = torch.get_num_threads()
    try:
        return ref.all_results()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_updates_match_the_recorded_reference(results: dict[str, np.ndarray]) -> None:
    reference = np.load(ref.REFERENCE)
    assert sorted(results) == sorted(reference.files), "the compared parameters changed"
    same_machine = json.loads(ref.FINGERPRINT.read_text()) == ref.fingerprint()
    for name in reference.files:
        want, got = reference[name], results[name]
        assert got.shape == want.shape, name
        if same_machine:
            assert np.array_equal(got, want), f"{name} is not bit-identical to the reference"
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)


def test_reference_covers_both_algorithms_and_whole_runs() -> None:
    groups = {k.split("/")[0] for k in np.load(ref.REFERENCE).files}
    assert groups == {
        "pearl_update",
        "offline_update_awac",
        "offline_update_iql",
        "pearl_run",
        "offline_run",
    }
