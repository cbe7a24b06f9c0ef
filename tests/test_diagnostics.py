"""Importance-weight diagnostics: IWAE and ELBO against a known log p(x), and PSIS k-hat of good and bad guides."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from pyro_lfads.diagnostics.importance import elbo_per_trial, iwae_per_trial, log_importance_weights, pareto_khat
from pyro_lfads.fitting.run import load_fitted
from pyro_lfads.fitting.train import fit


def test_iwae_and_elbo_on_hand_made_weights():
    log_w = np.log(np.array([[1.0, 3.0], [2.0, 2.0]]))
    np.testing.assert_allclose(iwae_per_trial(log_w), np.log([2.0, 2.0]))
    np.testing.assert_allclose(elbo_per_trial(log_w), [0.5 * np.log(3.0), np.log(2.0)])


# The linear-Gaussian toy, where log p(x) and the posterior are known in closed form:
# z ~ N(0, 1), x | z ~ N(z, s2), so x ~ N(0, 1 + s2) and z | x ~ N(x / (1 + s2), s2 / (1 + s2)), s2 = NOISE_SD^2.
NOISE_SD = 0.5
TOY_X = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])  # one observation per trial


def _toy_log_weights(proposal_loc: np.ndarray, proposal_sd: np.ndarray, draws: int, seed: int = 0) -> np.ndarray:
    """log p(x, z_k) - log q(z_k) for z_k ~ q = N(proposal_loc, proposal_sd^2) of each trial: (trials, draws)."""
    z = np.random.default_rng(seed).normal(proposal_loc[:, None], proposal_sd[:, None], (len(TOY_X), draws))
    return (stats.norm.logpdf(z) + stats.norm.logpdf(TOY_X[:, None], z, NOISE_SD)
            - stats.norm.logpdf(z, proposal_loc[:, None], proposal_sd[:, None]))


def _toy_posterior() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log p(x) (trials,), posterior mean (trials,), posterior sd (trials,)) of the toy."""
    s2 = NOISE_SD ** 2
    log_px = stats.norm.logpdf(TOY_X, 0.0, np.sqrt(1.0 + s2))
    return log_px, TOY_X / (1.0 + s2), np.full(len(TOY_X), np.sqrt(s2 / (1.0 + s2)))


def test_iwae_and_elbo_equal_log_p_x_under_the_exact_posterior():
    log_px, loc, sd = _toy_posterior()
    log_w = _toy_log_weights(loc, sd, draws=50)
    np.testing.assert_allclose(iwae_per_trial(log_w), log_px, atol=1e-9)
    np.testing.assert_allclose(elbo_per_trial(log_w), log_px, atol=1e-9)


def test_iwae_of_a_poor_proposal_approaches_log_p_x_as_k_grows_and_the_elbo_stays_a_kl_below():
    log_px, loc, sd = _toy_posterior()
    prior_loc, prior_sd = np.zeros(len(TOY_X)), np.ones(len(TOY_X))  # q = the prior: far from z | x
    log_w = _toy_log_weights(prior_loc, prior_sd, draws=20_000)
    # the ELBO of q is log p(x) - KL(q || p(z | x)), the KL between two normals
    kl = np.log(sd / prior_sd) + (prior_sd ** 2 + (prior_loc - loc) ** 2) / (2 * sd ** 2) - 0.5
    np.testing.assert_allclose(elbo_per_trial(log_w), log_px - kl, atol=0.05 * kl.max())
    assert np.all(kl > 1.0), kl  # the ELBO is far from log p(x) on every trial ...
    np.testing.assert_allclose(iwae_per_trial(log_w), log_px, atol=0.05)  # ... and IWAE_20000 is close
    # on independent draws (100 sets of K per trial), IWAE_K climbs from the ELBO towards log p(x)
    gaps = [np.mean(log_px[:, None] - iwae_per_trial(_toy_log_weights(prior_loc, prior_sd, 100 * k, seed=k)
                                                      .reshape(len(TOY_X), 100, k))) for k in (1, 10, 100, 1000)]
    assert gaps[0] > 3 * gaps[1] > 9 * gaps[2] and abs(gaps[3]) < 0.03, gaps


