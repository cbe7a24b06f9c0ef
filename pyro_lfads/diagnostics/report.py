"""``pyro-lfads report``: the figures of a fitted run as PNG files and an ``index.html`` that shows them.

Reads RUN_DIR's ``training_curve.jsonl``, the diagnostics (``inference_data.nc``,
``diagnostics.json``; made first with default settings when missing or made from
another checkpoint or data, :func:`pyro_lfads.diagnostics.summary.diagnostics_current`) and the run's data set (for the true rates, and the true
inputs from its ``{split}_inputs`` extra (trials, time, inputs) when present).
Posterior means are the means over the InferenceData's draws. The page names the checkpoint and
data it was made from.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from pyro_lfads.diagnostics.check_figures import plot_khat, plot_ppc, plot_training_curves
from pyro_lfads.diagnostics.input_figures import plot_inputs
from pyro_lfads.diagnostics.rate_figures import plot_factor_pcs, plot_raster, plot_rate_scatter, plot_rates
from pyro_lfads.data import LFADSDataset
from pyro_lfads.diagnostics.summary import (diagnose_run, diagnostics_current, diagnostics_source,
                                             predictive_checks, read_diagnostics)
from pyro_lfads.evaluation.metrics import rate_r2
from pyro_lfads.data.atomic_files import atomic_path
from pyro_lfads.fitting.derived_files import REPORT_DIR, Source
from pyro_lfads.fitting.run import Run, dataset_sha256
from pyro_lfads.fitting.run_lock import writes_into

#: What each figure shows, in the order of the page.
CAPTIONS = {
    "training.png": "Training curves per epoch: the loss (negative ELBO), its reconstruction and KL terms for "
                    "training and validation trials, the learning rate and the KL annealing weight.",
    "raster.png": "Single validation trials: the spikes, the inferred rates (posterior mean) and the true rates "
                  "when known, every neuron.",
    "rates.png": "Inferred rates of a few neurons over the spikes (ticks), with the true rates when known.",
    "rate_scatter.png": "True against inferred rates of every validation entry; the identity line is perfect "
                        "recovery.",
    "factors.png": "Single-trial factor trajectories in their top principal components, coloured by condition. "
                   "Trials of a condition should follow one path.",
    "inputs.png": "Inferred inputs u (posterior mean and one standard deviation), with the true inputs when known.",
    "ppc.png": "Posterior predictive checks: data simulated from the posterior against the data. Spike-count "
               "distribution, Fano factor per neuron and condition PSTHs; the band is the central predictive "
               "interval.",
    "khat.png": "Pareto k-hat of each trial's importance weights p(x, z) / q(z | x) (Yao et al. 2018). Below 0.7 "
                "the guide is a usable proposal for the true posterior; above it, the posterior of that trial "
                "is poorly approximated.",
}


#: What each key number is (shown next to it); numbers not listed here are shown without a note.
NOTES = {
    "rate R2 vs truth": "posterior mean rates against the true rates, every entry",
    "khat_median": "median PSIS k-hat of the trials' importance weights",
    "khat_fraction_below_0_7": "fraction of trials where the guide is a usable proposal (k-hat < 0.7)",
    "khat_fraction_below_0_5": "fraction of trials with good k-hat (< 0.5)",
    "elbo_per_trial": "ELBO estimate of log p(x), nats per trial",
    "iwae_per_trial": "importance-weighted (IWAE) estimate of log p(x), nats per trial",
    "iwae_minus_elbo": "how much the ELBO understates log p(x), nats per trial",
    "ppc_count_total_variation": "distance between the observed and simulated count distributions (0 = equal)",
    "ppc_fano_coverage": "fraction of neurons whose Fano factor lies in the simulated 90% interval",
    "ppc_psth_coverage": "fraction of smoothed PSTH values in the simulated 90% interval",
    "ppc_psth_r2": "R2 of observed against mean simulated smoothed PSTHs",
}


@writes_into("run")
def write_report(run: Run | str | Path, dataset: LFADSDataset | None = None, *, out: str | Path | None = None,
                 bin_ms: float = 10.0, device: str = "cpu", progress: bool = True) -> Path:
    """Draw the figures of ``run`` (a Run or its directory; ``dataset`` defaults to the run's own) into
    ``out`` (default RUN_DIR/report); returns the index.html path.

    ``bin_ms`` converts counts per bin into spikes/s in the figures.
    """
    run = Run.open(run)
    run.require_single_session("report")
    run_dir, config = run.directory, run.config
    out = Path(out) if out is not None else run_dir / REPORT_DIR
    records = run.training_curve()
    given, data_sha256 = dataset, None if dataset is None else dataset_sha256(dataset)
    dataset = run.scored_data(dataset)
    if not diagnostics_current(run, data_sha256):
        diagnose_run(run, given, bin_ms=bin_ms, device=device, progress=progress)
    inference_data, diagnostics = read_diagnostics(run, data_sha256)
    summary, split = diagnostics["summary"], diagnostics["summary"]["split"]
    posterior = inference_data.posterior
    mean = {name: posterior[name].mean(("chain", "draw")).values for name in posterior.data_vars}
    spikes = inference_data.observed_data["obs"].values
    truth = dataset.truth_counts(split)
    truth = None if truth is None else truth[:, : spikes.shape[1]]
    conditions = posterior.coords["condition"].values if "condition" in posterior.coords else None
    trials = tuple(int(i) for i in np.linspace(0, spikes.shape[0] - 1, min(3, spikes.shape[0])))
    out.mkdir(parents=True, exist_ok=True)

    figures = [plot_training_curves(records, out / "training.png"),
               plot_raster(spikes, mean["rates"], out / "raster.png", truth=truth, trials=trials,
                                 bin_ms=bin_ms),
               plot_rates(spikes, mean["rates"], out / "rates.png", truth=truth, trials=trials,
                                neurons=tuple(range(min(4, spikes.shape[2]))), bin_ms=bin_ms)]
    numbers = {"likelihood": config.likelihood, "epochs trained": len(records),
               "best epoch": _best_epoch(records),
               "split": split}
    if truth is not None:
        figures.append(plot_rate_scatter(truth, mean["rates"], out / "rate_scatter.png"))
        numbers["rate R2 vs truth"] = rate_r2(truth, mean["rates"])
    figures.append(plot_factor_pcs(mean["factors"], out / "factors.png", conditions=conditions))
    if "u" in mean:
        true_inputs = dataset.extras.get(f"{split}_inputs")
        figures.append(plot_inputs(mean["u"], out / "inputs.png",
                                         inputs_std=posterior["u"].std(("chain", "draw")).values,
                                         truth=true_inputs,
                                         trials=trials, bin_ms=bin_ms))
    figures.append(plot_ppc(predictive_checks(inference_data), out / "ppc.png"))
    figures.append(plot_khat(np.asarray(diagnostics["per_trial"]["khat"]), out / "khat.png"))
    numbers.update(summary)
    index = out / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(_page(run_dir, numbers, [figure.name for figure in figures], diagnostics_source(diagnostics)))
    return index


def _page(run_dir: Path, numbers: dict, figures: list[str], source: Source) -> str:
    """A self-contained HTML page: the key numbers, then each figure with its caption; ``source`` (what it
    was made from) in its text and, as JSON, in a ``pyro-lfads-source`` meta tag."""
    rows = "\n".join(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_format(value))}</td>"
                     f"<td class=note>{html.escape(NOTES.get(key, ''))}</td></tr>"
                     for key, value in numbers.items() if value is not None)
    order = [name for name in CAPTIONS if name in figures]
    sections = "\n".join(f'<figure id="{name[:-4]}"><img src="{name}" alt="{name[:-4]}">'
                         f"<figcaption>{html.escape(CAPTIONS[name])}</figcaption></figure>" for name in order)
    title = html.escape(f"pyro-lfads report: {run_dir.resolve().name}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="pyro-lfads-source" content="{html.escape(json.dumps(source.as_attrs()))}">
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ text-align: left; padding: 0.2em 1em; border-bottom: 1px solid #ddd; font-weight: normal; }}
th {{ color: #555; }}
td.note {{ color: #777; font-size: 0.9em; }}
figure {{ margin: 0 0 2.5em 0; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ color: #444; margin-top: 0.4em; }}
</style></head>
<body>
<h1>{title}</h1>
<p>Run directory: <code>{html.escape(str(run_dir.resolve()))}</code>. Numbers and figures are on the
{html.escape(str(numbers["split"]))} trials; <code>diagnostics.json</code> and <code>inference_data.nc</code>
in the run directory hold them in full. Made from the {html.escape(source.described())}.</p>
<h2>Key numbers</h2>
<table>
{rows}
</table>
<h2>Figures</h2>
{sections}
</body></html>
"""


def _best_epoch(records: list[dict]) -> int:
    """The epoch that chose best.pt: lowest sample-validation cost when recorded, else validation loss."""
    key = "valid_sv_recon" if "valid_sv_recon" in records[0] else "valid_loss"
    return int(records[int(np.argmin([record[key] for record in records]))]["epoch"])


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
