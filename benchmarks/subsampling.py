"""LFADS, smoothing and GPFA on random subsets of the recorded neurons (the paper's Fig. 2b).

For each neuron count, ``--draws`` random subsets of the neurons (one when the count is all of them) are
cut out of a data set, and each method is fitted on the subset alone, as a new user would fit it:

- ``lorenz``: ``benchmarks/defaults.py``'s ``lorenz_50x20ms`` (1300 trials, 50 bins of 20 ms, 30 neurons,
  about 8 spikes/s); figure: ``rate_r2``, the R2 of the validation rates against the true rates of the
  subset's neurons.
- ``m1``: the real M1 recording (``../shared/data/m1_stevenson_2011.mat``, 171 units, windows of 1 s; see
  ``benchmarks/defaults.py``), skipped with a message when absent; figure: ``velocity_r2``, a ridge decoder
  of hand velocity from the subset's rates, fitted on training windows, R2 on validation windows.

LFADS: ``pyro-lfads fit`` with no config, then ``pyro-lfads posterior``. Smoothing and GPFA: the NLB
baselines fitted on the training trials (:func:`pyro_lfads.evaluation.nlb_figures.baseline_rates`; GPFA's
latent dimension by cross-validation among those no larger than the neuron count, its rates
left-neuron-out: read from all the neurons' latents, they follow each neuron's noise through the latents of
one-bin timescales and scored rate R2 0.27 against 0.92 on the 30 neurons, -0.46 against 0.43 on 5).

One JSON line per fit: ``data``, ``method``, ``neurons``, ``draw``, ``rate_r2`` or ``velocity_r2``,
``seconds``. Then one line per data set: ``data``, ``summary``: for each neuron count, each method's mean
figure over draws and ``lfads_margin`` (LFADS's mean minus smoothing's). The figure (``--figure``, PNG)
draws every fit and the means against the neuron count.

Run: python benchmarks/subsampling.py [--data lorenz,m1] [--lorenz-counts 5,10,20,30]
     [--m1-counts 10,30,90,171] [--draws 2] [--methods lfads,smoothing,gpfa] [--figure subsampling.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from defaults import fit_and_score, make_dataset  # noqa: E402

from pyro_lfads.data import LFADSDataset, save_dataset  # noqa: E402
from pyro_lfads.evaluation.nlb_figures import baseline_rates, score_rates  # noqa: E402

#: data name -> (panel data set of benchmarks/defaults.py, figure, figure's key in score_rates)
DATA = {"lorenz": ("lorenz_50x20ms", "rate_r2", "rate_r2"), "m1": ("m1_stevenson", "velocity_r2", "vel_r2")}
METHODS = ("lfads", "smoothing", "gpfa")


def neuron_subset(dataset: LFADSDataset, neurons: np.ndarray) -> LFADSDataset:
    """``dataset`` with only ``neurons`` (indices into the neuron axis) in its spikes and true rates; a data set
    whose encoders read every neuron (encod_data's neurons are recon_data's)."""
    def cut(split):
        truth = None if split.truth is None else split.truth[..., neurons]
        return replace(split, encod_data=split.encod_data[..., neurons], recon_data=split.recon_data[..., neurons],
                       truth=truth)

    return replace(dataset, train=cut(dataset.train), valid=cut(dataset.valid))


def fit_method(method: str, dataset: LFADSDataset, work: Path, key: str) -> tuple[float, float]:
    """(figure ``key`` of score_rates, seconds) of ``method`` fitted on ``dataset``."""
    start = time.perf_counter()
    if method == "lfads":
        save_dataset(dataset, work / "data.h5")
        result = fit_and_score(dataset, work / "data.h5", work / "run", None)
        value = result["rate_r2" if key == "rate_r2" else "velocity_r2"]
    else:
        value = score_rates(dataset, *baseline_rates(method, dataset))[key]
    return float(value), time.perf_counter() - start


def summarise(rows: list[dict], figure: str) -> dict:
    """{neuron count: {method: mean figure over draws, "lfads_margin": LFADS's minus smoothing's}}."""
    values = defaultdict(lambda: defaultdict(list))
    for row in rows:
        values[row["neurons"]][row["method"]].append(row[figure])
    summary = {}
    for count, by_method in sorted(values.items()):
        means = {method: round(float(np.mean(v)), 4) for method, v in by_method.items()}
        if "lfads" in means and "smoothing" in means:
            means["lfads_margin"] = round(means["lfads"] - means["smoothing"], 4)
        summary[str(count)] = means
    return summary


def draw_figure(results: dict[str, list[dict]], path: Path) -> None:
    """One panel per data set: every fit's figure (dots) and the mean over draws (lines) against neurons."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], results.items()):
        figure = DATA[name][1]
        for method in METHODS:
            mine = [row for row in rows if row["method"] == method]
            if not mine:
                continue
            counts = sorted({row["neurons"] for row in mine})
            means = [np.mean([row[figure] for row in mine if row["neurons"] == c]) for c in counts]
            line, = ax.plot(counts, means, marker="o", label=method)
            ax.scatter([row["neurons"] for row in mine], [row[figure] for row in mine], s=12, alpha=0.5,
                       color=line.get_color())
        ax.set(xlabel="neurons in the subset", ylabel=figure.replace("_", " "), title=name, xscale="log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def counts_of(text: str, n_neurons: int, parser: argparse.ArgumentParser) -> list[int]:
    """The neuron counts of a comma-separated list, each between 1 and the data's neurons."""
    counts = [int(part) for part in text.split(",") if part]
    if any(not 1 <= count <= n_neurons for count in counts):
        parser.error(f"neuron counts {counts}: each must be between 1 and the data's {n_neurons}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=",".join(DATA), help=f"comma-separated, of {', '.join(DATA)}")
    parser.add_argument("--lorenz-counts", default="5,10,20,30", help="neuron counts on Lorenz (of 30)")
    parser.add_argument("--m1-counts", default="10,30,90,171", help="neuron counts on M1 (of 171)")
    parser.add_argument("--draws", type=int, default=2, help="random subsets per count below all (default 2)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--seed", type=int, default=0, help="seeds the subsets (draw d uses seed + d)")
    parser.add_argument("--figure", type=Path, default=Path("subsampling.png"), help="the PNG to write")
    args = parser.parse_args()
    names, methods = args.data.split(","), args.methods.split(",")
    if set(names) - set(DATA) or set(methods) - set(METHODS):
        parser.error(f"--data of {', '.join(DATA)}; --methods of {', '.join(METHODS)}")
    if args.draws < 1:
        parser.error("--draws must be at least 1")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            panel_name, figure, key = DATA[name]
            dataset = make_dataset(panel_name)
            if dataset is None:
                continue
            total = dataset.train.n_neurons
            counts = counts_of(getattr(args, f"{name}_counts"), total, parser)
            rows = []
            for count in counts:
                for draw in range(1 if count == total else args.draws):
                    rng = np.random.default_rng(args.seed + draw)
                    neurons = np.sort(rng.choice(total, size=count, replace=False))
                    subset = neuron_subset(dataset, neurons)
                    for method in methods:
                        work = Path(tmp) / f"{name}_{count}_{draw}_{method}"
                        work.mkdir()
                        value, seconds = fit_method(method, subset, work, key)
                        row = {"data": name, "method": method, "neurons": count, "draw": draw,
                               figure: round(value, 4), "seconds": round(seconds, 1)}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
            results[name] = rows
            print(json.dumps({"data": name, "summary": summarise(rows, figure)}), flush=True)
    if results:
        draw_figure(results, args.figure)
        print(f"subsampling: figure written to {args.figure}", file=sys.stderr)


if __name__ == "__main__":
    main()
