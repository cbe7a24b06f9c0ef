"""Tests for the chaotic-RNN, pulse-input and integrate-to-bound generators (Methods 2.2 to 2.4)."""

import numpy as np
import pytest
from sklearn.metrics import r2_score

from pyro_lfads.cli import main
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import load_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.synthetic.chaotic_rnn import make_chaotic_rnn_dataset, make_pulse_dataset, rates_hz
from pyro_lfads.synthetic.integrate_to_bound import (FIT_CONFIG, bounded_integral, make_integrate_to_bound_dataset,
                                                     supervised_input_r2, train_integrator)

SMALL = dict(n_conditions=20, trials_per_condition=5)
QUICK_STEPS = 30  # a barely trained integrator: enough to test the data's plumbing


def chaotic(seed=0, **kwargs):
    return make_chaotic_rnn_dataset(seed=seed, **SMALL, **kwargs)


def pulses(seed=0, **kwargs):
    return make_pulse_dataset(seed=seed, **SMALL, **kwargs)


def itb(seed=0, **kwargs):
    return make_integrate_to_bound_dataset(seed=seed, **SMALL, train_steps=QUICK_STEPS, **kwargs)


@pytest.fixture(scope="module")
def datasets():
    return {"chaotic-rnn": chaotic(), "pulses": pulses(), "integrate-to-bound": itb()}


@pytest.fixture(scope="module")
def default_integrator():
    return train_integrator(seed=0)


def _arrays(ds):
    out = {}
    for split in ("train", "valid"):
        s = getattr(ds, split)
        out.update({f"{split}_spikes": s.recon_data, f"{split}_truth": s.truth, f"{split}_inds": s.inds})
    out.update(ds.extras)
    return out


@pytest.mark.parametrize("make", [chaotic, pulses, itb])
@pytest.mark.slow
def test_same_seed_identical_different_seed_differs(make):
    a, b, c = (_arrays(make(seed=s)) for s in (3, 3, 4))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["train_truth"], c["train_truth"])
    assert not np.array_equal(a["train_spikes"], c["train_spikes"])


