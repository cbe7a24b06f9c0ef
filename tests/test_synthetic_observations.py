"""Synthetic data for each observation model, and calcium imaging: determinism and statistics."""

from __future__ import annotations

import numpy as np
import pytest

from pyro_lfads.errors import InputError
from pyro_lfads.synthetic.calcium import make_calcium_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

SMALL = dict(n_conditions=20, trials_per_condition=10, n_neurons=12, n_time=60)


@pytest.mark.parametrize("likelihood", ["poisson", "negbinom", "gaussian", "gamma", "zig"])
def test_deterministic_and_mean_matches_truth(likelihood):
    a = make_lorenz_dataset(seed=2, likelihood=likelihood, **SMALL)
    b = make_lorenz_dataset(seed=2, likelihood=likelihood, **SMALL)
    np.testing.assert_array_equal(a.train.recon_data, b.train.recon_data)
    data = np.concatenate([a.train.recon_data, a.valid.recon_data])
    truth = np.concatenate([a.truth_counts("train"), a.truth_counts("valid")])
    # the truth is the expected observation: pooled means agree within sampling error
    assert abs(data.mean() - truth.mean()) < 0.05 * max(abs(truth.mean()), data.std() / 10)


def test_over_dispersed_counts_have_excess_variance():
    poisson = make_lorenz_dataset(seed=2, likelihood="poisson", **SMALL)
    negbinom = make_lorenz_dataset(seed=2, likelihood="negbinom", **SMALL)
    fano = lambda d: (d.train.recon_data.var(axis=0) / d.train.recon_data.mean(axis=0).clip(1e-9)).mean()  # noqa
    assert fano(negbinom) > 1.1 * fano(poisson)
    assert np.all(negbinom.train.recon_data == np.floor(negbinom.train.recon_data))


def test_zig_has_exact_zeros_and_events_above_the_minimum():
    zig = make_lorenz_dataset(seed=2, likelihood="zig", **SMALL).train.recon_data
    assert 0.5 < (zig == 0).mean() < 0.99 and zig[zig > 0].min() >= 0.1


def test_gamma_is_positive_and_gaussian_is_real():
    assert (make_lorenz_dataset(seed=2, likelihood="gamma", **SMALL).train.recon_data > 0).all()
    assert (make_lorenz_dataset(seed=2, likelihood="gaussian", **SMALL).train.recon_data < 0).any()


def test_unknown_likelihood_is_refused():
    with pytest.raises(InputError, match="likelihood"):
        make_lorenz_dataset(likelihood="bernoulli")


def test_calcium_statistics():
    kw = dict(n_conditions=10, trials_per_condition=6, n_neurons=8, n_frames=30)
    a, b = make_calcium_dataset(seed=4, **kw), make_calcium_dataset(seed=4, **kw)
    np.testing.assert_array_equal(a.train.recon_data, b.train.recon_data)
    assert a.train.recon_data.shape == (10 * 5, 30, 8)  # round(0.8 * 6) = 5 train trials per condition
    assert a.conversion_factor == pytest.approx(1000 / 30)
    spikes = a.extras["train_spikes"]
    # truth / conversion_factor is the expected spike count per frame
    assert abs(spikes.mean() - a.truth_counts("train").mean()) < 0.05 * spikes.mean()
    # fluorescence rises with the spikes: a slow, positive correlation at lag >= 0
    f = a.train.recon_data - a.train.recon_data.mean(axis=(0, 1))
    s = spikes - spikes.mean(axis=(0, 1))
    assert (f[:, 1:] * s[:, :-1]).mean() > 0
    # noise-free fluorescence is above the per-neuron baseline (>= 0.8)
    clean = make_calcium_dataset(seed=4, noise_std=0.0, **kw).train.recon_data
    assert clean.min() >= 0.8
