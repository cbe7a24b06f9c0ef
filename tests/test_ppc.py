"""Posterior predictive checks: hand-made cases, a calibrated model, and misfits they must catch."""

from __future__ import annotations

import numpy as np
import pytest

from pyro_lfads.diagnostics.predictive_checks import condition_means, fano_factor, posterior_predictive_checks


def test_fano_factor_and_condition_means_by_hand():
    # one neuron, 2 bins; condition 0 trial totals 1, 3 (mean 2, var 2: Fano 1); condition 1 totals 2, 2 (Fano 0)
    data = np.array([[[1.0], [0.0]], [[1.0], [2.0]], [[1.0], [1.0]], [[2.0], [0.0]]])
    conditions = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(fano_factor(data, conditions), [0.5])
    np.testing.assert_allclose(condition_means(data, conditions, np.array([0, 1]))[:, :, 0], [[1, 1], [1.5, 0.5]])
    # a condition with one trial has no variance and is left out; none left gives NaN
    assert np.isnan(fano_factor(data[:1], conditions[:1])).all()


def test_replicates_equal_to_the_data_pass_every_check():
    rng = np.random.default_rng(0)
    observed = rng.poisson(1.5, size=(12, 10, 4)).astype(float)
    ppc = posterior_predictive_checks(observed, np.stack([observed] * 5), conditions=np.repeat([0, 1, 2], 4))
    s = ppc.summary
    assert s["ppc_count_total_variation"] == 0.0 and s["ppc_count_coverage"] == 1.0
    assert s["ppc_psth_coverage"] == 1.0 and s["ppc_psth_r2"] == 1.0 and s["ppc_fano_coverage"] == 1.0
    assert ppc.is_integer and ppc.values[0] == observed.min()
    np.testing.assert_allclose(ppc.count_observed.sum(), 1.0)
    np.testing.assert_allclose(ppc.count_observed[:3], [np.mean(observed == c) for c in ppc.values[:3]])
    assert ppc.psth_observed.shape == (3, 10, 4) and ppc.psth_replicated.shape == (5, 3, 10, 4)
    assert s["ppc_zero_fraction_observed"] == pytest.approx(np.mean(observed == 0))


def test_one_trial_per_condition_leaves_the_fano_check_out_and_its_figure_says_so(tmp_path):
    from pyro_lfads.diagnostics.check_figures import plot_ppc

    rng = np.random.default_rng(0)
    observed = rng.poisson(1.0, size=(3, 10, 4)).astype(float)
    ppc = posterior_predictive_checks(observed, rng.poisson(1.0, size=(5, 3, 10, 4)).astype(float),
                                      conditions=np.arange(3))
    assert ppc.summary["ppc_fano_observed_median"] is None and ppc.summary["ppc_fano_coverage"] is None
    assert plot_ppc(ppc, tmp_path / "ppc.png").read_bytes()[:4] == b"\x89PNG"


def _poisson_world(seed=0, trials_per_condition=30, conditions=4, n_time=20, neurons=10):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, n_time)
    phase = rng.uniform(0, 2 * np.pi, size=(conditions, 1, neurons))
    rates = 1.0 + 0.8 * np.sin(t[None, :, None] + phase)  # (conditions, time, neurons)
    labels = np.repeat(np.arange(conditions), trials_per_condition)
    return rng, rates[labels], labels


def test_a_calibrated_model_covers_about_the_interval():
    rng, rates, labels = _poisson_world()
    observed = rng.poisson(rates).astype(float)
    replicated = rng.poisson(rates, size=(200, *rates.shape)).astype(float)
    s = posterior_predictive_checks(observed, replicated, conditions=labels, interval=0.9).summary
    assert 0.8 < s["ppc_psth_coverage"] < 0.97, s
    assert 0.6 <= s["ppc_fano_coverage"] <= 1.0, s
    assert s["ppc_count_total_variation"] < 0.02, s
    assert abs(s["ppc_fano_observed_median"] - 1.0) < 0.3 and abs(s["ppc_fano_replicated_median"] - 1.0) < 0.1


def test_overdispersed_data_fail_the_fano_check_and_wrong_rates_fail_the_psth_check():
    rng, rates, labels = _poisson_world(seed=1)
    gain = rng.gamma(2.0, 0.5, size=(rates.shape[0], 1, 1))  # trial-to-trial gain the model does not know
    observed = rng.poisson(rates * gain).astype(float)
    replicated = rng.poisson(rates, size=(100, *rates.shape)).astype(float)
    s = posterior_predictive_checks(observed, replicated, conditions=labels).summary
    assert s["ppc_fano_observed_median"] > 2 * s["ppc_fano_replicated_median"], s
    assert s["ppc_fano_coverage"] < 0.2, s
    flat = np.broadcast_to(rates.mean(axis=(1,), keepdims=True), rates.shape)  # no time course
    s_flat = posterior_predictive_checks(rng.poisson(rates).astype(float),
                                         rng.poisson(flat, size=(100, *rates.shape)).astype(float),
                                         conditions=labels).summary
    assert s_flat["ppc_psth_coverage"] < 0.6 and s_flat["ppc_psth_r2"] < 0.2, s_flat


def test_real_valued_data_use_quantile_bins_and_skip_fano_when_negative():
    rng = np.random.default_rng(2)
    observed = rng.normal(size=(200, 8, 3))
    ppc = posterior_predictive_checks(observed, rng.normal(size=(20, 200, 8, 3)))
    assert not ppc.is_integer and len(ppc.values) == 20
    np.testing.assert_allclose(ppc.count_observed, 1 / 20, atol=0.01)  # quantile bins hold equal shares
    assert ppc.fano_observed is None and ppc.summary["ppc_fano_coverage"] is None
    assert ppc.summary["ppc_count_total_variation"] < 0.05


def test_bad_shapes_are_refused():
    observed = np.zeros((4, 5, 2))
    with pytest.raises(ValueError, match="replicated"):
        posterior_predictive_checks(observed, np.zeros((3, 4, 5, 3)))
    with pytest.raises(ValueError, match="conditions"):
        posterior_predictive_checks(observed, np.zeros((3, 4, 5, 2)), conditions=np.zeros(3))
    with pytest.raises(ValueError, match="interval"):
        posterior_predictive_checks(observed, np.zeros((3, 4, 5, 2)), interval=1.5)


def test_nan_quantiles_equal_numpys_nanquantile():
    """The vectorised quantiles of the coverage figures equal np.nanquantile, NaNs ignored, a column of NaNs NaN."""
    import warnings

    from pyro_lfads.diagnostics.predictive_checks import nan_quantiles

    rng = np.random.default_rng(0)
    samples = rng.normal(size=(20, 30, 4))
    samples[rng.random(samples.shape) < 0.2] = np.nan
    samples[:, 3, 2] = np.nan  # no finite value
    samples[:19, 4, 1], samples[19, 4, 1] = np.nan, 1.5  # one
    quantiles = [0.0, 0.05, 0.5, 0.95, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanquantile(samples, quantiles, axis=0)
    got = nan_quantiles(samples, quantiles)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert np.isnan(got[:, 3, 2]).all() and np.all(got[:, 4, 1] == 1.5)
