"""The report's page: ``index.html``, self-contained, from the numbers and figure files that
:func:`pyro_lfads.diagnostics.report.write_report` made.

The page has the run's part (the key numbers of the fit and the training curves; for a stitched run the
sessions' factors side by side), then one section per session (one for a single-session run): its key
numbers, its evaluation table (LFADS next to the baselines, in-sample figures marked) and its figures,
each with a caption.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pyro_lfads.evaluation.table import IN_SAMPLE_NOTE, is_in_sample
from pyro_lfads.fitting.derived_files import Source

#: What each figure shows (by its name without a session prefix), in the order of the page.
CAPTIONS = {
    "training.png": "Training curves per epoch: the loss (negative ELBO), its reconstruction and KL terms for "
                    "training and validation trials, the learning rate and the KL annealing weight. The dotted "
                    "line is the best epoch, the one kept as best.pt.",
    "sessions.png": "Condition-averaged factors of every session's training trials in one plane (the top two "
                    "principal components of all of them): colour is the condition, line style the session. In a "
                    "good stitched model the sessions' lines of a condition overlap.",
    "raster.png": "Single validation trials: the spikes, the inferred rates (posterior mean) and the true rates "
                  "when known, every neuron.",
    "rates.png": "Inferred rates of a few neurons over the spikes (ticks), with the true rates when known.",
    "rate_scatter.png": "True against inferred rates of every validation entry; the identity line is perfect "
                        "recovery.",
    "rate_r2_by_bin.png": "The R² of the inferred against the true rates in each bin of the trial: how much worse "
                          "the first bins are than the rest (first_bins_r2_gap).",
    "factors.png": "Single-trial factor trajectories in their top principal components, coloured by condition. "
                   "Trials of a condition should follow one path.",
    "inputs.png": "Inferred inputs u (posterior mean and one standard deviation), with the true inputs when known.",
    "inputs_embedding.png": "Each validation trial's inferred inputs (all bins) embedded in 2-D by t-SNE, coloured "
                            "by condition (the paper's Fig. 6): trials whose inputs differ by condition fall "
                            "apart. The title's k-NN accuracy is read against chance, the share of the largest "
                            "condition.",
    "ppc.png": "Posterior predictive checks: data simulated from the posterior against the data. Spike-count "
               "distribution, Fano factor per neuron and condition PSTHs; the band is the central predictive "
               "interval.",
    "khat.png": "Pareto k-hat of each trial's importance weights p(x, z) / q(z | x) (Yao et al. 2018). Below 0.7 "
                "the guide is a usable proposal for the true posterior; above it, the posterior of that trial "
                "is poorly approximated.",
}

#: What each key number or evaluation figure is (shown next to it); those not listed are shown without a note.
NOTES = {
    "best epoch": "the epoch kept as best.pt: the lowest value of the metric below",
    "best epoch chosen by": "the validation figure that chose best.pt (lower is better)",
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
FIGURE_NOTES = {
    "co_bps": "bits/spike on the held-out neurons",
    "fp_bps": "bits/spike on the forward-prediction bins",
    "vel_r2": "R2 of a ridge decoder of behaviour fitted on the training trials' rates",
    "psth_r2": "R2 of condition-averaged rates against the smoothed condition PSTHs",
    "heldin_bps": "bits/spike on the held-in neurons, the spikes the rates were made from",
    "rate_r2": "R2 against the true rates, every entry",
    "rate_r2_per_neuron": "mean over neurons of each neuron's R2 against the true rates",
    "first_bins_r2_gap": "median R2 of the bins after the first three minus the mean R2 of the first three",
    "bits_per_spike": "bits/spike over every reconstructed entry",
    "poisson_nll_per_trial": "Poisson negative log-likelihood, nats per trial",
    "elbo_per_trial": "held-out ELBO, nats per trial (a lower bound on log p(x))",
    "obs_mean_r2": "R2 of the predicted mean observation against the data",
}
IN_SAMPLE_MARK = "†"


@dataclass
class Section:
    """One session's part of the page: a title ("" for a single-session run), its key numbers, its evaluation
    (:func:`pyro_lfads.evaluation.table.evaluate_run`'s dict), its figure files (in ``out``), what it was made
    from and what the evaluation left out (a sentence, or "")."""

    title: str
    numbers: dict
    evaluation: dict
    figures: list[str]
    source: Source
    left_out: str = ""


def render_page(run_dir: Path, numbers: dict, figures: list[str], sections: list[Section]) -> str:
    """The whole page: the run's ``numbers`` and ``figures``, then each of ``sections``; each section's source
    in its text and, as JSON, in a ``pyro-lfads-source`` meta tag (one per section, in order)."""
    title = html.escape(f"pyro-lfads report: {run_dir.resolve().name}")
    metas = "\n".join(f'<meta name="pyro-lfads-source" content="{html.escape(json.dumps(s.source.as_attrs()))}">'
                      for s in sections)
    body = "\n".join(f"<section><h2>{html.escape(section.title)}</h2>\n{_section(section, 3)}</section>"
                     if section.title else _section(section, 2) for section in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
{metas}
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ text-align: left; padding: 0.2em 1em; border-bottom: 1px solid #ddd; font-weight: normal; }}
th {{ color: #555; }}
td.note, p.note {{ color: #777; font-size: 0.9em; }}
td.in-sample {{ color: #999; }}
figure {{ margin: 0 0 2.5em 0; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ color: #444; margin-top: 0.4em; }}
</style></head>
<body>
<h1>{title}</h1>
<p>Run directory: <code>{html.escape(str(run_dir.resolve()))}</code>. <code>diagnostics.json</code> and
<code>inference_data.nc</code> in the run directory hold the diagnostics in full, <code>training_curve.jsonl</code>
the training curve.</p>
<h2>Training</h2>
{_numbers(numbers)}
{_figures(figures)}
{body}
</body></html>
"""


def _section(section: Section, level: int) -> str:
    source = html.escape(section.source.described())
    split = html.escape(str(section.numbers.get("split", "valid")))
    return f"""<p>Numbers and figures are on the {split} trials. Made from the {source}.</p>
<h{level}>Key numbers</h{level}>
{_numbers(section.numbers)}
<h{level}>Evaluation</h{level}>
{_evaluation(section.evaluation, section.left_out)}
<h{level}>Figures</h{level}>
{_figures(section.figures)}"""


def _numbers(numbers: dict) -> str:
    rows = "\n".join(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_format(value))}</td>"
                     f"<td class=note>{html.escape(NOTES.get(key, ''))}</td></tr>"
                     for key, value in numbers.items() if value is not None)
    return f"<table>\n{rows}\n</table>"


