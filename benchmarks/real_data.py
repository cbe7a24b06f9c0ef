"""LFADS on a real continuous recording, windows merged back, against smoothing and GPFA.

The recording: ``../shared/data/m1_stevenson_2011.mat`` (Stevenson et al. 2011, macaque M1, 171 units in
50 ms bins, 13 minutes of continuous 2-D reaching; hand velocity x and y), skipped with a message when absent.
Every fifth neuron is held out (34 of 171: the encoders read 137). The recording is cut into overlapping
windows (:func:`pyro_lfads.data.continuous.continuous_dataset`: ``--window-bins``, ``--overlap-bins``;
every fifth block of ``--block-windows`` consecutive windows is for validation), which go through what a new
user runs: ``pyro-lfads fit DATA --out RUN`` (no config: the defaults) and ``pyro-lfads posterior RUN``,
whose ``continuous_output_params`` is the merged series. The NLB baselines (smoothing, GPFA; held-out
neurons through Poisson GLMs fitted on the training windows) are fitted on the same windows and their rates
merged the same way.

Scores, on the merged series: bins only validation windows hold are the held-out stretches (seams between
training and validation windows count for neither side).

- ``velocity_r2``: a ridge decoder of hand velocity from the merged rates of all 171 neurons, fitted on the
  training bins (penalty by 5 contiguous folds over time), R2 on the held-out stretches
  (:mod:`pyro_lfads.evaluation.continuous_decoding`);
- ``co_bps``: bits/spike of the held-out neurons' merged rates on the held-out stretches (NLB co-smoothing).

One JSON line per method: ``method``, ``velocity_r2``, ``co_bps``, ``fit_seconds`` (LFADS: the fit command's
wall time, start-up included; baselines: fit and predict), and for LFADS ``epochs`` and ``posterior_seconds``.

Run: python benchmarks/real_data.py [--data FILE] [--window-bins 40] [--overlap-bins 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pyro_lfads.data import save_dataset
from pyro_lfads.data.continuous import continuous_dataset, merge_splits, split_bins
from pyro_lfads.data.continuous_files import read_continuous
from pyro_lfads.evaluation.continuous_decoding import continuous_r2, fit_continuous_decoder
from pyro_lfads.evaluation.metrics import co_bps
from pyro_lfads.evaluation.nlb_figures import baseline_rates
from pyro_lfads.fitting.posterior import read_posterior
from pyro_lfads.fitting.run import read_training_curve

M1_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "m1_stevenson_2011.mat"
HELDOUT_EVERY = 5
METHODS = ("lfads", "smoothing", "gpfa")


def pyro_lfads(*args: str) -> float:
    """Run the ``pyro-lfads`` command; returns its wall time in seconds (raises on failure)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pyro_lfads.cli", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def scores(dataset, rates: np.ndarray, spikes: np.ndarray, behavior: np.ndarray, lag_bins: int) -> dict:
    """velocity_r2 and co_bps of merged ``rates`` (bins, neurons) against the merged ``spikes`` and
    ``behavior`` (bins, 2), on the held-out stretches."""
    train_bins, valid_bins = split_bins(dataset)
    decoder = fit_continuous_decoder(rates, behavior, train_bins, lag_bins=lag_bins)
    n_heldin = dataset.train.encod_data.shape[2]
    heldout_rates, heldout_spikes = rates[valid_bins, n_heldin:], spikes[valid_bins, n_heldin:]
    return {"velocity_r2": round(continuous_r2(decoder, rates, behavior, valid_bins, lag_bins=lag_bins), 4),
            "co_bps": round(co_bps(heldout_rates[None], heldout_spikes[None]), 4)}


def fit_lfads(data_path: Path, run_dir: Path) -> tuple[np.ndarray, dict]:
    """Merged LFADS rates (bins, neurons) of a default fit, and its timings."""
    fit_seconds = pyro_lfads("fit", str(data_path), "--out", str(run_dir), "--quiet", "--overwrite")
    posterior_seconds = pyro_lfads("posterior", str(run_dir), "--quiet")
    curve = read_training_curve(run_dir)
    rates = read_posterior(run_dir, "continuous")["output_params"]
    return rates, {"fit_seconds": round(fit_seconds, 1), "epochs": curve[-1]["epoch"],
                   "stop_reason": curve[-1]["stop_reason"], "posterior_seconds": round(posterior_seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=M1_FILE, help=f"the recording (default {M1_FILE})")
    parser.add_argument("--window-bins", type=int, default=40, help="bins per window (default 40: 2 s)")
    parser.add_argument("--overlap-bins", type=int, default=10, help="bins consecutive windows share (default 10)")
    parser.add_argument("--block-windows", type=int, default=4,
                        help="consecutive windows per block; every fifth block is held out (default 4)")
    parser.add_argument("--lag-bins", type=int, default=0, help="velocity at t decoded from rates at t - LAG")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"subset of {','.join(METHODS)}")
    parser.add_argument("--out", type=Path, help="keep the data file and the run here (default: a temporary folder)")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"real_data: skipped, {args.data} is absent", file=sys.stderr)
        return
    spikes, velocity = read_continuous(args.data, "spikes", "handVel", behavior_dims=[0, 1], transpose=True)
    heldout = np.arange(spikes.shape[1])[HELDOUT_EVERY - 1::HELDOUT_EVERY]
    dataset = continuous_dataset(spikes, args.window_bins, args.overlap_bins, behavior=velocity,
                                 heldout_neurons=heldout, block_windows=args.block_windows, source=str(args.data))
    merged_spikes = merge_splits(dataset, dataset.train.recon_data, dataset.valid.recon_data)
    merged_velocity = merge_splits(dataset, dataset.extras["train_behavior"], dataset.extras["valid_behavior"])
    train_bins, valid_bins = split_bins(dataset)
    print(json.dumps({"recording": args.data.name, "bins": int(spikes.shape[0]), "neurons": int(spikes.shape[1]),
                      "heldout_neurons": int(heldout.size), "train_windows": dataset.train.n_trials,
                      "valid_windows": dataset.valid.n_trials, "window_bins": args.window_bins,
                      "overlap_bins": args.overlap_bins, "train_bins": int(train_bins.sum()),
                      "heldout_bins": int(valid_bins.sum())}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        data_path = out / "m1_windows.h5"
        save_dataset(dataset, data_path)
        for method in args.methods.split(","):
            if method == "lfads":
                rates, extra = fit_lfads(data_path, out / "run")
            else:
                start = time.perf_counter()
                rates = merge_splits(dataset, *baseline_rates(method, dataset))
                extra = {"fit_seconds": round(time.perf_counter() - start, 1)}
            row = {"method": method, **scores(dataset, rates, merged_spikes, merged_velocity, args.lag_bins), **extra}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
