"""The per-bin rate R2 and the first-bins gap (evaluation/per_bin.py) on arrays whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from pyro_lfads.evaluation.per_bin import first_bins_r2_gap, rate_r2_by_bin


def test_rate_r2_by_bin_and_the_gap_by_hand():
    """Rates off by a known error in the first bins and exact later: R2 1 - error^2 / variance there, 1 later,
    and the gap the mean of what the first three bins lose."""
    rng = np.random.default_rng(0)
    truth = rng.gamma(2.0, 1.0, size=(40, 10, 6))
    inferred = truth.copy()
    inferred[:, 0] += 1.0  # squared error 1 in every entry of bin 1
    inferred[:, 1] += 0.5
    by_bin = rate_r2_by_bin(truth, inferred)
    variance = truth.var(axis=(0, 2))
    np.testing.assert_allclose(by_bin[:2], 1 - np.array([1.0, 0.25]) / variance[:2])
    np.testing.assert_allclose(by_bin[2:], 1.0)
    assert first_bins_r2_gap(by_bin) == pytest.approx(1 - np.mean(by_bin[:3]))
    assert first_bins_r2_gap(rate_r2_by_bin(truth, truth)) == 0.0


def test_the_gap_is_undefined_without_later_bins_and_a_flat_bin_is_nan():
    assert np.isnan(first_bins_r2_gap(np.array([0.5, 0.6, 0.7])))
    truth = np.ones((4, 5, 2))
    truth[:, 1:] += np.arange(8).reshape(4, 1, 2)
    by_bin = rate_r2_by_bin(truth, truth + 0.1)
    assert np.isnan(by_bin[0]) and np.all(np.isfinite(by_bin[1:]))
    with pytest.raises(ValueError, match="one shape"):
        rate_r2_by_bin(truth, truth[:, :3])
