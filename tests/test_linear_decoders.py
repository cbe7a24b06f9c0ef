"""The OLE and Kalman behaviour decoders (Methods 5.1) on linear-Gaussian data of known answer, and `decode`."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from sklearn.metrics import r2_score

from pyro_lfads.cli.commands import main
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.continuous_decoding import series_r2
from pyro_lfads.evaluation.decoding import LINEAR_DECODERS, METHODS, decode_run
from pyro_lfads.evaluation.kalman import KalmanDecoder
from pyro_lfads.evaluation.linear_decoders import as_3d, behavior_r2, lagged_pairs, trial_folds
from pyro_lfads.evaluation.ole import OLEDecoder, affine_least_squares

#: The true system: a damped rotation of a 2-D kinematic state, observed by 8 noisy features.
THETA = 0.3
A_TRUE = 0.95 * np.array([[np.cos(THETA), -np.sin(THETA)], [np.sin(THETA), np.cos(THETA)]])
B_TRUE = np.array([0.05, -0.02])
W_TRUE = np.array([[0.04, 0.01], [0.01, 0.03]])
H_TRUE = np.random.default_rng(1).normal(size=(8, 2))
D_TRUE = np.random.default_rng(2).normal(size=8)
Q_TRUE = np.diag(np.linspace(0.5, 1.5, 8)) + 0.1
X0_MEAN, X0_COV = np.array([1.0, -0.5]), np.array([[0.5, 0.1], [0.1, 0.3]])


def simulate(n_trials: int, n_time: int, seed: int, noise_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Features (trials, T, 8) and kinematic state (trials, T, 2) of the true system."""
    rng = np.random.default_rng(seed)
    state = np.empty((n_trials, n_time, 2))
    state[:, 0] = rng.multivariate_normal(X0_MEAN, X0_COV, n_trials)
    for t in range(1, n_time):
        state[:, t] = state[:, t - 1] @ A_TRUE.T + B_TRUE + rng.multivariate_normal(np.zeros(2), W_TRUE, n_trials)
    noise = rng.multivariate_normal(np.zeros(8), Q_TRUE, (n_trials, n_time)) * noise_scale
    return state @ H_TRUE.T + D_TRUE + noise, state


def reference_filter(z, A, b, W, H, d, Q, mean0, cov0):
    """A textbook Kalman filter, one trial and one bin at a time: filtered means (trials, T, B)."""
    out = np.empty((*z.shape[:2], A.shape[0]))
    for i, trial in enumerate(z):
        mean, cov = mean0, cov0
        for t, obs in enumerate(trial):
            if t:
                mean, cov = A @ mean + b, A @ cov @ A.T + W
            gain = cov @ H.T @ np.linalg.inv(H @ cov @ H.T + Q)
            mean = mean + gain @ (obs - H @ mean - d)
            cov = (np.eye(len(mean)) - gain @ H) @ cov
            out[i, t] = mean
    return out


def test_kalman_fit_recovers_the_true_system():
    features, state = simulate(1000, 40, seed=0)
    decoder = KalmanDecoder().fit(features, state)
    np.testing.assert_allclose(decoder.A_, A_TRUE, atol=0.01)
    np.testing.assert_allclose(decoder.b_, B_TRUE, atol=0.01)
    np.testing.assert_allclose(decoder.W_, W_TRUE, atol=0.003)
    np.testing.assert_allclose(decoder.H_, H_TRUE, atol=0.03)
    np.testing.assert_allclose(decoder.d_, D_TRUE, atol=0.03)
    np.testing.assert_allclose(decoder.Q_, Q_TRUE, atol=0.05)
    np.testing.assert_allclose(decoder.x0_mean_, X0_MEAN, atol=0.06)
    np.testing.assert_allclose(decoder.x0_cov_, X0_COV, atol=0.06)
    assert decoder.n_features_in_ == 8 and decoder.n_behavior_ == 2


