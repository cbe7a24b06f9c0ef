"""Coordinated dropout, sample validation and per-entry likelihood weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from pyro_lfads.fitting.batch import Batch, split_batch
from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.blocks.distributions import WeightedElements
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.masking import (TrainingSplits, check_heldin_layout, coordinated_dropout, hide_for_validation,
                                sample_validation_mask)
from pyro_lfads.fitting.run import CURVE_FILE
from pyro_lfads.fitting.train import fit


def _batch(n_trials=64, t_enc=6, n_enc=5, t_all=8, n_all=7, seed=0) -> Batch:
    """Held-in corner (t_enc, n_enc) of a (t_all, n_all) target, counts >= 1 so zeros mark dropped entries."""
    gen = torch.Generator().manual_seed(seed)
    recon = 1.0 + torch.poisson(torch.full((n_trials, t_all, n_all), 2.0), generator=gen)
    return Batch(recon[:, :t_enc, :n_enc].clone(), recon, None, t_all)


def test_weighted_elements_scales_each_entry_and_zero_weight_ignores_it():
    rates = torch.tensor([[0.5, 2.0], [1.0, 3.0]])
    x = torch.tensor([[1.0, 0.0], [2.0, 4.0]])
    weight = torch.tensor([[0.0, 1.0], [2.5, 1.0]])
    log_p = WeightedElements(torch.distributions.Poisson(rates), weight).log_prob(x)
    expected = weight.numpy() * stats.poisson.logpmf(x.numpy(), rates.numpy())
    np.testing.assert_allclose(log_p.numpy(), expected, rtol=1e-5)


def test_coordinated_dropout_scores_exactly_the_dropped_heldin_entries():
    batch = _batch()
    rate = 0.3
    dropped_batch = coordinated_dropout(batch, rate, torch.Generator().manual_seed(1))
    dropped = dropped_batch.encod_data == 0  # every count is >= 1, so 0 means dropped
    weight = dropped_batch.recon_weight
    # kept encoder entries are scaled by 1 / (1 - rate); dropped ones are 0
    np.testing.assert_allclose(dropped_batch.encod_data[~dropped].numpy(),
                               batch.encod_data[~dropped].numpy() / (1 - rate), rtol=1e-6)
    heldin_weight = weight[:, :6, :5]
    assert torch.equal(heldin_weight[dropped], torch.full_like(heldin_weight[dropped], 1 / rate))
    assert torch.all(heldin_weight[~dropped] == 0)
    assert torch.all(weight[:, :, 5:] == 1) and torch.all(weight[:, 6:, :] == 1)  # held-out neurons, forward bins
    assert abs(dropped.float().mean().item() - rate) < 0.03
    # the weights make the expected held-in log-likelihood that of all entries
    assert abs(heldin_weight.mean().item() - 1.0) < 0.1


def test_coordinated_dropout_multiplies_existing_weights_and_is_seeded():
    batch = _batch().replace(recon_weight=torch.full((64, 8, 7), 0.5))
    first = coordinated_dropout(batch, 0.5, torch.Generator().manual_seed(3))
    second = coordinated_dropout(batch, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(first.encod_data, second.encod_data)
    assert torch.all(first.recon_weight[:, :, 5:] == 0.5)
    assert set(first.recon_weight[:, :6, :5].unique().tolist()) == {0.0, 1.0}


def test_sample_validation_views_hide_the_same_entries_and_split_the_scoring():
    recon = np.random.default_rng(0).poisson(2.0, size=(10, 8, 7)).astype(np.float32) + 1
    split = Split(recon[:, :6, :5].copy(), recon)
    held = sample_validation_mask(split, 0.2, seed=4)
    assert held.shape == (10, 6, 5) and abs(held.mean() - 0.2) < 0.07
    assert np.array_equal(held, sample_validation_mask(split, 0.2, seed=4))
    training, validation = hide_for_validation(split, held, 0.2)
    assert np.all(training.encod_data[held] == 0) and np.array_equal(training.encod_data, validation.encod_data)
    np.testing.assert_allclose(training.encod_data[~held], split.encod_data[~held] / 0.8, rtol=1e-6)
    assert np.array_equal(training.recon_mask[:, :6, :5], ~held)
    assert np.array_equal(validation.recon_mask[:, :6, :5], held)
    assert training.recon_mask[:, 6:].all() and training.recon_mask[:, :, 5:].all()
    assert not validation.recon_mask[:, 6:].any() and not validation.recon_mask[:, :, 5:].any()
    weight = split_batch(training, slice(0, 3)).recon_weight
    assert weight.dtype == torch.float32 and torch.equal(weight.bool(), torch.as_tensor(training.recon_mask[:3]))


def test_masks_need_the_heldin_corner_layout(tiny_lorenz, tiny_config, tmp_path):
    def shuffled(split):
        return Split(split.recon_data[:, :, ::-1].copy(), split.recon_data)

    dataset = LFADSDataset(shuffled(tiny_lorenz.train), shuffled(tiny_lorenz.valid), source="x.h5")
    with pytest.raises(InputError, match="x.h5: train_encod_data: is not train_recon_data"):
        check_heldin_layout(dataset)
    with pytest.raises(InputError, match="cd_rate: 0"):
        fit(dataset, tiny_config.replace(cd_rate=0.3), tmp_path, progress=False)
    fit(dataset, tiny_config.replace(cd_rate=0.0, max_epochs=1), tmp_path, progress=False)  # without masks it runs


def test_default_dropout_rate_follows_the_controller(tiny_config):
    assert tiny_config.co_dim > 0 and tiny_config.coordinated_dropout_rate == 0.3
    assert tiny_config.replace(co_dim=0).coordinated_dropout_rate == 0.0
    assert tiny_config.replace(co_dim=0, cd_rate=0.2).coordinated_dropout_rate == 0.2
    with pytest.raises(InputError, match="cd_rate"):
        tiny_config.replace(cd_rate=1.0).validate()


@pytest.mark.slow
def test_sample_validation_picks_the_checkpoint_and_is_recorded(tiny_lorenz, tiny_config, tmp_path):
    run = fit(tiny_lorenz, tiny_config.replace(sv_rate=0.1, max_epochs=3), tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / CURVE_FILE).read_text().splitlines()]
    scores = [r["valid_sv_recon"] for r in records]
    assert all(np.isfinite(scores)) and all(s > 0 for s in scores)
    assert run.training.best_valid == min(scores)
    assert run.training.best_epoch == 1 + int(np.argmin(scores))
    splits = TrainingSplits(tiny_lorenz, run.config)
    assert splits.n_held == int(round(splits.valid_held.recon_mask.sum()))
