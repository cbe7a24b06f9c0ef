"""Tests for the Lorenz benchmark generator."""

import numpy as np
import pytest

from pyro_lfads.errors import InputError
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

SMALL = dict(n_conditions=8, trials_per_condition=10, n_neurons=12, n_time=40)


@pytest.fixture(scope="module")
def full():
    return make_lorenz_dataset(seed=0)


def _arrays(ds):
    out = {}
    for split in ("train", "valid"):
        s = getattr(ds, split)
        out.update({f"{split}_spikes": s.recon_data, f"{split}_encod": s.encod_data,
                    f"{split}_truth": s.truth, f"{split}_inds": s.inds})
    out.update(ds.extras)
    return out


def test_same_seed_identical_different_seed_differs():
    a, b, c = (_arrays(make_lorenz_dataset(seed=s, **SMALL)) for s in (3, 3, 4))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["train_truth"], c["train_truth"])
    assert not np.array_equal(a["train_spikes"], c["train_spikes"])


def test_full_shapes_dtypes_and_metadata(full):
    assert full.train.recon_data.shape == (65 * 16, 100, 30)
    assert full.valid.recon_data.shape == (65 * 4, 100, 30)
    for split, n in (("train", 1040), ("valid", 260)):
        s = getattr(full, split)
        assert s.encod_data.dtype == s.recon_data.dtype == s.truth.dtype == np.float32
        np.testing.assert_array_equal(s.encod_data, s.recon_data)
        assert s.truth.shape == s.recon_data.shape
        assert s.ext_input is None
        assert full.extras[f"{split}_conditions"].shape == (n,)
        assert full.extras[f"{split}_conditions"].dtype == np.int64
        assert full.extras[f"{split}_latents"].shape == (n, 100, 3)
        assert full.extras[f"{split}_latents"].dtype == np.float32
    assert full.conversion_factor == pytest.approx(100.0)
    assert full.source == "lorenz(seed=0, likelihood=poisson)"


def test_split_within_each_condition(full):
    train_c = full.extras["train_conditions"]
    valid_c = full.extras["valid_conditions"]
    np.testing.assert_array_equal(np.bincount(train_c, minlength=65), np.full(65, 16))
    np.testing.assert_array_equal(np.bincount(valid_c, minlength=65), np.full(65, 4))
    inds = np.concatenate([full.train.inds, full.valid.inds])
    np.testing.assert_array_equal(np.sort(inds), np.arange(65 * 20))
    np.testing.assert_array_equal(full.train.inds // 20, train_c)
    np.testing.assert_array_equal(full.valid.inds // 20, valid_c)


def test_trials_of_a_condition_share_rates_and_latents(full):
    c = full.extras["train_conditions"]
    first = np.flatnonzero(c == 7)
    assert np.all(full.train.truth[first] == full.train.truth[first[0]])
    assert np.all(full.extras["train_latents"][first] == full.extras["train_latents"][first[0]])
    v = np.flatnonzero(full.extras["valid_conditions"] == 7)
    np.testing.assert_array_equal(full.valid.truth[v[0]], full.train.truth[first[0]])


def test_rates_match_spike_counts_and_baseline(full):
    spikes = np.concatenate([full.train.recon_data, full.valid.recon_data])
    expected = np.concatenate([full.truth_counts("train"), full.truth_counts("valid")])
    assert spikes.mean() == pytest.approx(expected.mean(), rel=0.03)
    assert 2.5 < np.median(full.train.truth) < 10.0
    assert np.all(full.train.truth > 0)


def test_spikes_are_non_negative_integers(full):
    for s in (full.train.recon_data, full.valid.recon_data):
        assert s.min() >= 0
        np.testing.assert_array_equal(s, np.round(s))


def test_latents_are_z_scored(full):
    latents = np.concatenate([full.extras["train_latents"], full.extras["valid_latents"]])
    # Every condition has the same number of trials per split, so the pooled
    # trials weight the conditions equally.
    np.testing.assert_allclose(latents.mean(axis=(0, 1)), 0.0, atol=1e-4)
    np.testing.assert_allclose(latents.std(axis=(0, 1)), 1.0, atol=1e-4)
    assert np.all(np.abs(latents) < 5)


def test_bin_width_sets_counts_not_rates():
    a = make_lorenz_dataset(seed=1, **SMALL)
    b = make_lorenz_dataset(seed=1, bin_ms=20.0, **SMALL)
    np.testing.assert_array_equal(a.train.truth, b.train.truth)
    assert b.conversion_factor == pytest.approx(50.0)
    np.testing.assert_allclose(b.truth_counts("train"), 2 * a.truth_counts("train"), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_neurons=0), "n_neurons"),
        (dict(n_conditions=0), "n_conditions"),
        (dict(n_time=0), "n_time"),
        (dict(n_neurons=2.5), "n_neurons"),
        (dict(seed=-1), "seed"),
        (dict(trials_per_condition=1), "trials_per_condition"),
        (dict(train_fraction=0.0), "train_fraction"),
        (dict(train_fraction=1.0), "train_fraction"),
        (dict(train_fraction=0.99), "train_fraction"),
        (dict(bin_ms=0.0), "bin_ms"),
        (dict(baseline_rate_hz=float("nan")), "baseline_rate_hz"),
        (dict(readout_scale=-1.0), "readout_scale"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs, name):
    with pytest.raises(InputError, match=name) as info:
        make_lorenz_dataset(**kwargs)
    assert "\n" not in str(info.value)


def test_steps_per_bin_counts_the_same_spikes_in_wider_bins():
    """steps_per_bin 2: the very spike trains of the 10 ms data set, counted in 20 ms bins (rates and latents
    averaged over each pair); anything but Poisson counts is refused."""
    fine = make_lorenz_dataset(seed=4, n_conditions=6, trials_per_condition=5, n_time=40)
    wide = make_lorenz_dataset(seed=4, n_conditions=6, trials_per_condition=5, n_time=20, bin_ms=20.0, steps_per_bin=2)
    for split in ("train", "valid"):
        a, b = getattr(fine, split), getattr(wide, split)
        np.testing.assert_array_equal(a.recon_data.reshape(a.n_trials, 20, 2, -1).sum(2), b.recon_data)
        np.testing.assert_allclose(a.truth.reshape(a.n_trials, 20, 2, -1).mean(2), b.truth, rtol=1e-6)
        np.testing.assert_allclose(fine.extras[f"{split}_latents"].reshape(a.n_trials, 20, 2, 3).mean(2),
                                   wide.extras[f"{split}_latents"], rtol=1e-5, atol=1e-6)
    assert wide.conversion_factor == fine.conversion_factor / 2 and wide.bin_width_s == 0.02
    with pytest.raises(InputError, match="steps_per_bin"):
        make_lorenz_dataset(seed=4, n_conditions=6, n_time=20, steps_per_bin=2, likelihood="gaussian")
