"""Importance-weighted training (elbo: iwae, Pyro's RenyiELBO) and PSIS-corrected posterior means."""

from __future__ import annotations

import h5py
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import RenyiELBO

from pyro_lfads.blocks.distributions import NoiseDrivenLowRankNormal
from pyro_lfads.config import LFADSConfig
from pyro_lfads.diagnostics.importance import iwae_per_trial, log_importance_weights, psis_weights
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.objective import make_elbo
from pyro_lfads.fitting.posterior import posterior_path, write_posterior
from pyro_lfads.fitting.train import evaluate_elbo, fit
from pyro_lfads.guides.lfads import LFADSGuide
from pyro_lfads.models.lfads import LFADSModel

A = torch.tensor([[1.0, 0.5], [-0.3, 1.2], [0.8, -0.7]])
NOISE = 0.5


def exact_posterior(x: torch.Tensor):
    """(mean (n, 2), covariance (2, 2), log p(x) (n,)) of z ~ N(0, I), x ~ N(A z, NOISE^2 I)."""
    covariance = torch.linalg.inv(torch.eye(2) + A.T @ A / NOISE**2)
    mean = x @ A @ covariance / NOISE**2
    marginal = dist.MultivariateNormal(torch.zeros(3), A @ A.T + NOISE**2 * torch.eye(3))
    return mean, covariance, marginal.log_prob(x)


