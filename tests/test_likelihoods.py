"""Observation models: log densities against scipy, support checks, and each one end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal, stats

from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split, validate_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.table import evaluate_run
import pyro_lfads.config
import pyro_lfads.models.likelihoods as likelihoods
from pyro_lfads.models.likelihoods import LIKELIHOODS, data_support, make_likelihood, register_likelihood
from pyro_lfads.fitting.posterior import read_posterior, write_posterior
from pyro_lfads.synthetic.calcium import make_calcium_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset
from pyro_lfads.fitting.train import fit

B, T, F, N = 3, 9, 4, 5


def observation(name, seed=0, **config):
    torch.manual_seed(seed)
    likelihood = make_likelihood(LFADSConfig(fac_dim=F, likelihood=name, **config), N)
    with torch.no_grad():  # spread the parameters away from their initial values
        for param in likelihood.parameters():
            param.add_(0.3 * torch.randn_like(param))
    factors = torch.randn(B, T, F)
    return likelihood, likelihood(factors)


def test_poisson_matches_scipy():
    _, obs = observation("poisson")
    x = torch.poisson(obs.rates.detach())
    expected = stats.poisson.logpmf(x.numpy(), obs.rates.detach().numpy())
    np.testing.assert_allclose(obs.distribution.log_prob(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_gaussian_matches_scipy():
    lik, obs = observation("gaussian")
    x = torch.randn(B, T, N)
    sd = (0.5 * lik.log_var).exp().detach().numpy()
    expected = stats.norm.logpdf(x.numpy(), obs.mean.detach().numpy(), sd)
    np.testing.assert_allclose(obs.distribution.log_prob(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_negative_binomial_matches_scipy_and_its_mean_is_the_rate():
    lik, obs = observation("negbinom")
    k = lik.log_dispersion.exp().detach().numpy()
    mu = obs.rates.detach().numpy()
    x = torch.as_tensor(np.random.default_rng(0).poisson(3 * mu).astype("float32"))
    expected = stats.nbinom.logpmf(x.numpy(), k, k / (k + mu))
    np.testing.assert_allclose(obs.distribution.log_prob(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    draws = obs.distribution.sample((4000,))
    np.testing.assert_allclose(draws.mean(0).numpy(), mu, rtol=0.15, atol=0.05)


def test_gamma_matches_scipy():
    lik, obs = observation("gamma")
    shape = lik.log_shape.exp().detach().numpy()
    mean = obs.mean.detach().numpy()
    x = torch.rand(B, T, N) * 3 + 0.01
    expected = stats.gamma.logpdf(x.numpy(), shape, scale=mean / shape)
    np.testing.assert_allclose(obs.distribution.log_prob(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_zero_inflated_gamma_matches_scipy_and_zeros_give_no_nan():
    lik, _ = observation("zig")
    data = torch.where(torch.rand(20, T, N) < 0.6, torch.zeros(20, T, N), 0.2 + torch.rand(20, T, N))
    lik.init_from_data(data)
    factors = torch.randn(B, T, F, requires_grad=True)
    obs = lik(factors)
    x = data[:B]
    q = torch.sigmoid(lik.gate(factors)).detach().numpy()
    shape = lik.log_shape.exp().detach().numpy()
    mean = lik.readout(factors).exp().detach().numpy()
    s_min = lik.s_min.numpy()
    xn = x.numpy()
    continuous = np.log(q) + stats.gamma.logpdf(np.maximum(xn - s_min, 1e-6), shape, scale=mean / shape)
    expected = np.where(xn == 0, np.log1p(-q), continuous)
    log_prob = obs.distribution.log_prob(x)
    np.testing.assert_allclose(log_prob.detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    log_prob.sum().backward()
    assert torch.isfinite(factors.grad).all()
    assert torch.isfinite(lik.log_shape.grad).all() and torch.isfinite(lik.gate.weight.grad).all()
    np.testing.assert_allclose(obs.rates.detach().numpy(), q * (s_min + mean), rtol=1e-5)


def test_calcium_matches_an_independent_filter():
    lik, obs = observation("calcium", calcium_tau_init=6.0)
    rates = obs.rates.detach().numpy()
    decay = lik.decay().detach().numpy()
    c = np.empty_like(rates)
    for b in range(B):
        for n in range(N):
            zi = [decay[n] * rates[b, 0, n] / (1 - decay[n])]
            c[b, :, n] = signal.lfilter([1.0], [1.0, -decay[n]], rates[b, :, n], zi=zi)[0]
    fluorescence = lik.baseline.detach().numpy() + lik.log_gain.exp().detach().numpy() * c
    np.testing.assert_allclose(obs.mean.detach().numpy(), fluorescence, rtol=1e-4, atol=1e-5)
    x = torch.randn(B, T, N)
    sd = (0.5 * lik.log_var).exp().detach().numpy()
    expected = stats.norm.logpdf(x.numpy(), fluorescence, sd)
    np.testing.assert_allclose(obs.distribution.log_prob(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_the_config_knows_the_registry_names():
    assert pyro_lfads.config.LIKELIHOOD_NAMES == list(LIKELIHOODS)


@pytest.mark.parametrize("name,support", [("poisson", "counts"), ("negbinom", "counts"), ("gaussian", "real"),
                                          ("gamma", "positive"), ("zig", "nonnegative"), ("calcium", "real")])
def test_each_model_states_what_data_it_accepts(name, support):
    assert data_support(name) == LIKELIHOODS[name].support == support


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_each_model_states_its_link_truly(name):
    likelihood, _ = observation(name)
    factors = torch.randn(B, T, F)
    rates, linear = likelihood(factors).rates, likelihood.readout(factors)
    expected = {"log": linear.exp(), "identity": linear}.get(likelihood.link)
    if expected is None:  # the zero-inflated gamma: rates are neither, so callers must ask the model
        assert name == "zig" and not torch.allclose(rates, linear.exp()) and not torch.allclose(rates, linear)
    else:
        torch.testing.assert_close(rates, expected)


def test_a_registered_model_must_state_support_and_link(monkeypatch):
    names = list(pyro_lfads.config.LIKELIHOOD_NAMES)
    monkeypatch.setattr(pyro_lfads.config, "LIKELIHOOD_NAMES", names)
    monkeypatch.setattr(likelihoods, "LIKELIHOOD_NAMES", names)
    monkeypatch.setattr(likelihoods, "LIKELIHOODS", dict(LIKELIHOODS))

    class NoLink(torch.nn.Module):
        support = "real"

        def init_from_data(self, data): ...

        def forward(self, factors): ...

    with pytest.raises(TypeError, match="'link'"):
        register_likelihood("nolink", NoLink)
    NoLink.link = "softplus"
    with pytest.raises(TypeError, match="link: 'softplus'"):
        register_likelihood("nolink", NoLink)
    NoLink.link = "identity"
    register_likelihood("nolink", NoLink)
    assert data_support("nolink") == "real" and names[-1] == "nolink"
    assert LFADSConfig(likelihood="nolink").likelihood == "nolink"  # the config accepts the new name


NOISE_MODULE = """
import pyro.distributions as dist
from pyro_lfads.models.likelihoods import GaussianLikelihood, Observation


