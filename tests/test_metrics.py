"""Tests for the rate and likelihood metrics, against arithmetic done by hand."""

import math

import numpy as np
import pytest

from pyro_lfads.errors import InputError
from pyro_lfads.metrics import bits_per_spike, poisson_nll, rate_r2, rate_r2_per_neuron

# 1 trial x 2 bins x 2 neurons; columns are neurons.
TRUE = np.array([[[1.0, 2.0], [3.0, 6.0]]])
PRED = np.array([[[1.0, 3.0], [2.0, 6.0]]])


def test_rate_r2_by_hand():
    # values 1, 2, 3, 6 -> mean 3, SS_tot = 4 + 1 + 0 + 9 = 14; residuals 0, -1, 1, 0 -> SS_res = 2.
    assert rate_r2(TRUE, PRED) == pytest.approx(1 - 2 / 14)


def test_rate_r2_per_neuron_by_hand():
    # neuron 0: values 1, 3 (mean 2, SS_tot 2), residuals 0, 1 -> R2 = 1 - 1/2 = 0.5
    # neuron 1: values 2, 6 (mean 4, SS_tot 8), residuals -1, 0 -> R2 = 1 - 1/8 = 0.875
    assert rate_r2_per_neuron(TRUE, PRED) == pytest.approx((0.5 + 0.875) / 2)


def test_rate_r2_of_identical_arrays_is_one():
    x = np.random.default_rng(0).gamma(2.0, size=(3, 5, 4))
    assert rate_r2(x, x) == 1.0
    assert rate_r2_per_neuron(x, x) == 1.0


def test_poisson_nll_by_hand():
    counts = np.array([[[0.0, 2.0], [1.0, 3.0]]])
    rates = np.array([[[0.5, 1.0], [2.0, 3.0]]])
    # -log p(k | r) = r - k log r + log k!
    expected = (0.5 - 0 + 0) + (1.0 - 0 + math.log(2)) + (2.0 - math.log(2.0) + 0) + (
        3.0 - 3 * math.log(3.0) + math.log(6)
    )
    assert poisson_nll(counts, rates) == pytest.approx(expected)


def test_bits_per_spike_by_hand():
    counts = np.array([[[0.0, 2.0], [2.0, 2.0]]])
    rates = np.array([[[0.5, 1.0], [2.0, 2.0]]])
    # null rates: neuron 0 mean (0 + 2) / 2 = 1, neuron 1 mean 2.
    # log-likelihoods without log k! (it cancels): k log r - r.
    ll_model = (0 - 0.5) + (2 * math.log(1.0) - 1.0) + (2 * math.log(2.0) - 2.0) + (2 * math.log(2.0) - 2.0)
    ll_null = (0 - 1.0) + (2 * math.log(2.0) - 2.0) + (2 * math.log(1.0) - 1.0) + (2 * math.log(2.0) - 2.0)
    expected = (ll_model - ll_null) / (6 * math.log(2))
    assert bits_per_spike(counts, rates) == pytest.approx(expected)


def test_bits_per_spike_of_null_is_zero_and_of_truth_is_positive():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 50)
    rates = np.exp(np.sin(t)[None, :, None] + rng.normal(size=(1, 1, 6)))
    rates = np.broadcast_to(rates, (200, 50, 6))
    counts = rng.poisson(rates).astype(float)
    null = np.broadcast_to(counts.mean(axis=(0, 1), keepdims=True), counts.shape)
    assert bits_per_spike(counts, null) == pytest.approx(0.0, abs=1e-12)
    assert bits_per_spike(counts, rates) > 0.05


def test_bits_per_spike_allows_a_silent_neuron():
    counts = np.array([[[0.0, 1.0], [0.0, 3.0]]])
    rates = np.array([[[0.1, 2.0], [0.1, 2.0]]])
    assert math.isfinite(bits_per_spike(counts, rates))


@pytest.mark.parametrize("fn", [rate_r2, rate_r2_per_neuron, poisson_nll, bits_per_spike])
def test_bad_inputs_raise_input_error(fn):
    good = np.ones((2, 3, 4))
    for a, b in [
        (good, np.ones((2, 3, 5))),  # shapes differ
        (np.ones((3, 4)), np.ones((3, 4))),  # not 3-D
        (good, np.full((2, 3, 4), np.nan)),  # not finite
    ]:
        with pytest.raises(InputError) as info:
            fn(a, b)
        assert "\n" not in str(info.value)


def test_likelihood_metrics_check_values():
    with pytest.raises(InputError, match="rates"):
        poisson_nll(np.ones((1, 2, 2)), np.zeros((1, 2, 2)))
    with pytest.raises(InputError, match="counts"):
        poisson_nll(-np.ones((1, 2, 2)), np.ones((1, 2, 2)))
    with pytest.raises(InputError, match="no spikes"):
        bits_per_spike(np.zeros((1, 2, 2)), np.ones((1, 2, 2)))
