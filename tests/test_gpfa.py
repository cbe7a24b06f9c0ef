"""Tests for pyro_lfads.evaluation.gpfa: recovery on simulated data, shapes, ordering, input checks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.optimize import check_grad

from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.gpfa import GPFA, _se_kernel, _tau_objective
from pyro_lfads.evaluation.gpfa_baseline import select_n_latents

TRUE_TAUS = (2.0, 5.0, 10.0)


def r2_linear(features: np.ndarray, targets: np.ndarray) -> float:
    """Mean over target columns of the R2 of an in-sample least-squares fit (with intercept)."""
    features = np.hstack([features.reshape(-1, features.shape[-1]), np.ones((features[..., 0].size, 1))])
    targets = targets.reshape(-1, targets.shape[-1])
    beta = np.linalg.lstsq(features, targets, rcond=None)[0]
    residual = np.sum((targets - features @ beta) ** 2, axis=0)
    return float(np.mean(1.0 - residual / np.sum((targets - targets.mean(0)) ** 2, axis=0)))


def non_decreasing(values: list[float]) -> bool:
    """True when no step decreases by more than 1e-9 of the value's magnitude."""
    values = np.asarray(values)
    return bool(np.all(np.diff(values) >= -1e-9 * np.abs(values[:-1])))


def simulate_gpfa(seed: int, n_trials: int, scales=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(true latents (N, 40, 3), observations (N, 40, 20)) drawn from the GPFA model with TRUE_TAUS.

    Column k of the loading matrix is standard normal times ``scales[k]``.
    """
    rng = np.random.default_rng(seed)
    n_time, n_neurons = 40, 20
    latents = np.stack([rng.multivariate_normal(np.zeros(n_time), _se_kernel(np.log(tau), n_time)[0],
                                                size=n_trials) for tau in TRUE_TAUS], axis=2)
    loading = rng.normal(size=(n_neurons, len(TRUE_TAUS))) * np.asarray(scales)
    offset = rng.normal(size=n_neurons)
    noise_var = rng.uniform(0.1, 0.5, size=n_neurons)
    obs = latents @ loading.T + offset + rng.normal(size=(n_trials, n_time, n_neurons)) * np.sqrt(noise_var)
    return latents, obs


@pytest.fixture(scope="module")
def gaussian_data():
    return simulate_gpfa(seed=0, n_trials=50)


@pytest.fixture(scope="module")
def gaussian_fit(gaussian_data):
    return GPFA(n_latents=3, max_iter=60, tol=1e-9, preprocess="none").fit(gaussian_data[1])


@pytest.fixture(scope="module")
def poisson_data():
    """(true log-rates (N, T, 30), Poisson counts (N, T, 30)) from 2 slow sinusoids per trial."""
    rng = np.random.default_rng(1)
    n_trials, n_time, n_neurons = 60, 50, 30
    time = np.arange(n_time)
    phases = rng.uniform(0, 2 * np.pi, size=(n_trials, 2, 1))
    periods = np.array([40.0, 25.0])[None, :, None]
    factors = np.sin(2 * np.pi * time / periods + phases).transpose(0, 2, 1)  # (N, T, 2)
    log_rates = factors @ rng.normal(scale=0.8, size=(2, n_neurons)) + np.log(rng.uniform(0.05, 0.3, n_neurons))
    return log_rates, rng.poisson(np.exp(log_rates)).astype(float)


def test_tau_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    root = rng.normal(size=(15, 15))
    second_moment = root @ root.T / 15
    for log_tau in (0.0, 1.0, 2.5):
        analytic = _tau_objective(np.array([log_tau]), second_moment)[1][0]
        error = check_grad(lambda v: _tau_objective(v, second_moment)[0],
                           lambda v: _tau_objective(v, second_moment)[1], np.array([log_tau]))
        assert error < 1e-4 * max(1.0, abs(analytic))


@pytest.mark.slow
def test_recovers_timescales_and_latents(gaussian_data, gaussian_fit):
    latents, obs = gaussian_data
    np.testing.assert_allclose(np.sort(gaussian_fit.tau_), TRUE_TAUS, rtol=0.25)
    assert r2_linear(gaussian_fit.transform(obs), latents) > 0.9


@pytest.mark.slow
def test_log_likelihood_never_decreases(gaussian_fit):
    lls = gaussian_fit.log_likelihoods_
    assert len(lls) == gaussian_fit.n_iter_ + 1
    assert non_decreasing(lls)
    assert lls[-1] > lls[0]


@pytest.mark.slow
def test_attributes_have_documented_shapes(gaussian_fit):
    assert gaussian_fit.C_.shape == (20, 3)
    assert gaussian_fit.d_.shape == (20,)
    assert gaussian_fit.R_.shape == (20,) and np.all(gaussian_fit.R_ > 0)
    assert gaussian_fit.tau_.shape == (3,)
    assert 1 <= gaussian_fit.n_iter_ <= 60


@pytest.mark.slow
def test_latents_predict_poisson_log_rates_better_than_spikes(poisson_data):
    log_rates, spikes = poisson_data
    model = GPFA(n_latents=3, max_iter=40)
    assert model.fit(spikes) is model
    assert non_decreasing(model.log_likelihoods_)
    r2_gpfa = r2_linear(model.transform(spikes), log_rates)
    r2_spikes = r2_linear(spikes, log_rates)
    assert r2_gpfa > 0.85
    assert r2_gpfa > r2_spikes + 0.2


@pytest.mark.slow
def test_stops_early_when_converged(poisson_data):
    model = GPFA(n_latents=2, max_iter=500, tol=1e-4).fit(poisson_data[1])
    assert model.n_iter_ < 500
    lls = model.log_likelihoods_
    assert abs(lls[-1] - lls[-2]) < 1e-4 * abs(lls[-2])


@pytest.mark.slow
def test_silent_neuron_is_handled(poisson_data):
    spikes = poisson_data[1].copy()
    spikes[:, :, 0] = 0.0
    model = GPFA(n_latents=2, max_iter=10).fit(spikes)
    assert np.all(np.isfinite(model.C_)) and model.R_[0] > 0
    assert np.all(np.isfinite(model.transform(spikes)))


@pytest.mark.slow
def test_transform_other_trials_and_bins(gaussian_data, gaussian_fit):
    obs = gaussian_data[1]
    latents = gaussian_fit.transform(obs[:7, :25])
    assert latents.shape == (7, 25, 3)
    assert np.all(np.isfinite(latents))
    assert gaussian_fit.transform(obs[:2, :1]).shape == (2, 1, 3)


@pytest.mark.slow
def test_orthonormalised_dimensions_ordered_by_variance():
    # Loadings of very different sizes, so that the order of the singular values of C
    # (which the orthonormalisation guarantees) is also the order of the empirical variances.
    _, obs = simulate_gpfa(seed=2, n_trials=30, scales=(3.0, 1.5, 0.6))
    model = GPFA(n_latents=3, max_iter=20, preprocess="none").fit(obs)
    latents = model.transform(obs)
    variances = latents.reshape(-1, 3).var(axis=0)
    assert np.all(np.diff(variances) < 0)
    singular_values = np.linalg.svd(model.C_, compute_uv=False)
    np.testing.assert_allclose(variances, singular_values**2, rtol=0.3)


@pytest.mark.slow
def test_orthonormalised_latents_reproduce_loadings(gaussian_data, gaussian_fit):
    # C x = U (S V^T x): the orthonormalised latents reproduce the loadings' contribution.
    obs = gaussian_data[1]
    latents = gaussian_fit.transform(obs)
    factor, _ = gaussian_fit._precision(obs.shape[1])
    raw = gaussian_fit._posterior_mean(obs, factor)[0].reshape(len(obs), 3, -1).transpose(0, 2, 1)
    u = np.linalg.svd(gaussian_fit.C_, full_matrices=False)[0]
    np.testing.assert_allclose(latents @ u.T, raw @ gaussian_fit.C_.T, atol=1e-8)


def test_progress_bar_runs(poisson_data):
    assert GPFA(n_latents=2, max_iter=2, progress=True).fit(poisson_data[1][:5]).n_iter_ == 2


GOOD = np.ones((4, 6, 5)) + np.arange(5)


@pytest.mark.parametrize("spikes, message", [
    (np.ones((3, 4)), r"spikes: expected a 3-D array \(trials, time, neurons\), got shape \(3, 4\)"),
    (np.ones((0, 6, 5)), r"spikes: is empty"),
    (np.where(np.arange(5) == 2, np.nan, GOOD), r"spikes: holds NaN or infinite"),
    (np.where(np.arange(5) == 2, np.inf, GOOD), r"spikes: holds NaN or infinite"),
    (GOOD - 3.0, r"spikes: holds negative values"),
    (np.array([[["a"]]]), r"spikes: cannot be read as an array of numbers"),
    (np.ones((4, 6, 5)), r"spikes: every neuron is constant"),
])
def test_bad_spikes_raise_input_error(spikes, message):
    with pytest.raises(InputError, match=message):
        GPFA(n_latents=2).fit(spikes)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_latents": 0}, r"n_latents: must be an integer >= 1, got 0"),
    ({"n_latents": 2.5}, r"n_latents: must be an integer >= 1"),
    ({"max_iter": 0}, r"max_iter: must be an integer >= 1"),
    ({"tol": -1.0}, r"tol: must be a finite number >= 0"),
    ({"preprocess": "log"}, r"preprocess: must be one of"),
])
def test_bad_options_raise_input_error(kwargs, message):
    with pytest.raises(InputError, match=message):
        GPFA(**kwargs)


def test_too_many_latents_raise_input_error():
    with pytest.raises(InputError, match=r"n_latents: must be <= the number of neurons \(5\), got 6"):
        GPFA(n_latents=6).fit(GOOD)


def test_single_bin_trials_raise_input_error():
    with pytest.raises(InputError, match=r"spikes: needs at least 2 time bins per trial to fit GPFA, got 1"):
        GPFA(n_latents=2).fit(GOOD[:, :1])


def test_transform_before_fit_raises_input_error():
    with pytest.raises(InputError, match="GPFA: called before fit"):
        GPFA(n_latents=2).transform(GOOD)


@pytest.mark.slow
def test_transform_with_other_neuron_count_raises_input_error(gaussian_fit):
    with pytest.raises(InputError, match=r"spikes: has 7 neurons, but GPFA was fitted on 20"):
        gaussian_fit.transform(np.ones((2, 5, 7)))


@pytest.mark.slow
def test_transform_checks_spikes(gaussian_fit):
    with pytest.raises(InputError, match=r"spikes: expected a 3-D array"):
        gaussian_fit.transform(np.ones(20))


def test_leave_neuron_out_is_inference_without_that_neuron(gaussian_data, gaussian_fit):
    """Row j equals transform with neuron j's noise made infinite (it then carries no information), and
    does not move when neuron j's observations change."""
    _, obs = gaussian_data
    deaf = copy.deepcopy(gaussian_fit)
    deaf.R_ = deaf.R_.copy()
    deaf.R_[4] = 1e12
    left_out = gaussian_fit.leave_neuron_out(obs, 4)
    np.testing.assert_allclose(left_out, deaf.transform(obs), atol=1e-6)
    changed = obs.copy()
    changed[:, :, 4] += 10.0
    np.testing.assert_allclose(gaussian_fit.leave_neuron_out(changed, 4), left_out)
    assert not np.allclose(gaussian_fit.transform(changed), gaussian_fit.transform(obs))
    with pytest.raises(InputError, match=r"neuron: must be in \[0, 20\)"):
        gaussian_fit.leave_neuron_out(obs, 20)


def test_score_is_the_mean_log_likelihood_per_trial(gaussian_data, gaussian_fit):
    _, obs = gaussian_data
    assert gaussian_fit.score(obs) == pytest.approx(gaussian_fit.log_likelihoods_[-1] / len(obs), rel=1e-6)


def test_timescales_never_fall_below_one_bin():
    """White noise (no temporal structure): EM would push tau below a bin, a per-bin copy of the data."""
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(40, 30, 10)) @ rng.normal(size=(10, 10))
    model = GPFA(n_latents=3, max_iter=30, preprocess="none").fit(obs)
    assert np.all(model.tau_ >= 1.0 - 1e-9) and np.min(model.tau_) < 1.5


