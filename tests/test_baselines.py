"""Tests for the Gaussian smoothing baseline."""

import numpy as np
import pytest

from pyro_lfads.baselines import GaussianSmoothing
from pyro_lfads.errors import InputError
from pyro_lfads.metrics import rate_r2
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset


def _sinusoid_spikes(seed, n_trials=100):
    """Counts per bin from a slow sinusoidal rate, (trials, 100, 5), and the rate."""
    t = np.arange(100)
    phase = np.linspace(0, np.pi, 5)
    rates = 0.5 + 0.4 * np.sin(2 * np.pi * t[:, None] / 50 + phase[None, :])
    rates = np.broadcast_to(rates, (n_trials, 100, 5))
    return np.random.default_rng(seed).poisson(rates).astype(float), rates


def test_slow_rate_gets_a_wide_kernel_and_beats_raw_spikes():
    train, _ = _sinusoid_spikes(0)
    valid, truth = _sinusoid_spikes(1, n_trials=30)
    model = GaussianSmoothing()
    assert model.fit(train) is model
    assert model.sigma_bins_ > 1.0
    assert model.sigma_bins_ == model.sigmas[int(np.argmax(model.scores_))]
    smoothed = model.predict(valid)
    assert smoothed.shape == valid.shape
    assert np.all(smoothed > 0)
    assert rate_r2(truth, smoothed) > rate_r2(truth, valid) + 0.3


def test_leave_one_out_does_not_pick_the_narrowest_kernel_on_noise():
    # Constant-rate noise: any smoothing helps, the narrowest kernel is worst.
    spikes = np.random.default_rng(2).poisson(0.3, size=(50, 60, 4)).astype(float)
    model = GaussianSmoothing().fit(spikes)
    assert model.sigma_bins_ == max(model.sigmas)
    assert np.argmin(model.scores_) == 0


def test_lorenz_smoothing_is_informative_but_imperfect():
    ds = make_lorenz_dataset(seed=0, n_conditions=20)
    model = GaussianSmoothing().fit(ds.train.recon_data)
    r2 = rate_r2(ds.truth_counts("valid"), model.predict(ds.valid.recon_data))
    assert 0.2 < r2 < 0.9


def test_short_trials_and_single_bin_predict():
    spikes = np.random.default_rng(3).poisson(1.0, size=(20, 3, 2)).astype(float)
    model = GaussianSmoothing().fit(spikes)
    assert np.all(np.isfinite(model.scores_))
    assert model.predict(spikes[:, :1]).shape == (20, 1, 2)


def test_predict_before_fit_raises():
    with pytest.raises(InputError, match="before fit"):
        GaussianSmoothing().predict(np.ones((2, 10, 3)))


@pytest.mark.parametrize(
    "spikes",
    [
        np.ones((10, 3)),
        -np.ones((2, 10, 3)),
        np.full((2, 10, 3), np.inf),
        np.zeros((2, 10, 3)),
        np.ones((2, 1, 3)),
    ],
)
def test_bad_training_spikes_raise(spikes):
    with pytest.raises(InputError, match="spikes") as info:
        GaussianSmoothing().fit(spikes)
    assert "\n" not in str(info.value)


def test_bad_predict_spikes_raise():
    model = GaussianSmoothing().fit(np.ones((2, 10, 3)))
    with pytest.raises(InputError, match="spikes"):
        model.predict(np.ones((10, 3)))


def test_bad_sigmas_raise():
    with pytest.raises(InputError, match="sigmas"):
        GaussianSmoothing(sigmas=(0.0, 1.0)).fit(np.ones((2, 10, 3)))