def _evaluation(result: dict, left_out: str) -> str:
    """Methods as columns, figures as rows (a blank where a method lacks one; a baseline that could not run
    has a ``skipped`` row saying why); an in-sample figure's cell is marked, and each cell names its method
    and figure (``data-method``, ``data-figure``). Words other than ``skipped`` (the likelihood) are left out."""
    methods = list(result)
    rows = list(dict.fromkeys(key for figures in result.values() for key, value in figures.items()
                              if key == "skipped" or not isinstance(value, (str, list))))
    head = "".join(f"<th>{html.escape(method)}</th>" for method in methods)
    lines = []
    for row in rows:
        cells = []
        for method in methods:
            value = result[method].get(row)
            marked = value is not None and is_in_sample(method, row)
            text = "" if value is None else _format(value) + (f" {IN_SAMPLE_MARK}" if marked else "")
            cells.append(f'<td data-method="{html.escape(method)}" data-figure="{html.escape(row)}"'
                         f'{" class=in-sample" if marked else ""}>{html.escape(text)}</td>')
        lines.append(f"<tr><th>{html.escape(row)}</th>{''.join(cells)}"
                     f"<td class=note>{html.escape(FIGURE_NOTES.get(row, ''))}</td></tr>")
    body = "\n".join(lines)
    notes = f"{IN_SAMPLE_MARK} {IN_SAMPLE_NOTE} {left_out}"
    return (f'<table class="evaluation"><tr><th></th>{head}<th></th></tr>\n{body}\n</table>\n'
            f'<p class="note">{html.escape(notes.strip())}</p>')


def _figures(figures: list[str]) -> str:
    """Each figure file (a stitched run's named ``session{k}_{name}``) with its caption."""
    return "\n".join(f'<figure id="{name[:-4]}"><img src="{name}" alt="{name[:-4]}">'
                     f"<figcaption>{html.escape(CAPTIONS[re.sub(r'^session[0-9]+_', '', name)])}</figcaption>"
                     "</figure>" for name in figures)


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