def test_kalman_dynamics_use_known_transitions_within_trials_only():
    features, state = simulate(30, 12, seed=3)
    state[4, 5] = np.nan  # its transitions in and out are unknown
    decoder = KalmanDecoder().fit(features, state)
    prev, nxt = state[:, :-1].reshape(-1, 2), state[:, 1:].reshape(-1, 2)
    keep = ~np.isnan(prev).any(1) & ~np.isnan(nxt).any(1)
    assert keep.sum() == 30 * 11 - 2
    coef, offset = affine_least_squares(prev[keep], nxt[keep])
    np.testing.assert_allclose(decoder.A_, coef.T, rtol=1e-10)
    np.testing.assert_allclose(decoder.b_, offset, rtol=1e-10)
    across = state.reshape(-1, 2)  # one series: it would count the jumps from one trial to the next
    across = across[~np.isnan(across).any(1)]
    assert np.abs(affine_least_squares(across[:-1], across[1:])[0].T - decoder.A_).max() > 1e-3


def test_kalman_filter_with_the_true_parameters_equals_a_reference_filter():
    features, state = simulate(20, 30, seed=4)
    decoder = KalmanDecoder().fit(features, state)
    truth = dict(A_=A_TRUE, b_=B_TRUE, W_=W_TRUE, H_=H_TRUE, d_=D_TRUE, Q_=Q_TRUE, x0_mean_=X0_MEAN, x0_cov_=X0_COV)
    for name, value in truth.items():
        setattr(decoder, name, value)
    expected = reference_filter(features, A_TRUE, B_TRUE, W_TRUE, H_TRUE, D_TRUE, Q_TRUE, X0_MEAN, X0_COV)
    np.testing.assert_allclose(decoder.predict(features), expected, rtol=1e-10, atol=1e-12)
    gains = decoder.gains(30)
    assert gains.shape == (30, 2, 8)
    first = X0_COV @ H_TRUE.T @ np.linalg.inv(H_TRUE @ X0_COV @ H_TRUE.T + Q_TRUE)
    np.testing.assert_allclose(gains[0], first, rtol=1e-10)
    np.testing.assert_allclose(gains[-1], gains[-2], rtol=1e-6)  # converged to the steady-state gain


def test_kalman_beats_ole_on_noisy_observations():
    train, valid = simulate(300, 40, seed=5, noise_scale=3.0), simulate(100, 40, seed=6, noise_scale=3.0)
    kalman, ole = KalmanDecoder().fit(*train).score(*valid), OLEDecoder().fit(*train).score(*valid)
    assert kalman > ole + 0.1 and 0 < ole < 0.9
    assert KalmanDecoder().cross_validated_r2(*train) > OLEDecoder().cross_validated_r2(*train) + 0.1


def test_ole_recovers_a_linear_map_exactly_on_noise_free_data():
    rng = np.random.default_rng(7)
    features, coef, intercept = rng.normal(size=(30, 20, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    behavior = features @ coef + intercept
    behavior[3, 4] = np.nan  # unknown bins are left out
    decoder = OLEDecoder().fit(features, behavior)
    np.testing.assert_allclose(decoder.coef_, coef, atol=1e-10)
    np.testing.assert_allclose(decoder.intercept_, intercept, atol=1e-10)
    assert decoder.score(features, behavior) == pytest.approx(1.0, abs=1e-12)
    assert decoder.predict(features).shape == (30, 20, 3) and OLEDecoder.method == "ole"


def test_decoders_respect_lag_bins():
    rng = np.random.default_rng(8)
    features, coef = rng.normal(size=(40, 30, 4)), rng.normal(size=(4, 3))
    behavior = np.full((40, 30, 3), np.nan)
    behavior[:, 2:] = features[:, :-2] @ coef  # behaviour at t read from features at t - 2
    lagged = OLEDecoder(lag_bins=2).fit(features, behavior)
    assert lagged.predict(features).shape == (40, 28, 3)
    assert lagged.score(features, behavior) == pytest.approx(1.0, abs=1e-12)
    assert OLEDecoder(lag_bins=0).fit(features, behavior).score(features, behavior) < 0.2
    state = rng.normal(size=(200, 30, 2))  # a state of fast dynamics: bin t tells little of bin t + 2
    for t in range(1, 30):
        state[:, t] += 0.3 * state[:, t - 1]
    shifted = rng.normal(size=(200, 30, 8))
    shifted[:, :-2] = state[:, 2:] @ H_TRUE.T + 0.3 * shifted[:, :-2]  # the features at t - 2 observe the state at t
    assert KalmanDecoder(lag_bins=2).fit(shifted, state).score(shifted, state) > 0.9
    assert KalmanDecoder(lag_bins=0).fit(shifted, state).score(shifted, state) < 0.2


def test_lagged_pairs_pair_features_at_t_minus_lag_with_behaviour_at_t():
    features, behavior = np.arange(12.0).reshape(2, 3, 2), np.arange(6.0).reshape(2, 3, 1) + 100
    x, y = lagged_pairs(features, behavior, 1)
    np.testing.assert_array_equal(x, features[:, :2])
    np.testing.assert_array_equal(y, behavior[:, 1:])


def test_cross_validation_holds_out_whole_trials():
    folds = trial_folds(20, 5)
    held_out = np.concatenate([test for _, test in folds])
    assert len(folds) == 5 and sorted(held_out) == list(range(20))
    assert all(np.intersect1d(train, test).size == 0 and train.size == 16 for train, test in folds)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, trial_folds(20, 5)))  # a fixed seed
    assert not np.array_equal(folds[0][1], np.arange(4))  # shuffled
    # features name the trial: folds of bins would learn each trial's offset, folds of trials cannot
    rng = np.random.default_rng(10)
    features = np.zeros((20, 10, 20))
    features[np.arange(20), :, np.arange(20)] = 1.0
    behavior = rng.normal(size=(20, 1, 1)) + 0.01 * rng.normal(size=(20, 10, 1))
    decoder = OLEDecoder()
    assert decoder.fit(features, behavior).score(features, behavior) > 0.99
    assert decoder.cross_validated_r2(features, behavior) < 0.1


