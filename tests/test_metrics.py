"""Tests for the rate and likelihood metrics, against arithmetic done by hand."""

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, GroupKFold

from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.metrics import (
    DEFAULT_RIDGE_ALPHAS,
    bits_per_spike,
    co_bps,
    condition_psth,
    fit_velocity_decoder,
    fp_bps,
    poisson_nll,
    psth_r2,
    rate_r2,
    rate_r2_per_neuron,
    velocity_r2,
)

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


# ---------------------------------------------------------------- NLB metrics


def test_co_bps_by_hand():
    # 1 trial x 2 bins x 2 held-out neurons.
    spikes = np.array([[[1.0, 0.0], [3.0, 2.0]]])
    rates = np.array([[[2.0, 0.5], [2.0, 1.0]]])
    # null rates: neuron 0 mean (1 + 3) / 2 = 2, neuron 1 mean (0 + 2) / 2 = 1.
    # log p(k | r) = k log r - r - log k!
    ll_model = (math.log(2) - 2 - 0) + (0 - 0.5 - 0) + (3 * math.log(2) - 2 - math.log(6)) + (
        2 * math.log(1.0) - 1.0 - math.log(2)
    )
    ll_null = (math.log(2) - 2 - 0) + (0 - 1.0 - 0) + (3 * math.log(2) - 2 - math.log(6)) + (
        2 * math.log(1.0) - 1.0 - math.log(2)
    )
    # the only difference is neuron 1, bin 0: -0.5 vs -1.0 -> gain 0.5 nats over 6 spikes.
    assert ll_model - ll_null == pytest.approx(0.5)
    expected = (ll_model - ll_null) / (6 * math.log(2))
    assert co_bps(rates, spikes) == pytest.approx(expected)
    assert co_bps(rates, spikes) == bits_per_spike(spikes, rates)


def test_fp_bps_by_hand():
    # 2 trials x 1 forward bin x 2 neurons.
    spikes = np.array([[[2.0, 1.0]], [[0.0, 1.0]]])
    rates = np.array([[[1.5, 2.0]], [[0.5, 1.0]]])
    # null rates: neuron 0 mean 1, neuron 1 mean 1.
    ll_model = (2 * math.log(1.5) - 1.5 - math.log(2)) + (math.log(2.0) - 2.0) + (0 - 0.5) + (0 - 1.0)
    ll_null = (2 * math.log(1.0) - 1.0 - math.log(2)) + (0 - 1.0) + (0 - 1.0) + (0 - 1.0)
    expected = (ll_model - ll_null) / (4 * math.log(2))
    assert fp_bps(rates, spikes) == pytest.approx(expected)


def test_bps_errors_name_the_nlb_arguments():
    with pytest.raises(InputError, match="eval_rates_heldout: must be > 0"):
        co_bps(np.zeros((1, 2, 2)), np.ones((1, 2, 2)))
    with pytest.raises(InputError, match="eval_spikes_forward: holds negative"):
        fp_bps(np.ones((1, 2, 2)), -np.ones((1, 2, 2)))
    with pytest.raises(InputError, match="shapes differ"):
        co_bps(np.ones((1, 2, 2)), np.ones((1, 3, 2)))