def test_khat_is_low_for_a_matched_proposal_and_high_for_a_too_narrow_one():
    _, loc, sd = _toy_posterior()
    matched = pareto_khat(_toy_log_weights(loc + 0.1 * sd, 1.2 * sd, draws=2000))  # a bit wider: light tails
    narrow_log_w = _toy_log_weights(loc, 0.2 * sd, draws=2000)  # weights with infinite variance
    narrow = pareto_khat(narrow_log_w)
    assert matched.shape == narrow.shape == TOY_X.shape
    # k-hat is a shape of the weights' tail: the same for weights known only up to a constant factor
    np.testing.assert_allclose(pareto_khat(narrow_log_w + 30.0), narrow, atol=1e-6)
    assert np.all(matched < 0.5), matched
    assert np.median(narrow) > 0.7, narrow


@pytest.mark.slow
def test_khat_is_low_for_a_fitted_guide_and_flags_a_collapsed_one(fitted_tiny_lorenz):
    run_dir, dataset = fitted_tiny_lorenz
    _, _, model, guide = load_fitted(run_dir)
    torch.manual_seed(0)
    log_w = log_importance_weights(model, guide, dataset.valid, samples=100)
    assert log_w.shape == (dataset.valid.n_trials, 100) and np.isfinite(log_w).all()
    healthy = pareto_khat(log_w)
    original = guide.initial_condition

    def collapsed(x):
        loc, scale = original(x)
        return loc, scale * 0.1  # a posterior variance 100 times too small

    guide.initial_condition = collapsed
    broken = pareto_khat(log_importance_weights(model, guide, dataset.valid, samples=100))
    assert np.mean(healthy < 0.7) > 0.5, np.median(healthy)
    assert np.median(broken) > np.median(healthy) + 0.3, (np.median(healthy), np.median(broken))


@pytest.mark.filterwarnings("ignore:Estimated shape parameter:UserWarning")  # a 1-epoch model: large k expected
@pytest.mark.filterwarnings("ignore:For one or more samples the posterior variance:UserWarning")  # az.waic, 6 draws
@pytest.mark.slow
def test_inference_data_groups_shapes_netcdf_and_loo(tiny_lorenz, tiny_config, tmp_path):
    import arviz as az

    from pyro_lfads.diagnostics.importance import to_inference_data

    fit(tiny_lorenz, tiny_config.replace(max_epochs=1), tmp_path, progress=False)
    _, _, model, guide = load_fitted(tmp_path)
    split = tiny_lorenz.valid
    conditions = tiny_lorenz.extras["valid_conditions"]
    data = to_inference_data(model, guide, split, samples=6, bin_ms=10.0, conditions=conditions, max_rows=40)
    assert set(data.groups()) == {"posterior", "posterior_predictive", "observed_data", "log_likelihood",
                                  "sample_stats"}
    n, t, neurons = split.recon_data.shape
    post = data.posterior
    assert post["rates"].shape == (1, 6, n, t, neurons)
    assert post["g0"].shape == (1, 6, n, tiny_config.gen_dim)
    assert post["u"].shape == (1, 6, n, t, tiny_config.co_dim)
    assert post["factors"].dims == ("chain", "draw", "trial", "time", "factor")
    assert data.log_likelihood["obs"].shape == (1, 6, n, t, neurons)
    np.testing.assert_array_equal(data.observed_data["obs"].values, split.recon_data)
    assert data.posterior_predictive["obs"].shape == (1, 6, n, t, neurons)
    # coordinates and units
    np.testing.assert_array_equal(post["trial"].values, split.inds)
    np.testing.assert_array_equal(post["condition"].values, conditions)
    np.testing.assert_allclose(post["time"].values, np.arange(t) * 10.0)
    assert post["time"].attrs["units"] == "ms from trial start"
    assert post["rates"].attrs["units"] == "expected spike counts per bin"
    assert data.log_likelihood["obs"].attrs["units"] == "nats"
    # sample_stats: lp = log p(x, z) of each draw = sum of log p(x | z) + log p(g0) + log p(u)
    sample_stats = data.sample_stats
    assert sample_stats["lp"].dims == ("chain", "draw", "trial") and sample_stats["lp"].shape == (1, 6, n)
    assert sample_stats["log_importance_weight"].shape == (1, 6, n)
    g0, u = torch.as_tensor(post["g0"].values[0]), torch.as_tensor(post["u"].values[0])
    with torch.no_grad():
        log_prior = (torch.distributions.Normal(model.ic_prior_mean, tiny_config.ic_prior_var ** 0.5)
                     .log_prob(g0).sum(-1) + model.input_prior(t).log_prob(u))
    expected_lp = data.log_likelihood["obs"].values[0].sum(axis=(-1, -2)) + log_prior.numpy()
    np.testing.assert_allclose(sample_stats["lp"].values[0], expected_lp, rtol=1e-4)
    # the log-likelihood is the Poisson log pmf of the data at each draw's rates
    from scipy import stats
    expected = stats.poisson.logpmf(split.recon_data[None], post["rates"].values[0])
    np.testing.assert_allclose(data.log_likelihood["obs"].values[0], expected, rtol=1e-4, atol=1e-4)
    path = tmp_path / "inference_data.nc"
    data.to_netcdf(str(path))
    again = az.from_netcdf(str(path))
    np.testing.assert_allclose(again.posterior["rates"].values, post["rates"].values)
    np.testing.assert_allclose(again.sample_stats["lp"].values, sample_stats["lp"].values)
    assert again.posterior["rates"].attrs["units"] == "expected spike counts per bin"
    assert np.isfinite(float(az.loo(again).elpd_loo))
    assert np.isfinite(float(az.waic(again).elpd_waic))