def test_cross_validated_predict_refits_a_copy_on_each_folds_other_trials():
    features, state = simulate(25, 15, seed=11)
    decoder = KalmanDecoder(lag_bins=1, folds=5)
    predicted = decoder.cross_validated_predict(features, state)
    assert predicted.shape == (25, 14, 2) and not hasattr(decoder, "A_")
    for train, test in trial_folds(25, 5):
        part = KalmanDecoder(lag_bins=1).fit(features[train], state[train]).predict(features[test])
        np.testing.assert_allclose(predicted[test], part, rtol=1e-12)
    assert decoder.cross_validated_r2(features, state) == pytest.approx(behavior_r2(state[:, 1:], predicted))


def test_behavior_r2_is_decoder_r2s_convention_without_unknown_bins():
    rng = np.random.default_rng(12)
    behavior, predicted = rng.normal(size=(4, 6, 2)) * [1.0, 10.0], rng.normal(size=(4, 6, 2))
    behavior[1, 2, 0] = np.nan
    known = ~np.isnan(behavior).any(2)
    expected = r2_score(behavior[known], predicted[known], multioutput="uniform_average")
    assert behavior_r2(behavior, predicted) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(InputError, match="predicted: shape"):
        behavior_r2(behavior, predicted[:, 1:])


def test_affine_least_squares_and_as_3d():
    rng = np.random.default_rng(13)
    inputs, coef = rng.normal(size=(50, 3)), rng.normal(size=(3, 2))
    fitted, offset = affine_least_squares(inputs, inputs @ coef + [1.0, -2.0])
    np.testing.assert_allclose(fitted, coef, atol=1e-12)
    np.testing.assert_allclose(offset, [1.0, -2.0], atol=1e-12)
    assert as_3d("x", [[[1, 2]]]).dtype == np.float64
    assert np.isnan(as_3d("x", [[[np.nan]]], allow_nan=True)).all()


GOOD = simulate(10, 12, seed=14)


