"""Tests for the Gaussian smoothing baseline, the Poisson GLM and the NLB baselines."""

import numpy as np
import pytest

from pyro_lfads.evaluation.baselines import DEFAULT_GLM_ALPHAS, GaussianSmoothing, PoissonGLM, SmoothingBaseline
from pyro_lfads.evaluation.gpfa_baseline import GPFABaseline
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.metrics import co_bps, fp_bps, rate_r2
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


# ------------------------------------------------------------- NLB baselines


def _glm_data(seed, n_rows=20_000):
    """Features (rows, 3) on different scales, their known weights (2, 3) and intercepts (2,), Poisson counts."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_rows, 3)) * np.array([1.0, 3.0, 0.5]) + np.array([0.0, 1.0, 2.0])
    weights = np.array([[0.5, -0.2, 1.0], [-0.3, 0.1, 0.0]])
    intercepts = np.array([-1.5, 0.2])
    counts = rng.poisson(np.exp(features @ weights.T + intercepts)).astype(float)
    return features, weights, intercepts, counts


def test_poisson_glm_recovers_known_weights():
    features, weights, intercepts, counts = _glm_data(0)
    groups = np.repeat(np.arange(200), 100)
    glm = PoissonGLM()
    assert glm.fit(features, counts, groups) is glm
    np.testing.assert_allclose(glm.coef_, weights, atol=0.05)
    np.testing.assert_allclose(glm.intercept_, intercepts, atol=0.05)
    assert all(alpha in DEFAULT_GLM_ALPHAS for alpha in glm.alpha_)
    assert glm.scores_.shape == (2, len(DEFAULT_GLM_ALPHAS))
    np.testing.assert_array_equal(glm.alpha_, np.asarray(DEFAULT_GLM_ALPHAS)[np.argmin(glm.scores_, axis=1)])
    rates = glm.predict(features[:5])
    np.testing.assert_allclose(rates, np.exp(features[:5] @ glm.coef_.T + glm.intercept_))
    assert np.all(rates > 0)


def test_poisson_glm_penalty_follows_held_out_deviance():
    # 400 rows of 40 trials, 20 features: output 0 is pure noise, output 1 depends strongly on feature 0.
    rng = np.random.default_rng(1)
    features = rng.normal(size=(400, 20))
    counts = np.stack([rng.poisson(1.0, size=400), rng.poisson(np.exp(1.5 * features[:, 0]))], axis=1)
    alphas = (1e-4, 1e-2, 1.0, 100.0)
    glm = PoissonGLM(alphas).fit(features, counts, np.repeat(np.arange(40), 10))
    assert glm.alpha_[0] == 100.0
    assert glm.alpha_[1] < 1.0


def test_poisson_glm_silent_output_and_single_alpha():
    features, _, _, counts = _glm_data(2, n_rows=500)
    counts[:, 1] = 0.0
    glm = PoissonGLM(alphas=(1e-3,)).fit(features, counts)
    assert glm.alpha_[0] == 1e-3 and np.isnan(glm.alpha_[1])
    assert np.all(np.isnan(glm.scores_))
    np.testing.assert_allclose(glm.predict(features)[:, 1], 0.5 / 500)
    assert np.all(glm.predict(1e6 * features) > 0)


def test_poisson_glm_bad_inputs():
    features, _, _, counts = _glm_data(3, n_rows=50)
    for args, match in [
        ((features[:, 0], counts), "features: expected a 2-D"),
        ((features, counts[:40]), "counts: has 40 rows"),
        ((features, -counts), "counts: holds negative"),
        ((np.full_like(features, np.nan), counts), "features: holds NaN"),
        ((features, counts, np.zeros(49)), "groups: expected shape"),
        ((features, counts, np.zeros(50)), "at least 2 groups"),
    ]:
        with pytest.raises(InputError, match=match) as info:
            PoissonGLM().fit(*args)
        assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="alphas"):
        PoissonGLM(alphas=(-1.0,)).fit(features, counts)
    with pytest.raises(InputError, match="validation_fraction"):
        PoissonGLM(validation_fraction=1.0).fit(features, counts)
    with pytest.raises(InputError, match="before fit"):
        PoissonGLM().predict(features)
    with pytest.raises(InputError, match="features: has 2 columns"):
        PoissonGLM().fit(features, counts).predict(features[:, :2])


def _nlb_data(seed, n_trials, n_time=50, n_forward=5, n_heldin=20, n_heldout=5):
    """Held-in, held-out and forward counts driven by one slow rotating 2-D latent per trial.

    Returns (heldin (trials, T, 20), heldout (trials, T, 5), forward (trials, T_fwd, 25),
    true rates (trials, T + T_fwd, 25)); the loadings are the same for every seed.
    """
    loadings = np.random.default_rng(100).normal(scale=0.8, size=(2, n_heldin + n_heldout))
    rng = np.random.default_rng(seed)
    t = np.arange(n_time + n_forward)
    phase = 2 * np.pi * t[None, :] / 40 + rng.uniform(0, 2 * np.pi, size=(n_trials, 1))
    latent = np.stack([np.cos(phase), np.sin(phase)], axis=-1)
    rates = np.exp(np.log(0.4) + latent @ loadings)
    counts = rng.poisson(rates).astype(float)
    observed, forward = counts[:, :n_time], counts[:, n_time:]
    return observed[..., :n_heldin], observed[..., n_heldin:], forward, rates


@pytest.mark.slow
def test_smoothing_baseline_predicts_held_out_and_forward_bins():
    train_in, train_out, train_fwd, _ = _nlb_data(0, 150)
    eval_in, eval_out, eval_fwd, _ = _nlb_data(1, 60)
    model = SmoothingBaseline()
    assert model.fit(train_in, train_out, train_fwd) is model
    rates = model.predict(eval_in)
    assert rates.shape == (60, 55, 25)
    assert np.all(rates > 0)
    # layout: held-in neurons then held-out; observed bins then forward bins
    np.testing.assert_allclose(rates[:, :50, :20], model.smoothing_.predict(eval_in))
    flat_features = np.log(model.smoothing_.predict(eval_in)).reshape(-1, 20)
    np.testing.assert_allclose(rates[:, :50, 20:], model.heldout_glm_.predict(flat_features).reshape(60, 50, 5))
    constant = np.broadcast_to(train_out.mean(axis=(0, 1)), eval_out.shape)
    score = co_bps(rates[:, :50, 20:], eval_out)
    assert score > 0.1
    assert score > co_bps(constant, eval_out) + 0.1
    assert fp_bps(rates[:, 50:], eval_fwd) > 0.05


def test_smoothing_baseline_without_held_out_or_forward_data():
    train_in, _, _, _ = _nlb_data(2, 40, n_time=30)
    model = SmoothingBaseline().fit(train_in)
    assert model.heldin_glm_ is None and model.heldout_glm_ is None and model.forward_glm_ is None
    assert model.predict(train_in[:3]).shape == (3, 30, 20)
    assert model.predict(train_in[:3, :10]).shape == (3, 10, 20)  # other trial lengths are fine


def test_nlb_baseline_bad_inputs():
    train_in, train_out, train_fwd, _ = _nlb_data(3, 20, n_time=20)
    cases = [
        ((train_in[0],), "train_heldin: expected a 3-D"),
        ((train_in, train_out[:10]), "train_heldout: \\(trials, time\\)"),
        ((train_in, train_out[:, :10]), "train_heldout: \\(trials, time\\)"),
        ((train_in, np.full_like(train_out, np.nan)), "train_heldout: holds NaN"),
        ((train_in, train_out, train_fwd[..., :20]), "train_forward: expected \\(20, T_fwd, 25\\)"),
        ((train_in, train_out, train_fwd[:5]), "train_forward: expected"),
        ((-train_in, train_out), "train_heldin: holds negative"),
    ]
    for args, match in cases:
        with pytest.raises(InputError, match=match) as info:
            SmoothingBaseline().fit(*args)
        assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="SmoothingBaseline: predict called before fit"):
        SmoothingBaseline().predict(train_in)
    model = SmoothingBaseline().fit(train_in, train_out)
    with pytest.raises(InputError, match="eval_heldin: has 19 neurons"):
        model.predict(train_in[..., :19])


@pytest.mark.slow
def test_gpfa_baseline_predicts_held_out_and_forward_bins():
    pytest.importorskip("pyro_lfads.evaluation.gpfa")
    train_in, train_out, train_fwd, _ = _nlb_data(4, 100, n_time=30)
    eval_in, eval_out, eval_fwd, _ = _nlb_data(5, 40, n_time=30)
    model = GPFABaseline(n_latents=2, max_iter=30).fit(train_in, train_out, train_fwd)
    rates = model.predict(eval_in)
    assert rates.shape == (40, 35, 25)
    assert np.all(rates > 0)
    latents = model.gpfa_.transform(eval_in).reshape(-1, 2)
    for neuron in (0, 7):  # held-in rates: each neuron's GLM on the latents inferred without it
        left_out = model.gpfa_.leave_neuron_out(eval_in, neuron).reshape(-1, 2)
        np.testing.assert_allclose(rates[:, :30, neuron].ravel(), model.heldin_glms_[neuron].predict(left_out)[:, 0])
        changed = eval_in.copy()
        changed[:, :, neuron] = 3 - np.minimum(changed[:, :, neuron], 3)  # its own spikes never reach its rate
        np.testing.assert_allclose(model.predict(changed)[:, :30, neuron], rates[:, :30, neuron])
    assert model.heldout_glm_.predict(latents).shape == (40 * 30, 5)
    assert co_bps(rates[:, :30, 20:], eval_out) > 0.1
    assert fp_bps(rates[:, 30:], eval_fwd) > 0.05
