"""``pyro-lfads report``: the story of a fitted run as PNG figures and an ``index.html`` that shows them.

Reads RUN_DIR's ``training_curve.jsonl`` and, per session, the posterior averages (``posterior.h5``) and the
diagnostics (``inference_data.nc``, ``diagnostics.json``; a stitched run's ``*_session{k}`` files), each made
first with default settings when missing or made from another checkpoint or data
(:func:`~pyro_lfads.fitting.posterior.posterior_current`,
:func:`~pyro_lfads.diagnostics.summary.diagnostics_current`), and the run's data (for the evaluation, the true
rates, and the true inputs from its ``{split}_inputs`` extra (trials, time, inputs) when present).

The page (:mod:`pyro_lfads.diagnostics.report_page`) shows the fit (epochs, the best epoch by the metric that
chose best.pt, :func:`best_epoch`, and the training curves; for a stitched run the sessions' factors in one
plane), then one section per session: the diagnostics' key numbers; the evaluation of LFADS next to the smoothing
baseline on the validation trials (:func:`~pyro_lfads.evaluation.table.evaluate_run`; GPFA, which takes minutes
on large data, is left to ``pyro-lfads evaluate``), its in-sample figures marked; and the figures of rates,
factors, inputs (with a t-SNE of each trial's inferred inputs coloured by condition, where the data has
conditions), predictive checks and k-hat, whose posterior means are the means over the InferenceData's draws.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pyro_lfads.analysis.input_embedding import embed_inputs, plot_input_embedding
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, as_sessions
from pyro_lfads.data.atomic_files import atomic_path
from pyro_lfads.diagnostics.check_figures import plot_khat, plot_ppc, plot_training_curves
from pyro_lfads.diagnostics.input_figures import plot_inputs
from pyro_lfads.diagnostics.rate_figures import (plot_factor_pcs, plot_raster, plot_rate_r2_by_bin,
                                                 plot_rate_scatter, plot_rates, plot_session_factors)
from pyro_lfads.diagnostics.report_page import Section, render_page
from pyro_lfads.diagnostics.summary import (diagnose_run, diagnostics_current, diagnostics_source,
                                             predictive_checks, read_diagnostics)
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.metrics import rate_r2
from pyro_lfads.evaluation.table import evaluate_run
from pyro_lfads.extensions.stitching import shared_conditions
from pyro_lfads.fitting.derived_files import REPORT_DIR
from pyro_lfads.fitting.posterior import posterior_current, read_posterior, write_posterior
from pyro_lfads.fitting.run import Run, dataset_sha256
from pyro_lfads.fitting.run_lock import writes_into
from pyro_lfads.fitting.train import validation_metric
from pyro_lfads.fitting.devices import resolve_device

#: The baselines the report scores next to LFADS: the ones that take seconds.
REPORT_BASELINES = ("smoothing",)
#: The bin width the figures assume, ms, for a run whose data recorded none when no ``bin_ms`` is given
#: (``synth``'s width); a warning says so.
ASSUMED_BIN_MS = 10.0


@writes_into("run")
def write_report(run: Run | str | Path, dataset: LFADSDataset | Sequence[LFADSDataset] | None = None, *,
                 out: str | Path | None = None, bin_ms: float | None = None, device: str = "cpu",
                 progress: bool = True) -> Path:
    """Draw the figures of ``run`` (a Run or its directory) into ``out`` (default RUN_DIR/report); returns the
    index.html path. ``dataset`` defaults to the run's own data: one data set, or a stitched run's list of
    sessions. ``bin_ms`` converts counts per bin into spikes/s and bins into seconds in the figures: by default
    the bin width the run records (:func:`figure_bin_ms`); one that contradicts it is refused."""
    run, device = Run.open(run), resolve_device(device)
    widths = [figure_bin_ms(run, bin_ms, session) for session in range(run.n_sessions)]
    data = [None] * run.n_sessions if dataset is None else as_sessions(dataset)
    if len(data) != run.n_sessions:
        raise InputError(f"{run.directory}: was fitted on {run.n_sessions} sessions, got {len(data)} data sets")
    checksums = [None if given is None else dataset_sha256(given) for given in data]
    out = Path(out) if out is not None else run.directory / REPORT_DIR
    records = run.training_curve()
    if not all(posterior_current(run, checksum, k) for k, checksum in enumerate(checksums)):
        write_posterior(run, dataset, device=device, progress=progress)
    for session, (given, checksum) in enumerate(zip(data, checksums)):
        if not diagnostics_current(run, checksum, session):
            diagnose_run(run, given, bin_ms=widths[session][0], device=device, progress=progress, session=session)
    out.mkdir(parents=True, exist_ok=True)

    best, metric = best_epoch(records, run.config)
    numbers = {"likelihood": run.config.likelihood, "sessions": run.n_sessions if run.n_sessions > 1 else None,
               "epochs trained": len(records),
               "best epoch": best, "best epoch chosen by": metric}
    figures = [plot_training_curves(records, out / "training.png", best_epoch=best).name]
    if run.n_sessions > 1:
        session_factors = plot_sessions(run, data, checksums, out / "sessions.png")
        figures += [] if session_factors is None else [session_factors.name]
    sections = [session_section(run, session, data[session], checksums[session], out, widths[session])
                for session in range(run.n_sessions)]
    index = out / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(render_page(run.directory, numbers, figures, sections))
    return index


def best_epoch(records: list[dict], config: LFADSConfig) -> tuple[int, str]:
    """(epoch, curve key) of the epoch kept as best.pt: the first of the lowest values of the validation
    figure that :func:`~pyro_lfads.fitting.train.validation_metric` names (``valid_loss``; ``valid_recon``
    under ``checkpoint_metric: recon``; ``valid_sv_recon`` with sample validation)."""
    valid = [{key[len("valid_"):]: value for key, value in record.items() if key.startswith("valid_")}
             for record in records]
    metric = validation_metric(valid[0], config)
    best = min(range(len(records)), key=lambda i: valid[i][metric])
    return int(records[best]["epoch"]), f"valid_{metric}"


def figure_bin_ms(run: Run, given: float | None, session: int = 0) -> tuple[float, str]:
    """(bin width in ms, where it comes from in words) for the figures of session ``session``: ``given``, else
    the width the run records (:meth:`~pyro_lfads.fitting.run.Run.bin_ms`, which refuses a ``given`` width
    that contradicts it), else :data:`ASSUMED_BIN_MS` with a warning."""
    bin_ms = run.bin_ms(given, session)
    if bin_ms is not None:
        return bin_ms, "given" if given is not None and run.session_info(session).bin_width_s is None else "recorded"
    warnings.warn(f"{run.directory}: its data file records no bin width (bin_width_s); the figures assume "
                  f"{ASSUMED_BIN_MS:g} ms bins: give the bin width (bin_ms, --bin-ms) if that is wrong", stacklevel=3)
    return ASSUMED_BIN_MS, "assumed, the data records none"


def session_section(run: Run, session: int, dataset: LFADSDataset | None, data_sha256: str | None, out: Path,
                    width: tuple[float, str]) -> Section:
    """Session ``session``'s part of the page, its figures drawn into ``out`` (named ``session{k}_{name}`` for
    a stitched run), from its current diagnostics and posterior; ``dataset`` (of checksum ``data_sha256``)
    defaults to the session's own; ``width`` is (bin width in ms, its origin) from :func:`figure_bin_ms`."""
    bin_ms = width[0]
    stitched = run.n_sessions > 1
    prefix = f"session{session}_" if stitched else ""
    inference_data, diagnostics = read_diagnostics(run, data_sha256, session)
    scored = run.scored_data(dataset, session)
    summary, split = diagnostics["summary"], diagnostics["summary"]["split"]
    posterior = inference_data.posterior
    mean = {name: posterior[name].mean(("chain", "draw")).values for name in posterior.data_vars}
    spikes = inference_data.observed_data["obs"].values
    truth = scored.truth_counts(split)
    truth = None if truth is None else truth[:, : spikes.shape[1]]
    conditions = posterior.coords["condition"].values if "condition" in posterior.coords else None
    trials = tuple(int(i) for i in np.linspace(0, spikes.shape[0] - 1, min(3, spikes.shape[0])))

    figures = [plot_raster(spikes, mean["rates"], out / f"{prefix}raster.png", truth=truth, trials=trials,
                           bin_ms=bin_ms),
               plot_rates(spikes, mean["rates"], out / f"{prefix}rates.png", truth=truth, trials=trials,
                          neurons=tuple(range(min(4, spikes.shape[2]))), bin_ms=bin_ms)]
    numbers = {"data": scored.source, "split": split, "bin width": f"{bin_ms:g} ms ({width[1]})"}
    if truth is not None:
        figures.append(plot_rate_scatter(truth, mean["rates"], out / f"{prefix}rate_scatter.png"))
        figures.append(plot_rate_r2_by_bin(truth, mean["rates"], out / f"{prefix}rate_r2_by_bin.png", bin_ms=bin_ms))
        numbers["rate R2 vs truth"] = rate_r2(truth, mean["rates"])
    figures.append(plot_factor_pcs(mean["factors"], out / f"{prefix}factors.png", conditions=conditions))
    if "u" in mean:
        figures.append(plot_inputs(mean["u"], out / f"{prefix}inputs.png",
                                   inputs_std=posterior["u"].std(("chain", "draw")).values,
                                   truth=scored.extras.get(f"{split}_inputs"), trials=trials, bin_ms=bin_ms))
        if conditions is not None and 2 <= len(set(conditions.tolist())) < len(conditions):
            embedding = embed_inputs(mean["u"], conditions)
            figures.append(plot_input_embedding(embedding, out / f"{prefix}inputs_embedding.png"))
            numbers["inputs embedding: k-NN accuracy of conditions (chance)"] = (
                f"{embedding.knn_accuracy:.2f} ({embedding.chance_accuracy:.2f})")
    figures.append(plot_ppc(predictive_checks(inference_data), out / f"{prefix}ppc.png"))
    figures.append(plot_khat(np.asarray(diagnostics["per_trial"]["khat"]), out / f"{prefix}khat.png"))
    numbers.update(summary)

    evaluation = evaluate_run(run, dataset, baselines=REPORT_BASELINES, session=session)
    left_out = ("GPFA, which takes minutes on large data, is not fitted for the report: 'pyro-lfads evaluate' "
                "scores it." if len(evaluation) > 1 else "")
    title = f"Session {session}: {scored.source}" if stitched else ""
    return Section(title, numbers, evaluation, [figure.name for figure in figures], diagnostics_source(diagnostics),
                   left_out)


def plot_sessions(run: Run, data: list[LFADSDataset | None], checksums: list[str | None], path: Path) -> Path | None:
    """The condition-averaged factors (posterior means) of every session's training trials in one plane
    (:func:`~pyro_lfads.diagnostics.rate_figures.plot_session_factors`); None when the sessions share no
    condition labels."""
    sessions = [run.scored_data(given, session) for session, given in enumerate(data)]
    conditions = shared_conditions(sessions)
    if conditions is None or not len(conditions):
        return None
    averages = []
    for session, (dataset, checksum) in enumerate(zip(sessions, checksums)):
        factors = read_posterior(run, "train", session, data_sha256=checksum)["factors"]  # (trials, T, F)
        labels = dataset.extras["train_conditions"]
        averages.append(np.stack([factors[labels == condition].mean(axis=0) for condition in conditions]))
    return plot_session_factors(averages, path)
