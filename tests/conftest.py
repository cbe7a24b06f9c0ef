"""Shared fixtures: tiny configs and data sets that keep the suite fast."""

from __future__ import annotations

import pyro
import pytest
import torch

from pyro_lfads.fitting.batch import Batch
from pyro_lfads.config import LFADSConfig
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture
def tiny_config() -> LFADSConfig:
    return LFADSConfig(gen_dim=16, fac_dim=4, ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2,
                       batch_size=16, kl_ramp_steps=20, max_epochs=3, posterior_samples=4)


@pytest.fixture(scope="session")
def tiny_lorenz():
    """12 conditions x 10 trials, 20 neurons, 40 bins."""
    return make_lorenz_dataset(seed=3, n_conditions=12, trials_per_condition=10, n_neurons=20, n_time=40)


@pytest.fixture
def counts_batch():
    """A factory of small Batches of Poisson counts: counts_batch(n_trials, n_time, n_neurons, n_ext)."""
    def make(n_trials=5, n_time=12, n_neurons=7, n_ext=0, seed=0) -> Batch:
        gen = torch.Generator().manual_seed(seed)
        x = torch.poisson(torch.full((n_trials, n_time, n_neurons), 0.3), generator=gen)
        ext = torch.randn(n_trials, n_time, n_ext, generator=gen) if n_ext else None
        return Batch(x, x, ext, n_time)
    return make


@pytest.fixture(scope="session")
def fitted_tiny_lorenz(tiny_lorenz, tmp_path_factory):
    """(run directory, data set) of a converged fit on tiny_lorenz, with a posterior: about 30 s.

    Without inferred inputs, trained on the true ELBO (KL weight 1, so that the guide is the importance
    proposal the diagnostics tests expect), 200 epochs at most (the plateau rule stops it earlier).
    """
    from pyro_lfads.fitting.posterior import write_posterior
    from pyro_lfads.fitting.train import fit

    run_dir = tmp_path_factory.mktemp("fitted_tiny_lorenz")
    pyro.clear_param_store()
    config = LFADSConfig(gen_dim=32, fac_dim=8, ic_enc_dim=32, co_dim=0, batch_size=16, kl_ic_scale=1.0,
                         kl_ramp_steps=200, max_epochs=200, posterior_samples=10)
    fit(tiny_lorenz, config, run_dir, progress=False)
    write_posterior(run_dir, tiny_lorenz, progress=False)
    return run_dir, tiny_lorenz
