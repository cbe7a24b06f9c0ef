"""Scores a fitted run on its validation trials, next to the NLB baselines (smoothing, GPFA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import r2_score

from pyro_lfads.data import LFADSDataset
from pyro_lfads.errors import InputError
from pyro_lfads.models.likelihoods import data_support
from pyro_lfads.evaluation.linear_decoders import behavior_r2
from pyro_lfads.evaluation.metrics import bits_per_spike, poisson_nll, rate_r2, rate_r2_per_neuron
from pyro_lfads.evaluation.per_bin import first_bins_r2_gap, rate_r2_by_bin
from pyro_lfads.fitting.posterior import read_posterior
from pyro_lfads.fitting.run import Run, dataset_sha256
from pyro_lfads.evaluation.nlb_figures import BASELINES, DEFAULT_PSTH_SIGMA_BINS, baseline_rates, score_rates
from pyro_lfads.fitting.train import evaluate_elbo

#: The figures of :func:`evaluate_run` that are in-sample: computed from the very spikes they score. Every
#: method's validation rates are made from those trials' held-in spikes (LFADS's encoders read them, the
#: baselines smooth them or fit latents to them), so a figure that scores the rates against those spikes
#: rewards copying them; the methods compare fairly on co_bps, fp_bps, vel_r2, psth_r2 and rate_r2.
IN_SAMPLE = ("heldin_bps", "bits_per_spike", "poisson_nll_per_trial", "elbo_per_trial", "obs_mean_r2")
#: The figures of :data:`IN_SAMPLE` that a method computes out of sample: GPFA's held-in rates are read out of
#: latents inferred without the neuron they are for (:mod:`pyro_lfads.evaluation.gpfa_baseline`).
OUT_OF_SAMPLE = {"gpfa": ("heldin_bps",)}
#: What an in-sample mark means, in the ``evaluate`` table and the report.
IN_SAMPLE_NOTE = ("in-sample: computed from the same spikes it is scored on (the method's rates of these trials "
                  "are made from their held-in spikes), so it rewards copying them; compare the methods on the other "
                  "figures. GPFA's held-in rates are left-neuron-out, out of sample.")
#: The mark of an in-sample cell in the printed table (ASCII, for any terminal).
TABLE_MARK = "*"


def heldout_elbo(run: Run | str | Path, dataset: LFADSDataset, passes: int = 10, device: str = "cpu",
                 session: int = 0) -> float:
    """The ELBO per validation trial (nats) of ``dataset`` (session ``session``'s), averaged over
    ``passes`` draws: a lower bound on the held-out log-likelihood, comparable across observation
    models of the same data."""
    run = Run.open(run)
    config = run.config
    model, guide = run.fitted("best", device)
    torch.manual_seed(config.seed)
    losses = [evaluate_elbo(model, guide, dataset.valid, config, device, session)["loss"] for _ in range(passes)]
    return -float(np.mean(losses))


def evaluate_run(run: Run | str | Path, dataset: LFADSDataset | None = None, *,
                 baselines: tuple[str, ...] = BASELINES, lag_bins: int = 0,
                 psth_sigma_bins: float = DEFAULT_PSTH_SIGMA_BINS, session: int = 0) -> dict:
    """Figures of merit on the validation trials of ``run`` (a Run or its directory; of session
    ``session`` for a stitched run), LFADS next to the baselines. ``dataset`` defaults to the run's own.

    Returns ``{"lfads": {...}, "smoothing": {...}, "gpfa": {...}}`` (the
    baselines named in ``baselines``, for count data only; a baseline that cannot run on the data, such
    as GPFA with more latents than held-in neurons, gets ``{"skipped": why}``). For count data
    every method has the figures of :func:`pyro_lfads.evaluation.nlb_figures.score_rates`
    that the data allows (``co_bps``, ``fp_bps``, ``vel_r2``, ``psth_r2``,
    ``heldin_bps``, ``rate_r2``, ``rate_r2_per_neuron``). LFADS also has
    ``likelihood``, ``n_valid_trials``, ``elbo_per_trial`` (held-out ELBO,
    nats), for count data ``bits_per_spike`` and ``poisson_nll_per_trial``
    over all reconstructed entries; for other data ``rate_r2`` and
    ``rate_r2_per_neuron`` of the mean signal against the truth (with ``rate_r2_by_bin`` and
    ``first_bins_r2_gap``, :mod:`pyro_lfads.evaluation.per_bin`); where
    the model predicts observations other than its rates (calcium),
    ``obs_mean_r2``; and for a behaviour model (``model: behavior``) on data with behaviour,
    ``behavior_r2``, the R2 of the behaviour it decodes from the spikes (``vel_r2`` is a ridge
    decoder's of its rates, as for any run).
    """
    run = Run.open(run)
    config = run.config
    data_sha256 = None if dataset is None else dataset_sha256(dataset)
    dataset = run.scored_data(dataset, session)
    counts = data_support(config.likelihood) == "counts"
    posterior = read_posterior(run, "valid", session, data_sha256=data_sha256)
    rates = posterior["output_params"].astype("float64")
    observed = dataset.valid.recon_data
    lfads = {"likelihood": config.likelihood, "n_valid_trials": dataset.valid.n_trials,
             "elbo_per_trial": heldout_elbo(run, dataset, session=session)}
    if "obs_mean" in posterior:
        lfads["obs_mean_r2"] = float(r2_score(observed.ravel(), posterior["obs_mean"].ravel()))
    behavior = dataset.extras.get("valid_behavior")
    if "behavior_pred" in posterior and behavior is not None:  # the behaviour model's own decoding
        n_bins = min(behavior.shape[1], posterior["behavior_pred"].shape[1])
        lfads["behavior_r2"] = behavior_r2(behavior[:, :n_bins], posterior["behavior_pred"][:, :n_bins])
    if not counts:
        truth = dataset.truth_counts("valid")
        if truth is not None:
            by_bin = rate_r2_by_bin(truth, rates)
            lfads.update(rate_r2=rate_r2(truth, rates), rate_r2_per_neuron=rate_r2_per_neuron(truth, rates),
                         first_bins_r2_gap=first_bins_r2_gap(by_bin), rate_r2_by_bin=[float(v) for v in by_bin])
        return {"lfads": lfads}
    lfads["bits_per_spike"] = bits_per_spike(observed, rates)
    lfads["poisson_nll_per_trial"] = poisson_nll(observed, rates) / dataset.valid.n_trials
    train_rates = read_posterior(run, "train", session, data_sha256=data_sha256)["output_params"].astype("float64")
    result = {"lfads": {**lfads, **score_rates(dataset, train_rates, rates, lag_bins=lag_bins,
                                               psth_sigma_bins=psth_sigma_bins)}}
    unknown = [method for method in baselines if method not in BASELINES]
    if unknown:
        raise InputError(f"baselines: {', '.join(map(repr, unknown))} not among {', '.join(BASELINES)}")
    for method in baselines:
        obstacle = baseline_obstacle(method, dataset)
        if obstacle is None:
            try:
                train_rates, valid_rates = baseline_rates(method, dataset, seed=config.seed)
            except InputError as exc:
                obstacle = f"cannot run on these data ({exc})"
        result[method] = ({"skipped": obstacle} if obstacle else
                          score_rates(dataset, train_rates, valid_rates, lag_bins=lag_bins,
                                      psth_sigma_bins=psth_sigma_bins))
    return result


def baseline_obstacle(method: str, dataset: LFADSDataset) -> str | None:
    """Why baseline ``method`` cannot run on ``dataset`` (too few held-in neurons for GPFA's latents,
    training trials without a spike), or None."""
    from pyro_lfads.evaluation.gpfa_baseline import LATENT_CANDIDATES

    heldin = dataset.train.encod_data
    if not heldin.any():
        return "the training trials hold no spike to smooth"
    n_latents = min(LATENT_CANDIDATES)
    if method == "gpfa" and heldin.shape[2] < n_latents:
        return (f"GPFA's smallest latent dimension, {n_latents}, needs at least {n_latents} held-in neurons, the data "
                f"have {heldin.shape[2]}")
    return None


def is_in_sample(method: str, figure: str) -> bool:
    """Whether ``method``'s ``figure`` is computed from the spikes it is scored on (:data:`IN_SAMPLE`,
    less :data:`OUT_OF_SAMPLE`)."""
    return figure in IN_SAMPLE and figure not in OUT_OF_SAMPLE.get(method, ())


def in_sample_figures(result: dict) -> list[str]:
    """The figures of an :func:`evaluate_run` result that are in-sample for some method, in table order."""
    return [row for row in _rows(result) if any(is_in_sample(m, row) and row in result[m] for m in result)]


def with_in_sample(result: dict) -> dict:
    """An :func:`evaluate_run` result as ``evaluate --json`` prints it: the methods' figures, and
    ``in_sample``, the list of :func:`in_sample_figures`."""
    return {**result, "in_sample": in_sample_figures(result)}


def format_table(result: dict) -> str:
    """An :func:`evaluate_run` result as text: methods as columns, figures as rows, a blank where a method
    lacks a figure; in-sample cells marked :data:`TABLE_MARK`, with a last line saying what that means."""
    methods = list(result)
    rows = _rows(result)
    cells = [[_cell(result[m].get(row), is_in_sample(m, row)) for m in methods] for row in rows]
    width = max(len(row) for row in rows)
    widths = [max(len(m), *(len(c[i]) for c in cells)) for i, m in enumerate(methods)]
    lines = [" " * width + "".join(f"  {m:>{w}}" for m, w in zip(methods, widths))]
    for row, cell in zip(rows, cells):
        lines.append(f"{row:<{width}}" + "".join(f"  {c:>{w}}" for c, w in zip(cell, widths)))
    if in_sample_figures(result):
        lines.append(f"{TABLE_MARK} {IN_SAMPLE_NOTE}")
    return "\n".join(lines)


def _rows(result: dict) -> list[str]:
    """The figures of the table: every method's, but those that are lists (``rate_r2_by_bin``: see the JSON)."""
    return list(dict.fromkeys(key for figures in result.values() for key, value in figures.items()
                              if not isinstance(value, list)))


def _cell(value, in_sample: bool) -> str:
    if value is None:
        return ""
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    return f"{text} {TABLE_MARK}" if in_sample and not isinstance(value, str) else text
