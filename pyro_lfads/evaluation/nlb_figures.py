"""The Neural Latents Benchmark figures of any method's rates on an LFADS data set.

A data set in the LFADS / NLB layout (see :mod:`pyro_lfads.data.nlb`) tells what
each entry is: the encoder reads ``encod_data`` (trials, T, N_in); the
reconstruction target ``recon_data`` (trials, T + T_fwd, N_in + N_out) adds
held-out neurons after the held-in ones and forward-prediction bins after the
observed ones. Every method (LFADS, smoothing, GPFA) gives rates of that
target's shape, in counts per bin, for the train and valid trials; this
module turns them into the same figures:

    co_bps     bits/spike on held-out neurons, observed bins, valid trials
    fp_bps     bits/spike on all neurons, forward bins, valid trials
    vel_r2     R2 of a ridge decoder of ``{split}_behavior`` fitted on train rates
    psth_r2    R2 of condition-averaged valid rates against condition-averaged
               smoothed spikes of all trials (``{split}_conditions``)
    heldin_bps bits/spike on held-in neurons, observed bins (what the encoder saw)
    rate_r2    R2 against the true rates, all entries pooled, where the data has truth
    rate_r2_per_neuron  the mean over neurons of each neuron's R2
    rate_r2_by_bin      the R2 of each bin (a list, T long), where the data has truth
    first_bins_r2_gap   its median over the bins after the first three minus its mean over those three

A figure whose ingredients the data lacks (no held-out neurons, no forward
bins, no behaviour, no conditions, no truth) is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyro_lfads.data import LFADSDataset
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.metrics import bits_per_spike, co_bps, condition_psth, fp_bps, psth_r2, rate_r2, rate_r2_per_neuron, velocity_r2
from pyro_lfads.evaluation.per_bin import first_bins_r2_gap, rate_r2_by_bin

#: 50 ms at 10 ms bins, the NLB PSTH smoothing width.
DEFAULT_PSTH_SIGMA_BINS = 5.0


@dataclass(frozen=True)
class Layout:
    """Where held-in, held-out and forward entries sit in ``recon_data``."""

    n_heldin: int
    n_heldout: int
    n_time: int
    n_forward: int

    @classmethod
    def of(cls, dataset: LFADSDataset) -> "Layout":
        _, t_enc, n_enc = dataset.train.encod_data.shape
        _, t_all, n_all = dataset.train.recon_data.shape
        return cls(n_enc, n_all - n_enc, t_enc, t_all - t_enc)


def score_rates(dataset: LFADSDataset, train_rates: np.ndarray, valid_rates: np.ndarray, *,
                lag_bins: int = 0, psth_sigma_bins: float = DEFAULT_PSTH_SIGMA_BINS) -> dict:
    """The figures of the module docstring for rates (trials, T + T_fwd, N_in + N_out), counts per bin.

    ``lag_bins``: the decoder predicts behaviour at bin t from rates at t - lag_bins.
    """
    layout = Layout.of(dataset)
    T, n_in = layout.n_time, layout.n_heldin
    for name, rates, split in (("train_rates", train_rates, dataset.train), ("valid_rates", valid_rates, dataset.valid)):
        if rates.shape != split.recon_data.shape:
            raise InputError(f"{name}: shape {rates.shape} differs from the data's {split.recon_data.shape}")
    spikes = dataset.valid.recon_data
    result = {"heldin_bps": bits_per_spike(spikes[:, :T, :n_in], valid_rates[:, :T, :n_in])}
    if layout.n_heldout:
        result["co_bps"] = co_bps(valid_rates[:, :T, n_in:], spikes[:, :T, n_in:])
    if layout.n_forward:
        result["fp_bps"] = fp_bps(valid_rates[:, T:], spikes[:, T:])
    behavior = [dataset.extras.get(f"{name}_behavior") for name in ("train", "valid")]
    if all(b is not None for b in behavior):  # behaviour of all bins (lfads-torch's layout): the observed ones
        result["vel_r2"] = velocity_r2(train_rates[:, :T], behavior[0][:, :T], valid_rates[:, :T],
                                       behavior[1][:, :T], lag_bins=lag_bins)
    conditions = [dataset.extras.get(f"{name}_conditions") for name in ("train", "valid")]
    if all(c is not None for c in conditions):
        all_spikes = np.concatenate([dataset.train.recon_data[:, :T], spikes[:, :T]])
        ids, psth = condition_psth(all_spikes, np.concatenate(conditions), psth_sigma_bins)
        result["psth_r2"] = psth_r2(valid_rates[:, :T], conditions[1], psth, ids)
    truth = dataset.truth_counts("valid")
    if truth is not None:
        result["rate_r2"] = rate_r2(truth, valid_rates)
        result["rate_r2_per_neuron"] = rate_r2_per_neuron(truth, valid_rates)
        by_bin = rate_r2_by_bin(truth, valid_rates)
        result["first_bins_r2_gap"] = first_bins_r2_gap(by_bin)
        result["rate_r2_by_bin"] = [float(value) for value in by_bin]
    return result


def baseline_rates(method: str, dataset: LFADSDataset, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rates, valid rates) of an NLB baseline, each shaped like ``recon_data``, counts per bin.

    ``method``: "smoothing" (Gaussian-smoothed held-in spikes) or "gpfa"
    (GPFA latents of the held-in spikes, their dimension cross-validated; held-in rates left-neuron-out,
    :mod:`pyro_lfads.evaluation.gpfa_baseline`); both reach held-out neurons and
    forward bins through Poisson GLMs fitted on the training trials.
    """
    from pyro_lfads.evaluation.baselines import SmoothingBaseline
    from pyro_lfads.evaluation.gpfa_baseline import GPFABaseline

    if method not in BASELINES:
        raise InputError(f"baseline: {method!r} is not one of {', '.join(BASELINES)}")
    layout = Layout.of(dataset)
    T, n_in = layout.n_time, layout.n_heldin
    train = dataset.train.recon_data
    model = SmoothingBaseline() if method == "smoothing" else GPFABaseline(seed=seed)
    model.fit(train[:, :T, :n_in], train[:, :T, n_in:] if layout.n_heldout else None,
              train[:, T:] if layout.n_forward else None)
    return model.predict(dataset.train.encod_data), model.predict(dataset.valid.encod_data)


BASELINES = ("smoothing", "gpfa")