def test_leave_neuron_out_error_is_the_gaussian_conditional_of_each_neuron(gaussian_data, gaussian_fit):
    """C_j E[x | y_-j] + d_j is E[y_j | y_-j] under y ~ N(d, C Kbar C^T + R), computed here directly."""
    _, obs = gaussian_data
    trials, n_time, n_neurons = obs[:3], obs.shape[1], obs.shape[2]
    model = gaussian_fit
    kernels = [_se_kernel(np.log(tau), n_time)[0] for tau in model.tau_]
    # covariance of y stacked neuron-major (q*T,): sum_i C_:,i C_:,i^T kron K_i + R kron I
    cov = sum(np.kron(np.outer(model.C_[:, i], model.C_[:, i]), kernel) for i, kernel in enumerate(kernels))
    cov += np.kron(np.diag(model.R_), np.eye(n_time))
    flat = (trials - model.d_).transpose(0, 2, 1).reshape(3, -1)  # (N, q*T), neuron-major
    error = 0.0
    for j in range(n_neurons):
        own = np.arange(j * n_time, (j + 1) * n_time)
        rest = np.setdiff1d(np.arange(n_neurons * n_time), own)
        predicted = cov[np.ix_(own, rest)] @ np.linalg.solve(cov[np.ix_(rest, rest)], flat[:, rest].T)
        error += np.sum((flat[:, own].T - predicted) ** 2)
    assert model.leave_neuron_out_error(trials) == pytest.approx(error / 3, rel=1e-5)


@pytest.mark.parametrize("criterion", ["leave_neuron_out", "likelihood"])
def test_the_latent_dimension_is_chosen_by_cross_validation(gaussian_data, criterion):
    _, obs = gaussian_data
    best, scores = select_n_latents(obs, candidates=(1, 3, 6), max_iter=30, preprocess="none", criterion=criterion)
    assert best == 3 and set(scores) == {1, 3, 6}
    assert (scores[3] > scores[1]) if criterion == "likelihood" else (scores[3] < scores[1])


def test_the_latent_dimension_rejects_bad_requests(gaussian_data):
    _, obs = gaussian_data
    with pytest.raises(InputError, match="needs at least as many neurons"):
        select_n_latents(obs[:, :, :2] + 10.0, candidates=(4, 8))
    with pytest.raises(InputError, match="at least 6 training trials"):
        select_n_latents(obs[:5] + 10.0)
    with pytest.raises(InputError, match="criterion: 'aic' is not one of leave_neuron_out, likelihood"):
        select_n_latents(obs, criterion="aic")