@pytest.mark.parametrize("name, extras", [
    ("chaotic-rnn", {"conditions": (), "latents": (100, 50)}),
    ("pulses", {"conditions": (), "latents": (100, 50), "pulse_times_ms": (), "pulsed": (), "inputs": (100, 1)}),
    ("integrate-to-bound", {"conditions": (), "latents": (100, 50), "inputs": (100, 1), "target": (100, 1)}),
])
@pytest.mark.slow
def test_shapes_dtypes_and_split(datasets, name, extras):
    ds = datasets[name]
    assert ds.conversion_factor == pytest.approx(100.0)
    assert ds.source.startswith(f"{name}(seed=0")
    assert sorted(ds.extras) == sorted(f"{split}_{key}" for split in ("train", "valid") for key in extras)
    for split, n in (("train", 80), ("valid", 20)):
        s = getattr(ds, split)
        assert s.recon_data.shape == s.truth.shape == (n, 100, 50)
        assert s.encod_data.dtype == s.truth.dtype == np.float32
        assert s.ext_input is None
        for key, shape in extras.items():
            assert ds.extras[f"{split}_{key}"].shape == (n, *shape)
        assert ds.extras[f"{split}_conditions"].dtype == np.int64
        for key in ("latents", "inputs", "target"):
            if key in extras:
                assert ds.extras[f"{split}_{key}"].dtype == np.float32
        # 80/20 within each condition; inds = condition * trials + repeat
        np.testing.assert_array_equal(np.bincount(ds.extras[f"{split}_conditions"], minlength=20),
                                      np.full(20, n // 20))
        np.testing.assert_array_equal(s.inds // 5, ds.extras[f"{split}_conditions"])
    np.testing.assert_array_equal(np.sort(np.concatenate([ds.train.inds, ds.valid.inds])), np.arange(100))


@pytest.mark.parametrize("name", ["chaotic-rnn", "pulses", "integrate-to-bound"])
@pytest.mark.slow
def test_rates_are_the_units_and_match_the_spikes(datasets, name):
    ds = datasets[name]
    for split in ("train", "valid"):
        s = getattr(ds, split)
        assert s.truth.min() >= 0.0 and s.truth.max() <= 30.0
        if name != "integrate-to-bound":  # its neurons read projections of the units (tested below)
            np.testing.assert_allclose(s.truth, rates_hz(ds.extras[f"{split}_latents"], 30.0), rtol=1e-4, atol=1e-4)
        assert s.recon_data.min() >= 0
        np.testing.assert_array_equal(s.recon_data, np.round(s.recon_data))
    spikes = np.concatenate([ds.train.recon_data, ds.valid.recon_data])
    expected = np.concatenate([ds.truth_counts("train"), ds.truth_counts("valid")])
    assert spikes.mean() == pytest.approx(expected.mean(), rel=0.03)
    assert 0.05 < expected.mean() < 0.25  # 5 to 25 spikes/s around the midpoint of 0..30


@pytest.mark.slow
def test_chaotic_rnn_keeps_moving(datasets):
    activity = np.tanh(datasets["chaotic-rnn"].extras["train_latents"][:, 50:])  # second half of the trial
    assert np.median(activity.std(axis=1)) > 0.1  # no decay to a fixed point at gamma 1.5
    fixed = np.tanh(chaotic(gamma=0.5).extras["train_latents"][:, 50:])
    assert np.median(fixed.std(axis=1)) < 0.01  # below gamma 1 it does decay


@pytest.mark.slow
def test_chaotic_rnn_trials_of_a_condition_share_rates(datasets):
    ds = datasets["chaotic-rnn"]
    trials = np.flatnonzero(ds.extras["train_conditions"] == 7)
    assert np.all(ds.train.truth[trials] == ds.train.truth[trials[0]])
    assert not np.array_equal(ds.train.recon_data[trials[0]], ds.train.recon_data[trials[1]])


@pytest.mark.slow
def test_one_pulse_per_trial_in_the_window(datasets):
    ds = datasets["pulses"]
    times = np.concatenate([ds.extras["train_pulse_times_ms"], ds.extras["valid_pulse_times_ms"]])
    inputs = np.concatenate([ds.extras["train_inputs"], ds.extras["valid_inputs"]])[..., 0]
    assert np.all(np.count_nonzero(inputs, axis=1) == 1)
    assert np.all(inputs.max(axis=1) == 50.0)
    np.testing.assert_array_equal(inputs.argmax(axis=1) * 10.0, times)
    assert times.min() >= 250.0 and times.max() <= 750.0
    assert len(np.unique(times)) > 20  # drawn per trial, spread over the window
    assert np.all(np.concatenate([ds.extras["train_pulsed"], ds.extras["valid_pulsed"]]) == 1)


def test_pulse_fraction_leaves_the_other_trials_unpulsed():
    ds = pulses(pulse_fraction=0.5)
    pulsed = np.concatenate([ds.extras["train_pulsed"], ds.extras["valid_pulsed"]]).astype(bool)
    times = np.concatenate([ds.extras["train_pulse_times_ms"], ds.extras["valid_pulse_times_ms"]])
    inputs = np.concatenate([ds.extras["train_inputs"], ds.extras["valid_inputs"]])[..., 0]
    assert 0.3 < pulsed.mean() < 0.7
    assert np.all(np.count_nonzero(inputs, axis=1) == pulsed)
    assert np.isnan(times[~pulsed]).all()
    np.testing.assert_array_equal(inputs[pulsed].argmax(axis=1) * 10.0, times[pulsed])
    with pytest.raises(InputError, match="pulse_fraction: must be a number from 0 to 1, got 1.5"):
        pulses(pulse_fraction=1.5)


@pytest.mark.slow
def test_pulse_changes_rates_from_its_bin_on(datasets):
    ds, plain = datasets["pulses"], datasets["chaotic-rnn"]  # same seed and sizes: same network and conditions
    rates_of_condition = {c: plain.train.truth[i] for i, c in enumerate(plain.extras["train_conditions"])}
    for trial, condition in enumerate(ds.extras["train_conditions"]):
        pulse = int(ds.extras["train_pulse_times_ms"][trial] // 10)
        change = np.abs(ds.train.truth[trial] - rates_of_condition[condition]).max(axis=1)  # (time,)
        assert change[:pulse].max(initial=0.0) < 1e-3
        assert change[pulse] > 1.0


def test_bounded_integral_clips_the_running_sum():
    inputs = np.array([[0.5, 0.6, -0.3, -2.0], [-0.4, -0.4, 0.3, 0.1], [0.2, -1.5, 3.0, 0.0]])
    expected = np.array([[0.5, 1.0, 0.8, -1.0], [-0.4, -0.8, -0.5, -0.4], [0.2, -1.0, 1.0, 1.0]])
    np.testing.assert_allclose(bounded_integral(inputs), expected)


@pytest.mark.slow
def test_integrate_to_bound_neurons_read_projections_spanning_each_trial(datasets):
    ds = datasets["integrate-to-bound"]
    truth = ds.train.truth  # (trials, time, neurons) spikes/s
    np.testing.assert_allclose(truth.min(axis=1), 0.0, atol=1e-4)  # each neuron spans 0..30 in every trial
    np.testing.assert_allclose(truth.max(axis=1), 30.0, atol=1e-3)
    # one fixed linear read-out of the states, up to the per-trial affine rescaling
    latents = ds.extras["train_latents"][0].astype(np.float64)
    design = np.column_stack([latents, np.ones(len(latents))])
    fit = np.linalg.lstsq(design, truth[0], rcond=None)[0]
    np.testing.assert_allclose(design @ fit, truth[0], atol=1e-2)
    wide = itb(n_neurons=120)
    assert wide.train.recon_data.shape == (80, 100, 120)


@pytest.mark.slow
def test_supervised_input_r2_measures_what_the_counts_carry():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(60, 50))
    informative = rng.poisson(np.exp(0.5 * inputs[..., None] + np.zeros(20)))  # 20 neurons follow u_t
    assert supervised_input_r2(informative, inputs) > 0.5
    unrelated = rng.poisson(1.0, size=(60, 50, 20))
    assert abs(supervised_input_r2(unrelated, inputs)) < 0.05


@pytest.mark.slow
def test_integrate_to_bound_inputs_and_target(datasets):
    ds = datasets["integrate-to-bound"]
    inputs = np.concatenate([ds.extras["train_inputs"], ds.extras["valid_inputs"]])[..., 0]
    target = np.concatenate([ds.extras["train_target"], ds.extras["valid_target"]])[..., 0]
    assert inputs.var() == pytest.approx(0.0625, rel=0.1)
    np.testing.assert_allclose(target, bounded_integral(inputs), atol=1e-6)
    assert np.abs(target).max() == 1.0
    trials = np.flatnonzero(ds.extras["train_conditions"] == 3)
    np.testing.assert_array_equal(ds.extras["train_inputs"][trials], ds.extras["train_inputs"][trials[:1]].repeat(4, 0))


@pytest.mark.slow
def test_integrate_to_bound_latents_are_the_trained_net_driven_by_the_inputs(datasets):
    ds = datasets["integrate-to-bound"]
    net = train_integrator(seed=0, steps=QUICK_STEPS)
    assert f"R2={net.r2:.3f}" in ds.source
    np.testing.assert_allclose(ds.extras["valid_latents"], net.states(ds.extras["valid_inputs"][..., 0]),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_default_training_integrates_to_bound(default_integrator):
    net = default_integrator
    assert net.r2 > 0.8
    inputs = np.random.default_rng(123).normal(0.0, 0.25, size=(500, 100))  # fresh inputs, another generator
    assert r2_score(bounded_integral(inputs).ravel(), net.output(inputs).ravel()) > 0.8
    assert net.recurrent.shape == (50, 50) and net.input_weights.shape == (50, 1) and net.readout.shape == (50,)
    assert net.bias.shape == (50,)


def test_the_suggested_fit_config_is_a_valid_config_with_a_white_prior():
    config = LFADSConfig().replace(**FIT_CONFIG)
    assert config.ar_tau_init < 1 and config.kl_co_scale < 1 and config.co_dim == 1


@pytest.mark.slow
def test_training_is_seeded():
    a, b, c = (train_integrator(seed=s, steps=10) for s in (5, 5, 6))
    for field in ("recurrent", "bias", "input_weights", "readout"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert not np.array_equal(getattr(a, field), getattr(c, field))
    assert a.r2 == b.r2


@pytest.mark.parametrize("make, kwargs, name", [
    (make_chaotic_rnn_dataset, dict(gamma=-1.0), "gamma"),
    (make_chaotic_rnn_dataset, dict(n_units=0), "n_units"),
    (make_chaotic_rnn_dataset, dict(seed=-1), "seed"),
    (make_chaotic_rnn_dataset, dict(trials_per_condition=1), "trials_per_condition"),
    (make_chaotic_rnn_dataset, dict(train_fraction=1.0), "train_fraction"),
    (make_chaotic_rnn_dataset, dict(bin_ms=30.0), "bin_ms"),
    (make_chaotic_rnn_dataset, dict(max_rate_hz=float("nan")), "max_rate_hz"),
    (make_pulse_dataset, dict(pulse_magnitude=0.0), "pulse_magnitude"),
    (make_pulse_dataset, dict(pulse_window_ms=(1000.0, 1200.0)), "pulse_window_ms"),
    (make_pulse_dataset, dict(pulse_window_ms=(750.0, 250.0)), "pulse_window_ms"),
    (make_pulse_dataset, dict(pulse_window_ms="soon"), "pulse_window_ms"),
    (make_pulse_dataset, dict(n_time=2.5), "n_time"),
    (make_integrate_to_bound_dataset, dict(input_variance=0.0), "input_variance"),
    (make_integrate_to_bound_dataset, dict(train_steps=0), "steps"),
    (make_integrate_to_bound_dataset, dict(n_conditions=0), "n_conditions"),
    (make_integrate_to_bound_dataset, dict(seed=True), "seed"),
    (make_integrate_to_bound_dataset, dict(train_fraction=0.0), "train_fraction"),
    (make_integrate_to_bound_dataset, dict(n_neurons=0), "n_neurons"),
    (train_integrator, dict(l2=-1.0), "l2"),
    (train_integrator, dict(batch_size=0), "batch_size"),
])
def test_bad_arguments_raise_input_error(make, kwargs, name):
    with pytest.raises(InputError, match=name) as info:
        make(**kwargs)
    assert "\n" not in str(info.value)


def test_cli_writes_pulses(tmp_path, monkeypatch):
    import pyro_lfads.synthetic.chaotic_rnn as chaotic_rnn

    monkeypatch.setattr(chaotic_rnn, "make_pulse_dataset", lambda **kwargs: make_pulse_dataset(**SMALL, **kwargs))
    path = tmp_path / "pulses.h5"
    assert main(["synth", "pulses", "--out", str(path), "--gamma", "2.5", "--seed", "1"]) == 0
    ds = load_dataset(path)
    expected = pulses(seed=1, gamma=2.5)
    assert ds.source == str(path)
    for key in ("train_inputs", "valid_pulse_times_ms", "train_conditions", "valid_latents"):
        np.testing.assert_array_equal(ds.extras[key], expected.extras[key])
    np.testing.assert_array_equal(ds.train.recon_data, expected.train.recon_data)


@pytest.mark.parametrize("system", ["lorenz", "integrate-to-bound"])
def test_cli_gamma_only_for_the_chaotic_rnn(tmp_path, capsys, system):
    path = tmp_path / "x.h5"
    assert main(["synth", system, "--out", str(path), "--gamma", "2.5"]) == 2
    err = capsys.readouterr().err
    assert "--gamma" in err and err.count("\n") == 1
    assert not path.exists()


def test_cli_bad_gamma(tmp_path, capsys):
    assert main(["synth", "chaotic-rnn", "--out", str(tmp_path / "x.h5"), "--gamma", "-1"]) == 2
    assert "gamma" in capsys.readouterr().err