def linear_gaussian(x: torch.Tensor):
    """The model and a guide that is off the exact posterior (shifted, too wide), each taking no argument."""
    mean, covariance, _ = exact_posterior(x)
    loc, scale = mean + 0.3, 1.4 * covariance.diagonal().sqrt().expand_as(mean)

    def model():
        with pyro.plate("trials", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0], 2]).to_event(1))
            pyro.sample("x", dist.Normal(z @ A.T, NOISE).to_event(1), obs=x)

    def guide():
        with pyro.plate("trials", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide, (loc, scale)


@pytest.fixture
def observations():
    return torch.randn(4, 2) @ A.T + NOISE * torch.randn(4, 3)


def test_the_iwae_bound_of_many_particles_is_the_exact_log_likelihood(observations):
    model, guide, _ = linear_gaussian(observations)
    log_px = exact_posterior(observations)[2].sum().item()
    elbo = -RenyiELBO(alpha=0.0, num_particles=1, vectorize_particles=True, max_plate_nesting=1).loss(model, guide)
    iwae = -RenyiELBO(alpha=0.0, num_particles=20000, vectorize_particles=True, max_plate_nesting=1).loss(model, guide)
    assert iwae == pytest.approx(log_px, abs=0.05)
    assert elbo < log_px - 0.5  # the guide is off: one particle's bound is loose


def test_psis_means_move_toward_the_exact_posterior_mean(observations):
    mean, _, _ = exact_posterior(observations)
    _, _, (loc, scale) = linear_gaussian(observations)
    q = dist.Normal(loc, scale).to_event(1)
    z = q.sample((2000,))  # (S, n, 2)
    log_w = (dist.Normal(0.0, 1.0).expand([2]).to_event(1).log_prob(z)
             + dist.Normal(z @ A.T, NOISE).to_event(1).log_prob(observations) - q.log_prob(z))
    weights, khat, weighted = psis_weights(log_w.T.numpy())
    assert weighted.all() and (khat < 0.7).all()
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    plain_error = (z.mean(0) - mean).norm().item()
    psis_error = (torch.einsum("ns,snd->nd", torch.as_tensor(weights, dtype=torch.float32), z) - mean).norm().item()
    assert psis_error < 0.3 * plain_error


def test_psis_weights_are_equal_where_k_hat_is_too_large():
    log_w = np.random.default_rng(0).normal(0.0, 0.1, (2, 100))
    log_w[1, 0] = 200.0  # one draw carries all the weight: k-hat far above 0.7
    weights, khat, weighted = psis_weights(log_w)
    assert weighted.tolist() == [True, False] and khat[1] > 0.7
    np.testing.assert_allclose(weights[1], 0.01)


def test_renyi_elbo_runs_through_model_guide_and_inferred_inputs(counts_batch):
    """The vectorised particles are a plate left of the trials: through g0, the controller, PathNormal's u and
    the likelihood. Its IWAE estimate agrees with the diagnostics' IWAE of the same K on repeated rows."""
    config = LFADSConfig(gen_dim=8, fac_dim=3, ic_enc_dim=6, ci_enc_dim=6, con_dim=6, co_dim=2,
                         elbo="iwae", iwae_particles=4, kl_ic_scale=1.0, kl_co_scale=1.0)  # the diagnostics' weights
    model = LFADSModel(config, 7)
    guide = LFADSGuide(model, 7)
    model.eval(), guide.eval()
    batch = counts_batch(n_trials=6)
    elbo = make_elbo(config)
    assert isinstance(elbo, RenyiELBO) and elbo.num_particles == 4
    with torch.no_grad():
        renyi = np.mean([-elbo.loss(model, guide, batch) for _ in range(300)]) / batch.n_trials
    split = _as_split(batch)
    log_w = log_importance_weights(model, guide, split, samples=4 * 300)
    ours = iwae_per_trial(log_w.reshape(6, 300, 4)).mean()  # 300 independent IWAE_4 per trial
    assert renyi == pytest.approx(ours, abs=0.5)


def test_a_fit_with_elbo_iwae_learns(tiny_lorenz, tmp_path, tiny_config):
    config = tiny_config.replace(elbo="iwae", iwae_particles=3, max_epochs=6)
    fit(tiny_lorenz, config, tmp_path / "run", progress=False)
    curve = [line for line in (tmp_path / "run" / "training_curve.jsonl").read_text().splitlines()]
    losses = [float(line.split('"train_recon": ')[1].split(",")[0]) for line in curve]
    assert len(losses) == 6 and np.isfinite(losses).all() and losses[-1] < losses[0]


def test_psis_posterior_records_its_choice_per_trial(fitted_tiny_lorenz, tmp_path):
    run_dir, dataset = fitted_tiny_lorenz
    write_posterior(run_dir, dataset, means="psis", progress=False)
    with h5py.File(posterior_path(run_dir), "r") as h5:
        assert h5.attrs["means"] == "psis"
        weighted, khat = h5["valid_importance_weighted"][()], h5["valid_khat"][()]
        psis_rates = h5["valid_output_params"][()]
    assert weighted.shape == khat.shape == (dataset.valid.n_trials,)
    np.testing.assert_array_equal(weighted.astype(bool), khat < 0.7)
    write_posterior(run_dir, dataset, progress=False)
    with h5py.File(posterior_path(run_dir), "r") as h5:
        assert h5.attrs["means"] == "average" and "valid_khat" not in h5
        plain_rates = h5["valid_output_params"][()]
    plain = ~weighted.astype(bool)
    np.testing.assert_allclose(psis_rates[plain], plain_rates[plain], rtol=1e-5)  # the same seeded draws
    if weighted.any():
        assert not np.allclose(psis_rates[~plain], plain_rates[~plain])
    with pytest.raises(InputError, match="means"):
        write_posterior(run_dir, dataset, means="mode", progress=False)


def _as_split(batch):
    """A Split of a Batch's trials."""
    from pyro_lfads.data import Split

    x = batch.recon_data.numpy()
    return Split(encod_data=x, recon_data=x)


def test_the_noise_driven_low_rank_normal_draws_its_own_covariance():
    loc, factor, diag = torch.tensor([1.0, -1.0, 0.5]), torch.tensor([[1.0], [0.5], [-2.0]]), torch.tensor([0.2, 0.3, 0.1])
    noise = torch.randn(20000, 4, generator=torch.Generator().manual_seed(0))
    q = NoiseDrivenLowRankNormal(loc.expand(20000, 3), factor.expand(20000, 3, 1), diag.expand(20000, 3), noise)
    draws = q.rsample()
    np.testing.assert_allclose(draws.mean(0), loc, atol=0.05)
    np.testing.assert_allclose(torch.cov(draws.T), factor @ factor.T + torch.diag(diag), atol=0.08)
    exact = dist.LowRankMultivariateNormal(loc, factor, diag)
    np.testing.assert_allclose(q.log_prob(draws), exact.log_prob(draws), rtol=1e-5)
    assert q.expand((2, 20000)).rsample().shape == (2, 20000, 3)


def test_a_low_rank_q_g0_fits_and_averages(tiny_lorenz, tmp_path, tiny_config):
    config = tiny_config.replace(ic_posterior_rank=2, elbo="iwae", iwae_particles=2, max_epochs=2)
    fit(tiny_lorenz, config, tmp_path / "run", progress=False)
    write_posterior(tmp_path / "run", tiny_lorenz, means="psis", progress=False)
    with h5py.File(posterior_path(tmp_path / "run"), "r") as h5:
        ic_std, rates = h5["valid_ic_std"][()], h5["valid_output_params"][()]
    assert ic_std.shape == (tiny_lorenz.valid.n_trials, config.gen_dim) and np.isfinite(rates).all()


def test_with_elbo_iwae_the_validation_objective_is_the_iwae_bound(tiny_lorenz):
    config = LFADSConfig(gen_dim=8, fac_dim=3, ic_enc_dim=6, co_dim=0, elbo="iwae", iwae_particles=50)
    model = LFADSModel(config, tiny_lorenz.train.n_neurons)
    guide = LFADSGuide(model, tiny_lorenz.train.n_neurons)
    iwae = evaluate_elbo(model, guide, tiny_lorenz.valid, config, "cpu")
    plain = evaluate_elbo(model, guide, tiny_lorenz.valid, config.replace(elbo="trace"), "cpu")
    assert iwae["loss"] < plain["loss"] - 1.0  # -IWAE_50 is well below the -ELBO of an untrained guide
    assert iwae["loss"] < iwae["recon"] + iwae["kl"]
