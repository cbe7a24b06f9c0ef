"""The NLB baselines (smoothing, GPFA) on the panel's Lorenz variants, scored against the true rates.

What a reviewer checks of a baseline: that it does not copy spikes (a held-in bits/spike above the true
rates' is overfitting, not skill) and that its rates are good (GPFA's rate R2 above smoothing's on smooth
dynamics). GPFA's held-in rates are left-neuron-out (out of sample); smoothing's are in sample
(each neuron's own smoothed spikes). Data sets: those of ``benchmarks/defaults.py``.

One JSON line per (data set, method): ``dataset``, ``method``, ``seconds`` (fit and predict, both splits),
``heldin_bps`` and ``true_heldin_bps`` (the true rates' on the same spikes), ``in_sample``, ``rate_r2``,
and for GPFA ``n_latents`` (chosen by cross-validation), ``cv_error`` (leave-neuron-out error per held-out trial for
each candidate) and ``timescales_bins``.

Run alone (timings): python benchmarks/baselines.py [--datasets lorenz_50x20ms,lorenz_low_rate,lorenz_high_rate]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from defaults import LORENZ, make_dataset  # noqa: E402

from pyro_lfads.evaluation.baselines import SmoothingBaseline  # noqa: E402
from pyro_lfads.evaluation.gpfa_baseline import GPFABaseline  # noqa: E402
from pyro_lfads.evaluation.nlb_figures import score_rates  # noqa: E402
from pyro_lfads.evaluation.table import is_in_sample  # noqa: E402

DEFAULT_DATASETS = ("lorenz_50x20ms", "lorenz_low_rate", "lorenz_high_rate")


def score_baseline(name: str, method: str) -> dict:
    """Fit ``method`` ("smoothing" or "gpfa") on data set ``name``'s training trials; score its validation rates."""
    dataset = make_dataset(name)
    truth = score_rates(dataset, dataset.truth_counts("train"), dataset.truth_counts("valid"))
    start = time.perf_counter()
    model = (SmoothingBaseline() if method == "smoothing" else GPFABaseline()).fit(dataset.train.encod_data)
    scores = score_rates(dataset, model.predict(dataset.train.encod_data), model.predict(dataset.valid.encod_data))
    line = {"dataset": name, "method": method, "seconds": round(time.perf_counter() - start, 1),
            "heldin_bps": scores["heldin_bps"], "true_heldin_bps": truth["heldin_bps"],
            "in_sample": is_in_sample(method, "heldin_bps"), "rate_r2": scores["rate_r2"]}
    if method == "gpfa":
        line.update(n_latents=model.n_latents_, cv_error=model.selection_scores_,
                    timescales_bins=[round(float(tau), 2) for tau in model.gpfa_.tau_])
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS),
                        help=f"comma-separated, of {', '.join(LORENZ)}")
    args = parser.parse_args()
    names = args.datasets.split(",")
    unknown = [name for name in names if name not in LORENZ]
    if unknown:
        parser.error(f"--datasets: {', '.join(unknown)} not among {', '.join(LORENZ)}")
    for name in names:
        for method in ("smoothing", "gpfa"):
            print(json.dumps(score_baseline(name, method)), flush=True)


if __name__ == "__main__":
    main()
