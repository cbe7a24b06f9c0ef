"""The behaviour model (models/behavior.py): LFADS with a behaviour site read from the relevant factors."""

from __future__ import annotations

import h5py
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import load_dataset, save_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.table import evaluate_run
from pyro_lfads.fitting.batch import Batch
from pyro_lfads.fitting.objective import guide_and_model_traces
from pyro_lfads.fitting.new_data import write_posterior_of
from pyro_lfads.fitting.posterior import read_posterior, write_posterior
from pyro_lfads.fitting.run import RunInfo, build_model_and_guide
from pyro_lfads.fitting.train import fit
from pyro_lfads.models.behavior import BehaviorModel
from pyro_lfads.synthetic.behavior_lorenz import make_behavior_lorenz_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

CONFIG = LFADSConfig(gen_dim=16, fac_dim=6, ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=1, batch_size=16,
                     max_epochs=3, posterior_samples=4, model="behavior", behavior_factors=2, behavior_weight=3.0)


def small_data():
    return make_behavior_lorenz_dataset(seed=2, n_conditions=8, trials_per_condition=6, n_time=20, n_neurons=10)


def batch_of(dataset, behavior=True) -> Batch:
    spikes = torch.as_tensor(dataset.train.recon_data[:5])
    y = torch.as_tensor(dataset.extras["train_behavior"][:5]) if behavior else None
    return Batch(spikes, spikes, None, spikes.shape[1], behavior=y)


@pytest.fixture
def model_and_guide():
    dataset = small_data()
    model, guide = build_model_and_guide(CONFIG, RunInfo.describe(dataset, CONFIG))
    return model, guide, dataset


def test_the_behaviour_site_scores_the_relevant_factors_read_out_with_its_weight(model_and_guide):
    model, guide, dataset = model_and_guide
    assert isinstance(model, BehaviorModel)
    batch = batch_of(dataset)
    model_trace, guide_trace = guide_and_model_traces(model, guide, batch)
    site = model_trace.nodes["behavior"]
    assert site["is_observed"] and site["scale"] == 3.0 and "behavior" not in guide_trace.nodes
    factors = model_trace.nodes["factors"]["value"]
    mean = factors[..., :2] @ model.behavior_readout.weight.T + model.behavior_readout.bias
    torch.testing.assert_close(model_trace.nodes["behavior_mean"]["value"], mean)
    expected = dist.Normal(mean, model.behavior_log_std.exp()).log_prob(batch.behavior).sum((-1, -2))
    torch.testing.assert_close(site["unscaled_log_prob"], expected)
    changed = factors.clone()
    changed[..., 2:] += 5.0  # the other factors explain the spikes only
    torch.testing.assert_close(model.decode_behavior(changed), mean)


def test_the_guide_never_reads_behaviour(model_and_guide):
    model, guide, dataset = model_and_guide
    draws = []
    for behavior in (True, False):
        pyro.set_rng_seed(5)
        _, guide_trace = guide_and_model_traces(model, guide, batch_of(dataset, behavior))
        draws.append((guide_trace.nodes["g0"]["value"], guide_trace.nodes["u"]["value"]))
    for with_behavior, without in zip(*draws):
        torch.testing.assert_close(with_behavior, without)


def test_without_behaviour_the_model_skips_the_site_and_still_decodes(model_and_guide):
    model, guide, dataset = model_and_guide
    model_trace, _ = guide_and_model_traces(model, guide, batch_of(dataset, behavior=False))
    assert "behavior" not in model_trace.nodes
    assert model_trace.nodes["behavior_mean"]["value"].shape == (5, 20, 2)


def test_the_config_refuses_impossible_behaviour_settings():
    with pytest.raises(InputError, match="model: 'tndm' is not one of lfads, behavior"):
        LFADSConfig(model="tndm")
    with pytest.raises(InputError, match=r"behavior_factors: must be an integer from 1 to fac_dim \(6\), got 7"):
        CONFIG.replace(behavior_factors=7)
    with pytest.raises(InputError, match="behavior_weight: must be a number > 0"):
        CONFIG.replace(behavior_weight=0.0)
    LFADSConfig(fac_dim=2)  # plain LFADS ignores behavior_factors