def _linear_behavior(seed, n_trials, n_time=20, n_neurons=4):
    """Rates (trials, T, 4) of independent bins and a 2-D behaviour that is exactly linear in them."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, size=(n_trials, n_time, n_neurons))
    weights = np.array([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.0], [0.5, 0.5]])
    return rates, rates @ weights + np.array([3.0, -1.0])


def test_velocity_r2_of_an_exact_linear_behaviour_is_one():
    train_rates, train_behavior = _linear_behavior(0, 20)
    eval_rates, eval_behavior = _linear_behavior(1, 10)
    assert velocity_r2(train_rates, train_behavior, eval_rates, eval_behavior) == pytest.approx(1.0, abs=1e-4)


def test_velocity_r2_lag_pairs_rates_at_t_minus_lag_with_behaviour_at_t():
    lag = 2
    train_rates, train_linear = _linear_behavior(0, 30)
    eval_rates, eval_linear = _linear_behavior(1, 15)
    rng = np.random.default_rng(2)

    def shifted(linear):
        # behaviour at bin t = linear function of the rates at bin t - 2; the first 2 bins are noise.
        behavior = rng.normal(size=linear.shape)
        behavior[:, lag:] = linear[:, :-lag]
        return behavior

    train_behavior, eval_behavior = shifted(train_linear), shifted(eval_linear)
    r2_lagged = velocity_r2(train_rates, train_behavior, eval_rates, eval_behavior, lag_bins=lag)
    r2_unlagged = velocity_r2(train_rates, train_behavior, eval_rates, eval_behavior, lag_bins=0)
    assert r2_lagged == pytest.approx(1.0, abs=1e-4)
    assert r2_unlagged < 0.2  # bins are independent, so the unlagged rates say nothing


def test_velocity_decoder_penalty_is_a_trial_grouped_grid_search_on_training_trials():
    rng = np.random.default_rng(3)
    train_rates = rng.gamma(2.0, size=(12, 10, 5))
    train_behavior = train_rates @ rng.normal(size=(5, 2)) + 3.0 * rng.normal(size=(12, 10, 2))
    eval_rates, eval_behavior = rng.gamma(2.0, size=(6, 10, 5)), rng.normal(size=(6, 10, 2))
    decoder = fit_velocity_decoder(train_rates, train_behavior, cv=4)
    # the same search by hand: rows grouped by trial, 4 folds
    groups = np.repeat(np.arange(12), 10)
    search = GridSearchCV(Ridge(), {"alpha": DEFAULT_RIDGE_ALPHAS}, scoring="r2", cv=GroupKFold(n_splits=4))
    search.fit(train_rates.reshape(-1, 5), train_behavior.reshape(-1, 2), groups=groups)
    assert decoder.alpha in DEFAULT_RIDGE_ALPHAS
    assert decoder.alpha == search.best_params_["alpha"]
    np.testing.assert_allclose(decoder.coef_, search.best_estimator_.coef_)
    # the score uses that training-only decoder on the evaluation rows
    expected = r2_score(eval_behavior.reshape(-1, 2), decoder.predict(eval_rates.reshape(-1, 5)))
    assert velocity_r2(train_rates, train_behavior, eval_rates, eval_behavior, cv=4) == pytest.approx(expected)


def test_velocity_decoder_penalty_tracks_the_training_noise():
    rng = np.random.default_rng(4)
    rates = rng.gamma(2.0, size=(10, 20, 8))
    noise_only = rng.normal(size=(10, 20, 2))
    exact = rates @ rng.normal(size=(8, 2))
    alphas = (1e-4, 1e-2, 1.0, 1e2, 1e4)
    assert fit_velocity_decoder(rates, noise_only, alphas=alphas).alpha == max(alphas)
    assert fit_velocity_decoder(rates, exact, alphas=alphas).alpha == min(alphas)


def test_velocity_r2_leaves_out_nan_behaviour_bins():
    train_rates, train_behavior = _linear_behavior(5, 10)
    eval_rates, eval_behavior = _linear_behavior(6, 5)
    noisy = eval_behavior + np.random.default_rng(7).normal(size=eval_behavior.shape)
    with_nan = noisy.copy()
    with_nan[:, :5] = np.nan
    decoder = fit_velocity_decoder(train_rates, train_behavior)
    expected = r2_score(noisy[:, 5:].reshape(-1, 2), decoder.predict(eval_rates[:, 5:].reshape(-1, 4)))
    assert velocity_r2(train_rates, train_behavior, eval_rates, with_nan) == pytest.approx(expected)


def test_psth_r2_by_hand():
    # psth rows: conditions 0, 1, 2 (2 bins x 2 neurons); the eval trials hold conditions 0 and 1 only.
    psth = np.array(
        [
            [[1.0, 2.0], [3.0, 4.0]],
            [[2.0, 0.0], [4.0, 2.0]],
            [[9.0, 9.0], [9.0, 9.0]],  # condition 2: no eval trial, left out
        ]
    )
    eval_rates = np.array(
        [
            [[1.0, 1.0], [3.0, 5.0]],  # condition 0
            [[1.0, 3.0], [3.0, 3.0]],  # condition 0 -> mean [[1, 2], [3, 4]]: exact
            [[2.0, 1.0], [5.0, 2.0]],  # condition 1 -> [[2, 1], [5, 2]]
        ]
    )
    conditions = np.array([0, 0, 1])
    # neuron 0: true 1, 3, 2, 4 (mean 2.5, SS_tot 2.25 + 0.25 + 0.25 + 2.25 = 5), residuals 0, 0, 0, -1 -> R2 = 1 - 1/5
    # neuron 1: true 2, 4, 0, 2 (mean 2, SS_tot 0 + 4 + 4 + 0 = 8), residuals 0, 0, -1, 0 -> R2 = 1 - 1/8
    expected = ((1 - 1 / 5) + (1 - 1 / 8)) / 2
    assert psth_r2(eval_rates, conditions, psth) == pytest.approx(expected)
    # the same with explicit labels, in another row order
    assert psth_r2(eval_rates, np.array([7, 7, 3]), psth[[1, 0, 2]], np.array([3, 7, 5])) == pytest.approx(expected)


def test_condition_psth_with_a_tiny_kernel_is_the_condition_mean():
    spikes = np.array(
        [
            [[1.0, 0.0], [2.0, 4.0]],
            [[0.0, 3.0], [1.0, 1.0]],
            [[5.0, 1.0], [0.0, 0.0]],
            [[3.0, 2.0], [2.0, 0.0]],
        ]
    )
    ids, psth = condition_psth(spikes, np.array([2, 0, 2, 0]), sigma_bins=1e-3)
    np.testing.assert_array_equal(ids, [0, 2])
    expected = np.array(
        [
            [[1.5, 2.5], [1.5, 0.5]],  # trials 1 and 3
            [[3.0, 0.5], [1.0, 2.0]],  # trials 0 and 2
        ]
    )
    np.testing.assert_allclose(psth, expected)


def test_condition_psth_matches_scipy_with_edge_normalisation():
    spikes = np.random.default_rng(8).poisson(1.0, size=(6, 30, 3)).astype(float)
    conditions = np.array([1, 0, 1, 1, 0, 1])
    ids, psth = condition_psth(spikes, conditions, sigma_bins=2.5)
    smoothed = gaussian_filter1d(spikes, 2.5, axis=1, mode="constant") / gaussian_filter1d(
        np.ones(30), 2.5, mode="constant"
    )[None, :, None]
    np.testing.assert_array_equal(ids, [0, 1])
    np.testing.assert_allclose(psth[0], smoothed[[1, 4]].mean(axis=0))
    np.testing.assert_allclose(psth[1], smoothed[[0, 2, 3, 5]].mean(axis=0))
    # edge normalisation keeps a constant trial constant
    _, flat = condition_psth(np.ones((2, 30, 1)), np.array([0, 0]), sigma_bins=4.0)
    np.testing.assert_allclose(flat, 1.0)


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(InputError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_velocity_r2_bad_inputs():
    rates, behavior = _linear_behavior(0, 6, n_time=5)
    _raises("train_rates: expected a 3-D", velocity_r2, rates[0], behavior, rates, behavior)
    _raises("train_rates: holds NaN", velocity_r2, np.full_like(rates, np.nan), behavior, rates, behavior)
    _raises("train_behavior: .* differ", velocity_r2, rates, behavior[:4], rates, behavior)
    _raises("eval_behavior: .* differ", velocity_r2, rates, behavior, rates, behavior[:, :4])
    _raises("eval_rates: has 3 neurons", velocity_r2, rates, behavior, rates[..., :3], behavior)
    _raises("eval_behavior: has 1 dimensions", velocity_r2, rates, behavior, rates, behavior[..., :1])
    _raises("lag_bins: must be < the 5", velocity_r2, rates, behavior, rates, behavior, lag_bins=5)
    _raises("lag_bins: must be an integer >= 0", velocity_r2, rates, behavior, rates, behavior, lag_bins=-1)
    _raises("cv", velocity_r2, rates, behavior, rates, behavior, cv=1)
    _raises("alphas", velocity_r2, rates, behavior, rates, behavior, alphas=(0.0, 1.0))
    _raises("at least 2 trials", velocity_r2, rates[:1], behavior[:1], rates, behavior)
    _raises("every bin", velocity_r2, rates, np.full_like(behavior, np.nan), rates, behavior)
    _raises("infinite", velocity_r2, rates, np.full_like(behavior, np.inf), rates, behavior)


def test_psth_bad_inputs():
    rates = np.ones((3, 2, 2))
    psth = np.ones((2, 2, 2))
    conditions = np.array([0, 1, 1])
    _raises("eval_rates: expected a 3-D", psth_r2, rates[0], conditions, psth)
    _raises("eval_conditions: expected shape \\(3,\\)", psth_r2, rates, conditions[:2], psth)
    _raises("psth: has 3 time bins", psth_r2, rates, conditions, np.ones((2, 3, 2)))
    _raises("psth: has 1 neurons", psth_r2, rates, conditions, np.ones((2, 2, 1)))
    _raises("psth: holds NaN", psth_r2, rates, conditions, np.full((2, 2, 2), np.nan))
    _raises("no row in psth", psth_r2, rates, np.array([0, 1, 4]), psth)
    _raises("psth_conditions", psth_r2, rates, conditions, psth, np.array([0, 0]))
    _raises("spikes: holds negative", condition_psth, -np.ones((2, 3, 1)), np.array([0, 1]), 1.0)
    _raises("spikes: holds NaN", condition_psth, np.full((2, 3, 1), np.nan), np.array([0, 1]), 1.0)
    _raises("conditions: expected shape", condition_psth, np.ones((2, 3, 1)), np.array([0, 1, 1]), 1.0)
    _raises("sigma_bins", condition_psth, np.ones((2, 3, 1)), np.array([0, 1]), 0.0)


def test_pulse_time_errors_find_the_peak_whatever_its_sign():
    from pyro_lfads.evaluation.metrics import pulse_time_errors_ms

    inputs = np.zeros((3, 50, 1))
    inputs[0, 10, 0] = 2.0    # peak at 100 ms
    inputs[1, 30, 0] = -3.0   # a negative peak at 300 ms
    inputs[2, 40, 0] = 1.0    # at 400 ms, true pulse at 250 ms
    errors = pulse_time_errors_ms(inputs + 0.5, np.array([100.0, 320.0, 250.0]), bin_ms=10.0)
    np.testing.assert_allclose(errors, [0.0, 20.0, 150.0])
    with pytest.raises(InputError, match="pulse_times_ms"):
        pulse_time_errors_ms(inputs, np.zeros(2), bin_ms=10.0)


def test_input_r2_allows_sign_and_scale_only():
    from pyro_lfads.evaluation.metrics import input_r2

    rng = np.random.default_rng(0)
    true = rng.normal(size=(20, 30, 1))
    assert input_r2(-3.0 * true + 1.0, true) == pytest.approx(1.0)
    noisy = true + rng.normal(size=true.shape)  # signal and noise of equal variance: R2 about 0.5
    assert 0.4 < input_r2(noisy, true) < 0.6
    assert input_r2(rng.normal(size=true.shape), true) < 0.01
    with pytest.raises(InputError, match="differ"):
        input_r2(true[:, :10], true)


def test_cross_validated_r2_decodes_a_linear_code_and_not_noise():
    from pyro_lfads.evaluation.metrics import cross_validated_r2

    rng = np.random.default_rng(0)
    latents = rng.normal(size=(30, 20, 3))
    factors = latents @ rng.normal(size=(3, 8)) + 0.1 * rng.normal(size=(30, 20, 8))
    assert cross_validated_r2(factors, latents) > 0.95
    assert abs(cross_validated_r2(rng.normal(size=(30, 20, 8)), latents)) < 0.1
    with pytest.raises(InputError, match="trials and bins"):
        cross_validated_r2(factors[:, :10], latents)
    with pytest.raises(InputError, match="folds"):
        cross_validated_r2(factors[:3], latents[:3])


def test_cross_session_consistency():
    from pyro_lfads.evaluation.metrics import cross_session_consistency

    rng = np.random.default_rng(1)
    shared = rng.normal(size=(5, 20, 4))
    assert cross_session_consistency([shared, shared, shared]) == pytest.approx(1.0)
    close = [shared + 0.1 * rng.normal(size=shared.shape) for _ in range(3)]
    unrelated = [rng.normal(size=shared.shape) for _ in range(3)]
    assert cross_session_consistency(close) > 0.9 > 0.0 > cross_session_consistency(unrelated)


def test_smooth_over_time_is_the_edge_normalised_kernel_mean_with_and_without_the_centre():
    from pyro_lfads.evaluation.metrics import smooth_over_time

    rng = np.random.default_rng(3)
    spikes = rng.poisson(3.0, size=(2, 12, 3)).astype(np.float64)
    sigma = 1.7
    radius = int(np.ceil(4 * sigma))
    for leave_centre_out in (False, True):
        expected = np.zeros_like(spikes)
        for t in range(12):
            near = [s for s in range(12) if abs(s - t) <= radius and not (leave_centre_out and s == t)]
            weights = np.exp(-0.5 * ((np.array(near) - t) / sigma) ** 2)
            expected[:, t] = np.tensordot(spikes[:, near], weights, axes=([1], [0])) / weights.sum()
        np.testing.assert_allclose(smooth_over_time(spikes, sigma, leave_centre_out=leave_centre_out), expected,
                                   rtol=1e-12)