@pytest.mark.parametrize("make, call, message", [
    (OLEDecoder, lambda d: d.fit(GOOD[0], GOOD[1][:9]), r"^behavior: \(trials, time\) \(9, 12\) differ"),
    (KalmanDecoder, lambda d: d.fit(np.where(GOOD[0] > 2, np.nan, GOOD[0]), GOOD[1]), "^features: holds NaN"),
    (lambda: OLEDecoder(lag_bins=12), lambda d: d.fit(*GOOD), "^lag_bins: must be < the 12 time bins"),
    (lambda: KalmanDecoder(lag_bins=12), lambda d: d.fit(*GOOD), "^lag_bins: must be < the 12 time bins"),
    (OLEDecoder, lambda d: d.fit(GOOD[0][0], GOOD[1][0]), r"^features: expected a 3-D array .* shape \(12, 8\)"),
    (OLEDecoder, lambda d: d.fit(GOOD[0], np.inf * GOOD[1]), "^behavior: holds infinite"),
    (OLEDecoder, lambda d: d.fit(GOOD[0], np.nan * GOOD[1]), "^behavior: every bin"),
    (OLEDecoder, lambda d: d.fit(GOOD[0], [["a"]]), "^behavior: cannot be read"),
    (OLEDecoder, lambda d: d.fit(np.zeros((0, 3, 2)), np.zeros((0, 3, 1))), "^features: is empty"),
    (OLEDecoder, lambda d: d.predict(GOOD[0]), "^OLEDecoder: not fitted"),
    (OLEDecoder, lambda d: d.fit(*GOOD).predict(GOOD[0][:, :, :3]), "^features: has 3 dims, but .* fitted on 8"),
    (lambda: OLEDecoder(lag_bins=5), lambda d: d.fit(*GOOD).predict(GOOD[0][:, :5]), "^lag_bins: must be < the 5"),
    (OLEDecoder, lambda d: d.fit(*GOOD).score(GOOD[0], GOOD[1][:, :, :1]), "^behavior: has 1 dims"),
    (lambda: OLEDecoder(folds=20), lambda d: d.cross_validated_r2(*GOOD), "^features: 10 trials, fewer than the 20"),
    (lambda: OLEDecoder(lag_bins=-1), None, r"^lag_bins: must be an integer >= 0, got -1"),
    (lambda: KalmanDecoder(lag_bins=True), None, r"^lag_bins: must be an integer >= 0, got True"),
    (lambda: OLEDecoder(folds=1), None, r"^folds: must be an integer >= 2, got 1"),
    (lambda: KalmanDecoder(q_ridge=-1.0), None, r"^q_ridge: must be a finite number >= 0"),
    (KalmanDecoder, lambda d: d.fit(np.ones_like(GOOD[0]), GOOD[1]), "^features: constant"),
    (KalmanDecoder, lambda d: d.fit(GOOD[0][:, :1], GOOD[1][:, :1]), "^behavior: 0 transitions"),
])
def test_bad_input_is_a_one_line_input_error(make, call, message):
    with pytest.raises(InputError, match=message) as caught:
        call(make())
    assert "\n" not in str(caught.value)


def test_a_series_is_decoded_as_one_trial_fitted_and_scored_on_its_own_bins():
    features, state = (a[0] for a in simulate(1, 600, seed=15, noise_scale=2.0))
    train_bins, valid_bins = np.zeros(600, bool), np.zeros(600, bool)
    train_bins[:400], valid_bins[420:] = True, True
    r2, predicted = series_r2(OLEDecoder(lag_bins=2), features, state, train_bins, valid_bins)
    assert predicted.shape == (600, 2) and np.isnan(predicted[:2]).all() and np.isfinite(predicted[2:]).all()
    coef, offset = affine_least_squares(features[:398], state[2:400])
    np.testing.assert_allclose(predicted[2:], features[:-2] @ coef + offset, rtol=1e-10)
    rows = np.arange(422, 600)
    assert r2 == pytest.approx(r2_score(state[rows], predicted[rows]), rel=1e-12)
    kalman_r2, _ = series_r2(KalmanDecoder(), features, state, train_bins, valid_bins)
    assert kalman_r2 > series_r2(OLEDecoder(), features, state, train_bins, valid_bins)[0]
    features[10] = np.nan
    with pytest.raises(InputError, match="1 bins of the merged series are unknown.*use method 'ridge'"):
        series_r2(KalmanDecoder(), features, state, train_bins, valid_bins)


def test_decode_run_names_its_methods(tmp_path):
    assert METHODS == ("ridge", "ole", "kalman") and LINEAR_DECODERS == {"ole": OLEDecoder, "kalman": KalmanDecoder}
    with pytest.raises(InputError, match="^method: 'lasso' is not one of ridge, ole, kalman$"):
        decode_run(tmp_path, method="lasso")


def test_cli_bad_method_is_a_one_line_error(tmp_path, capsys):
    assert main(["decode", str(tmp_path), "--method", "lasso"]) == 2
    error = capsys.readouterr().err
    assert error == "pyro-lfads: error: --method: 'lasso' is not one of ridge, ole, kalman\n"