def test_a_behaviour_fit_writes_its_decoded_behaviour_and_evaluate_scores_it(tmp_path):
    save_dataset(small_data(), tmp_path / "data.h5")
    dataset = load_dataset(tmp_path / "data.h5")
    fit(dataset, CONFIG, tmp_path / "run", progress=False)
    write_posterior(tmp_path / "run", progress=False)
    for split in ("train", "valid"):
        posterior = read_posterior(tmp_path / "run", split)
        assert posterior["behavior_pred"].shape == (getattr(dataset, split).n_trials, 20, 2)
        assert np.all(posterior["behavior_pred_std"] >= 0)
    result = evaluate_run(tmp_path / "run", baselines=())
    truth = dataset.extras["valid_behavior"]
    predicted = read_posterior(tmp_path / "run", "valid")["behavior_pred"]
    residual = ((truth - predicted) ** 2).sum((0, 1)) / ((truth - truth.mean((0, 1))) ** 2).sum((0, 1))
    assert result["lfads"]["behavior_r2"] == pytest.approx(float(np.mean(1 - residual)), rel=1e-5)
    assert "vel_r2" in result["lfads"]  # the ridge decoder of its rates, as for any run
    new = make_lorenz_dataset(seed=9, n_conditions=3, trials_per_condition=4, n_neurons=10, n_time=20, bin_ms=20.0)
    assert not any("behavior" in key for key in new.extras)  # new trials without behaviour: decoded from spikes
    write_posterior_of(tmp_path / "run", new, tmp_path / "new.h5", progress=False)
    with h5py.File(tmp_path / "new.h5") as h5:
        assert h5["valid_behavior_pred"].shape == (new.valid.n_trials, 20, 2)


def test_a_behaviour_model_needs_behaviour_to_fit(tiny_lorenz, tmp_path):
    with pytest.raises(InputError, match="train_behavior: missing; model: behavior needs the behaviour"):
        fit(tiny_lorenz, CONFIG, tmp_path / "run", progress=False)
    broken = small_data()
    broken.extras["valid_behavior"][0, 3, 1] = np.nan
    with pytest.raises(InputError, match="valid_behavior: holds NaN"):
        fit(broken, CONFIG, tmp_path / "run2", progress=False)


def test_the_two_systems_of_the_synthetic_data_are_independent_and_each_drives_its_neurons():
    dataset = make_behavior_lorenz_dataset(seed=0, n_conditions=30, trials_per_condition=4, n_time=40,
                                           n_neurons=12, noise_std=0.0)
    a, b = dataset.extras["train_latents"], dataset.extras["train_irrelevant_latents"]
    behavior = dataset.extras["train_behavior"]
    flat_a, flat_b = a.reshape(-1, 3), b.reshape(-1, 3)
    coef, *_ = np.linalg.lstsq(np.c_[flat_a, np.ones(len(flat_a))], behavior.reshape(-1, 2), rcond=None)
    np.testing.assert_allclose(np.c_[flat_a, np.ones(len(flat_a))] @ coef, behavior.reshape(-1, 2), atol=1e-4)
    assert np.abs(np.corrcoef(flat_a.T, flat_b.T)[:3, 3:]).max() < 0.3
    log_truth = np.log(dataset.train.truth).reshape(-1, 12)
    for latents, neurons, other in ((flat_a, slice(0, 6), flat_b), (flat_b, slice(6, 12), flat_a)):
        design = np.c_[latents, np.ones(len(latents))]
        fitted = design @ np.linalg.lstsq(design, log_truth[:, neurons], rcond=None)[0]
        np.testing.assert_allclose(fitted, log_truth[:, neurons], atol=1e-4)
        wrong = np.c_[other, np.ones(len(other))]
        assert np.abs(wrong @ np.linalg.lstsq(wrong, log_truth[:, neurons], rcond=None)[0]
                      - log_truth[:, neurons]).max() > 0.1
    with pytest.raises(InputError, match="n_relevant_neurons: must be below n_neurons"):
        make_behavior_lorenz_dataset(n_neurons=4, n_relevant_neurons=4)
