"""Importance-weight diagnostics: IWAE against ELBO, and PSIS k-hat of a collapsed guide."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyro_lfads.diagnostics import elbo_per_trial, iwae_per_trial, log_importance_weights, pareto_khat
from pyro_lfads.run import load_fitted
from pyro_lfads.train import fit


def test_iwae_and_elbo_on_hand_made_weights():
    log_w = np.log(np.array([[1.0, 3.0], [2.0, 2.0]]))
    np.testing.assert_allclose(iwae_per_trial(log_w), np.log([2.0, 2.0]))
    np.testing.assert_allclose(elbo_per_trial(log_w), [0.5 * np.log(3.0), np.log(2.0)])


def test_iwae_bounds_the_elbo_and_grows_with_k(tiny_lorenz, tiny_config, tmp_path):
    fit(tiny_lorenz, tiny_config.replace(max_epochs=2), tmp_path, progress=False)
    _, _, model, guide = load_fitted(tmp_path)
    torch.manual_seed(0)
    log_w = log_importance_weights(model, guide, tiny_lorenz.valid, samples=64)
    assert log_w.shape == (tiny_lorenz.valid.n_trials, 64) and np.isfinite(log_w).all()
    assert np.all(iwae_per_trial(log_w) >= elbo_per_trial(log_w))
    # E[IWAE_K] does not decrease with K: average over disjoint groups of the 64 draws
    means = [np.mean([iwae_per_trial(g).mean() for g in np.split(log_w, 64 // k, axis=1)]) for k in (1, 4, 16, 64)]
    assert all(b >= a - 1e-6 for a, b in zip(means, means[1:])), means


def test_khat_is_low_for_a_fitted_guide_and_flags_a_collapsed_one(fitted_tiny_lorenz):
    run_dir, dataset = fitted_tiny_lorenz
    _, _, model, guide = load_fitted(run_dir)
    torch.manual_seed(0)
    healthy = pareto_khat(log_importance_weights(model, guide, dataset.valid, samples=100))
    original = guide.initial_condition

    def collapsed(x):
        loc, scale = original(x)
        return loc, scale * 0.1  # a posterior variance 100 times too small

    guide.initial_condition = collapsed
    broken = pareto_khat(log_importance_weights(model, guide, dataset.valid, samples=100))
    assert np.mean(healthy < 0.7) > 0.5, np.median(healthy)
    assert np.median(broken) > np.median(healthy) + 0.3, (np.median(healthy), np.median(broken))


@pytest.mark.filterwarnings("ignore:Estimated shape parameter:UserWarning")  # a 1-epoch model: large k expected
def test_inference_data_groups_shapes_netcdf_and_loo(tiny_lorenz, tiny_config, tmp_path):
    import arviz as az

    from pyro_lfads.diagnostics import to_inference_data

    fit(tiny_lorenz, tiny_config.replace(max_epochs=1), tmp_path, progress=False)
    _, _, model, guide = load_fitted(tmp_path)
    split = tiny_lorenz.valid
    data = to_inference_data(model, guide, split, samples=6, bin_ms=10.0)
    for group in ("posterior", "posterior_predictive", "observed_data", "log_likelihood"):
        assert group in data.groups(), group
    n, t, neurons = split.recon_data.shape
    post = data.posterior
    assert post["rates"].shape == (1, 6, n, t, neurons)
    assert post["g0"].shape == (1, 6, n, tiny_config.gen_dim)
    assert post["u"].shape == (1, 6, n, t, tiny_config.co_dim)
    assert post["factors"].dims == ("chain", "draw", "trial", "time", "factor")
    assert data.log_likelihood["obs"].shape == (1, 6, n, t, neurons)
    np.testing.assert_array_equal(data.observed_data["obs"].values, split.recon_data)
    # the log-likelihood is the Poisson log pmf of the data at each draw's rates
    from scipy import stats
    expected = stats.poisson.logpmf(split.recon_data[None], post["rates"].values[0])
    np.testing.assert_allclose(data.log_likelihood["obs"].values[0], expected, rtol=1e-4, atol=1e-4)
    path = tmp_path / "inference_data.nc"
    data.to_netcdf(str(path))
    again = az.from_netcdf(str(path))
    np.testing.assert_allclose(again.posterior["rates"].values, post["rates"].values)
    assert np.isfinite(float(az.loo(again).elpd_loo))
