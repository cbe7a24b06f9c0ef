"""Masks that keep LFADS from copying its input to its output.

An autoencoder with inferred inputs can lower its reconstruction cost by
passing each spike from the encoder, through the controller, straight to the
rate of the same bin and neuron: the "identity" overfit. Two masks stop it:

- **Coordinated dropout** (Keshtkaran & Pandarinath 2019): at every training
  step a random fraction ``rate`` of the encoder's input entries is zeroed
  (the others are scaled by 1 / (1 - rate)), and the likelihood scores, in
  the held-in region, only the entries that were zeroed, each weighted by
  1 / rate so that, averaged over masks, the reconstruction term keeps its
  full size against the KL. No entry the encoder saw can then lower the
  loss by being copied through. Held-out neurons and forward-prediction bins
  are never encoder input and are always scored with weight 1.
- **Sample validation**: a fixed random fraction of every trial's held-in
  entries is hidden from the encoder (zeroed, the rest scaled) and never
  scored in training. The reconstruction cost of those entries on the
  validation trials is a validation metric that overfitting cannot fool.

Both rely on the LFADS / NLB layout: the encoder reads ``encod_data`` (B,
T_enc, N_enc), which is ``recon_data[:, :T_enc, :N_enc]`` (held-in neurons
first, observed bins first); :func:`check_heldin_layout` verifies it.
"""

from __future__ import annotations

import numpy as np
import torch

from pyro_lfads.fitting.batch import Batch
from pyro_lfads.fitting.behavior_data import behavior_dims, with_behavior
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.errors import InputError


def check_heldin_layout(dataset: LFADSDataset) -> None:
    """Refuse data whose encoder input is not the held-in corner of the reconstruction target."""
    for name in ("train", "valid"):
        split = getattr(dataset, name)
        _, t_enc, n_enc = split.encod_data.shape
        if not np.array_equal(split.encod_data, split.recon_data[:, :t_enc, :n_enc]):
            raise InputError(
                f"{dataset.source}: {name}_encod_data: is not {name}_recon_data[:, :{t_enc}, :{n_enc}] "
                "(held-in neurons and observed bins first), which coordinated dropout and sample "
                "validation need; set cd_rate: 0 and sv_rate: 0 for this data")


def coordinated_dropout(batch: Batch, rate: float, generator: torch.Generator) -> Batch:
    """Drop a random ``rate`` of the encoder's input entries; score only those in the held-in region.

    ``generator`` is a CPU generator (the masks are drawn on the CPU so that a
    seed gives the same masks on every device). The returned batch's
    ``recon_weight`` (B, T, N) is 1 / rate on the dropped held-in entries, 0
    on the kept ones and 1 on held-out neurons and forward bins, times the
    batch's own weights.
    """
    encod = batch.encod_data
    dropped = (torch.rand(encod.shape, generator=generator) < rate).to(encod.device)
    _, t_enc, n_enc = encod.shape
    weight = torch.ones_like(batch.recon_data)
    weight[:, :t_enc, :n_enc] = dropped / rate
    if batch.recon_weight is not None:
        weight = weight * batch.recon_weight
    return batch.replace(encod_data=encod * ~dropped / (1.0 - rate), recon_weight=weight)


def sample_validation_mask(split: Split, rate: float, seed: int) -> np.ndarray:
    """(trials, T_enc, N_enc) bool: True for the held-in entries held back for validation.

    Drawn from ``numpy.random.default_rng(seed)``: a fixed subset, the same at every epoch.
    """
    return np.random.default_rng(seed).random(split.encod_data.shape) < rate


def hide_for_validation(split: Split, held: np.ndarray, rate: float) -> tuple[Split, Split]:
    """Two views of ``split`` whose encoder input lacks the ``held`` entries (zeroed, the rest scaled).

    The first scores every entry but the held ones (for training and the
    validation ELBO); the second scores only the held ones (the sample
    validation metric). ``held`` is (trials, T_enc, N_enc) bool from
    :func:`sample_validation_mask`.
    """
    encod = (split.encod_data * ~held / (1.0 - rate)).astype(np.float32)
    _, t_enc, n_enc = held.shape
    scored_in_training = np.ones(split.recon_data.shape, dtype=bool)
    scored_in_training[:, :t_enc, :n_enc] = ~held
    scored_for_validation = np.zeros(split.recon_data.shape, dtype=bool)
    scored_for_validation[:, :t_enc, :n_enc] = held
    common = dict(encod_data=encod, recon_data=split.recon_data, ext_input=split.ext_input,
                  truth=split.truth, inds=split.inds)
    return Split(**common, recon_mask=scored_in_training), Split(**common, recon_mask=scored_for_validation)


class TrainingSplits:
    """The views of the data that training reads.

    Attributes:
        train: training trials, sample-validation entries hidden when sv_rate > 0.
        valid: validation trials, the same entries hidden (the validation ELBO).
        valid_held: validation trials scoring only the hidden entries, or None
            when sv_rate = 0.
        n_held: number of hidden validation entries.

    With ``model: behavior`` train and valid carry their split's behaviour (``Split.behavior``): the
    validation objective scores it too; valid_held, a score of hidden spikes, does not.
    """

    def __init__(self, dataset: LFADSDataset, config: LFADSConfig):
        self.train, self.valid, self.valid_held, self.n_held = dataset.train, dataset.valid, None, 0
        if config.sv_rate > 0:
            held_train = sample_validation_mask(dataset.train, config.sv_rate, config.seed)
            held_valid = sample_validation_mask(dataset.valid, config.sv_rate, config.seed + 1)
            self.train, _ = hide_for_validation(dataset.train, held_train, config.sv_rate)
            self.valid, self.valid_held = hide_for_validation(dataset.valid, held_valid, config.sv_rate)
            self.n_held = int(held_valid.sum())
        if config.model == "behavior":
            behavior_dims(dataset)
            self.train = with_behavior(self.train, dataset, "train")
            self.valid = with_behavior(self.valid, dataset, "valid")