@pytest.fixture(scope="module")
def decodable_run(tmp_path_factory):
    """A short fit of the small NLB-shaped set (as tests/test_nlb_evaluation.py's), its posterior, and a data
    file it records."""
    from pyro_lfads.config import LFADSConfig
    from pyro_lfads.data import save_dataset
    from pyro_lfads.fitting.posterior import write_posterior
    from pyro_lfads.fitting.train import fit
    from pyro_lfads.synthetic.lorenz_nlb import make_nlb_lorenz_dataset

    dataset = make_nlb_lorenz_dataset(seed=2, n_conditions=8, trials_per_condition=10, n_heldin=12, n_heldout=4,
                                      n_time=30, n_forward=6)
    root = tmp_path_factory.mktemp("decodable")
    fit(dataset, LFADSConfig(gen_dim=16, fac_dim=4, ic_enc_dim=16, co_dim=0, batch_size=16, kl_ramp_steps=50,
                             max_epochs=15, posterior_samples=4), root / "run", progress=False)
    write_posterior(root / "run", dataset, progress=False)
    save_dataset(dataset, root / "small.h5")
    info = json.loads((root / "run" / "run.json").read_text())
    info["data_source"] = str(root / "small.h5")
    (root / "run" / "run.json").write_text(json.dumps(info))
    return root / "run", dataset


@pytest.mark.slow
def test_cli_decode_with_ole_and_kalman(decodable_run, tmp_path, capsys):
    source, dataset = decodable_run
    run = tmp_path / "run"
    shutil.copytree(source, run)
    capsys.readouterr()
    for method in ("kalman", "ole"):
        assert main(["decode", str(run), "--method", method, "--from", "factors", "--lag-bins", "5"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["method"] == method and printed["from"] == "factors" and "alpha" not in printed
        assert np.isfinite(printed["vel_r2"]) and np.isfinite(printed["cv_r2"])
        with h5py.File(run / "decoding.h5") as h5:
            assert h5.attrs["method"] == method and h5.attrs["vel_r2"] == printed["vel_r2"]
            assert h5["valid_behavior_pred"].shape == (dataset.valid.n_trials, 25, 2)
    assert main(["decode", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "ridge"
    with h5py.File(run / "decoding.h5") as h5:
        assert h5.attrs["method"] == "ridge" and "alpha" in h5.attrs


@pytest.mark.slow
def test_cli_decode_a_continuous_recording_with_kalman_and_ole(tmp_path, capsys):
    from pyro_lfads.data import save_dataset
    from pyro_lfads.data.continuous import continuous_dataset

    rng = np.random.default_rng(16)
    t = np.arange(800)[:, None]
    behavior = np.sin(t / 9.0 + np.arange(2)) + 0.5 * np.cos(t / 23.0 * (1 + np.arange(2)))
    spikes = rng.poisson(np.exp(0.2 + behavior @ rng.normal(0, 0.7, (2, 12))))
    data, run = tmp_path / "windows.h5", tmp_path / "run"
    save_dataset(continuous_dataset(spikes, 40, 10, behavior=behavior, block_windows=2), data)
    (tmp_path / "tiny.yaml").write_text("gen_dim: 16\nfac_dim: 4\nic_enc_dim: 8\nci_enc_dim: 8\ncon_dim: 8\n"
                                        "co_dim: 1\nbatch_size: 8\nkl_ramp_steps: 10\nposterior_samples: 3\n")
    assert main(["fit", str(data), "--out", str(run), "--config", str(tmp_path / "tiny.yaml"), "--max-epochs", "2",
                 "--quiet"]) == 0
    assert main(["posterior", str(run), "--quiet"]) == 0
    capsys.readouterr()
    for method in ("kalman", "ole"):
        assert main(["decode", str(run), "--method", method, "--lag-bins", "1"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["method"] == method and np.isfinite(printed["vel_r2"]) and printed["n_valid_bins"] > 0
        with h5py.File(run / "decoding.h5") as h5:
            assert h5.attrs["method"] == method and h5.attrs["lag_bins"] == 1
            predicted = h5["continuous_behavior_pred"][()]
            assert predicted.shape == (800, 2) and np.isnan(predicted[0]).all() and np.isfinite(predicted[1:]).all()