class LaplaceNoise(GaussianLikelihood):
    def forward(self, factors):
        mean = self.readout(factors)
        return Observation(dist.Laplace(mean, (0.5 * self.log_var).exp()), mean, mean)
"""


def test_a_class_named_where_it_lives_is_imported_and_registered_on_first_use(tmp_path, monkeypatch):
    names = list(pyro_lfads.config.LIKELIHOOD_NAMES)
    monkeypatch.setattr(pyro_lfads.config, "LIKELIHOOD_NAMES", names)
    monkeypatch.setattr(likelihoods, "LIKELIHOOD_NAMES", names)
    monkeypatch.setattr(likelihoods, "LIKELIHOODS", dict(LIKELIHOODS))
    (tmp_path / "lab_noise_models.py").write_text(NOISE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "lab_noise_models:LaplaceNoise"
    (tmp_path / "config.yaml").write_text(f"likelihood: {spec}\nfac_dim: {F}\n")
    config = LFADSConfig.from_yaml(tmp_path / "config.yaml")  # as a new process reads a run's config
    assert config.likelihood == spec and spec not in names  # checked, not yet registered
    assert data_support(spec) == "real" and names[-1] == spec
    model = make_likelihood(config, N)
    assert type(model).__name__ == "LaplaceNoise" and type(model) is likelihoods.LIKELIHOODS[spec]
    x = torch.randn(B, T, N)
    obs = model(torch.randn(B, T, F))
    laplace = torch.distributions.Laplace(obs.mean, (0.5 * model.log_var).exp())
    torch.testing.assert_close(obs.distribution.log_prob(x), laplace.log_prob(x))
    (tmp_path / "config.yaml").write_text("likelihood: lab_noise_models:Gone\n")
    with pytest.raises(InputError, match=r"config\.yaml: likelihood: module 'lab_noise_models' \(.*\) has no "
                                         r"class 'Gone'$"):
        LFADSConfig.from_yaml(tmp_path / "config.yaml")


@pytest.mark.parametrize("name,values,problem", [
    ("poisson", lambda x: x - 1, "negative"),
    ("negbinom", lambda x: x + 0.25, "whole numbers"),
    ("gamma", lambda x: x * 0, "values are 0"),
    ("zig", lambda x: x - 5, "negative"),
    ("gaussian", lambda x: np.where(x > 0, np.inf, x), "not finite"),
    ("calcium", lambda x: np.where(x > 0, np.nan, x), "not finite"),
])
def test_support_violations_are_refused_in_one_line(name, values, problem, tmp_path):
    counts = np.random.default_rng(0).poisson(1.0, size=(6, 10, 4)).astype("float32")
    bad = values(counts).astype("float32")
    dataset = LFADSDataset(Split(bad, bad), Split(counts, counts))  # unvalidated on purpose
    with pytest.raises(InputError, match=problem) as info:
        validate_dataset(dataset, support=data_support(name))
    assert "\n" not in str(info.value) and "train_encod_data" in str(info.value)
    with pytest.raises(InputError, match=problem):
        fit(dataset, LFADSConfig(likelihood=name, max_epochs=1), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def tiny(likelihood):
    if likelihood == "calcium":
        return make_calcium_dataset(seed=1, n_conditions=6, trials_per_condition=5, n_neurons=8, n_frames=20)
    return make_lorenz_dataset(seed=1, n_conditions=6, trials_per_condition=5, n_neurons=8, n_time=20,
                               likelihood=likelihood)


def heldout_and_forward(dataset):
    """The encoders read 5 of 8 neurons and 15 of 20 bins; the model reconstructs all of them."""
    def narrow(split):
        return Split(np.ascontiguousarray(split.recon_data[:, :15, :5]), split.recon_data, truth=split.truth)
    return LFADSDataset(narrow(dataset.train), narrow(dataset.valid), dataset.conversion_factor,
                        extras=dataset.extras)


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
@pytest.mark.slow
def test_every_likelihood_fits_samples_and_evaluates_with_heldout_neurons_and_forward_bins(likelihood, tmp_path):
    dataset = heldout_and_forward(tiny(likelihood))
    config = LFADSConfig(likelihood=likelihood, gen_dim=8, fac_dim=3, ic_enc_dim=8, ci_enc_dim=4, con_dim=4,
                         co_dim=1, batch_size=8, max_epochs=2, kl_ramp_steps=4, posterior_samples=3)
    assert config.coordinated_dropout_rate > 0  # coordinated dropout on, as by default with a controller
    fit(dataset, config, tmp_path, progress=False)
    write_posterior(tmp_path, dataset, progress=False)
    posterior = read_posterior(tmp_path, "valid")
    assert posterior["output_params"].shape == dataset.valid.recon_data.shape  # 8 neurons, 20 bins
    assert np.isfinite(posterior["output_params"]).all()
    assert ("obs_mean" in posterior) == (likelihood == "calcium")
    result = evaluate_run(tmp_path, dataset, baselines=("smoothing",))
    lfads = result["lfads"]
    assert lfads["likelihood"] == likelihood
    assert np.isfinite(lfads["rate_r2"]) and np.isfinite(lfads["elbo_per_trial"])
    counts = likelihood in ("poisson", "negbinom")
    assert ("bits_per_spike" in lfads) == counts and ("smoothing" in result) == counts
    if counts:
        assert np.isfinite([lfads["co_bps"], lfads["fp_bps"], result["smoothing"]["co_bps"]]).all()