@pytest.mark.filterwarnings("ignore:Estimated shape parameter:UserWarning")  # az.loo with 8 draws
@pytest.mark.slow
def test_diagnose_run_writes_inference_data_and_a_summary_of_a_fitted_model(fitted_tiny_lorenz, tmp_path):
    import shutil

    import arviz as az

    from pyro_lfads.diagnostics.summary import diagnose_run, read_diagnostics

    fitted_dir, dataset = fitted_tiny_lorenz
    run_dir = shutil.copytree(fitted_dir, tmp_path / "run")
    summary = diagnose_run(run_dir, dataset, samples=8, importance_samples=100, bin_ms=10.0, progress=False)
    data, saved = read_diagnostics(run_dir)
    assert saved["summary"] == summary
    n = dataset.valid.n_trials
    per_trial = saved["per_trial"]
    assert len(per_trial["khat"]) == len(per_trial["iwae"]) == len(per_trial["trial"]) == n
    assert summary["khat_median"] == pytest.approx(np.median(per_trial["khat"]))
    assert summary["khat_fraction_below_0_7"] == pytest.approx(np.mean(np.array(per_trial["khat"]) < 0.7))
    assert summary["khat_fraction_below_0_7"] > 0.5, summary
    # nats per trial, from 100 draws: about 1 for this fitted guide, about 7 when its g0 variance collapses
    assert 0.0 < summary["iwae_minus_elbo"] < 3.0, summary
    assert summary["iwae_minus_elbo"] == pytest.approx(np.mean(np.subtract(per_trial["iwae"], per_trial["elbo"])))
    # a fitted Poisson model reproduces the count distribution and covers most condition PSTHs; with 2
    # trials per condition the observed PSTHs are mostly Poisson noise, so their R2 is low but positive
    assert summary["ppc_count_total_variation"] < 0.05, summary
    assert summary["ppc_psth_coverage"] > 0.6 and summary["ppc_psth_r2"] > 0.0, summary
    assert data.posterior["rates"].shape == (1, 8, n, dataset.valid.n_time, dataset.valid.n_neurons)
    assert "condition" in data.posterior.coords
    assert np.isfinite(float(az.loo(data).elpd_loo))
