"""Seconds and peak memory of posterior averaging (``Predictive``, S samples per trial), default configuration.

For each trial count, a fresh process builds the default model and guide
(30 neurons, 100 bins, one inferred input; weights as initialised: the cost
does not depend on them), runs :func:`pyro_lfads.fitting.posterior.posterior_chunks`
over all trials (chunks of at most ``--max-rows`` trial-samples) and keeps the
averages in memory as ``write_posterior`` streams them to disk. One JSON line
per trial count:

    {"trials", "samples", "seconds", "seconds_per_1000_trials", "peak_mb", "threads", "max_rows"}

``peak_mb`` is the peak resident memory of that process; with chunking it
should not grow with the number of trials beyond the outputs themselves.

Run: python benchmarks/posterior.py [--trials 1000,2000,4000] [--samples 50] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pyro
import torch

from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.fitting.posterior import posterior_chunks
from pyro_lfads.fitting.run import RunInfo, build_model_and_guide

N_NEURONS, N_TIME = 30, 100


def measure(n_trials: int, samples: int, device: str, max_rows: int) -> dict:
    config = LFADSConfig()
    counts = np.random.default_rng(0).poisson(0.1, size=(n_trials, N_TIME, N_NEURONS)).astype(np.float32)
    split = Split(counts, counts)
    dataset = LFADSDataset(split, split)
    pyro.set_rng_seed(0)
    model, guide = build_model_and_guide(config, RunInfo.describe(dataset, config))
    model.to(device).eval()
    guide.to(device).eval()
    start = time.perf_counter()
    kept = 0
    for trials, arrays in posterior_chunks(model, guide, split, samples=samples, device=device, max_rows=max_rows):
        kept += arrays["output_params"].shape[0]
    seconds = time.perf_counter() - start
    assert kept == n_trials
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"trials": n_trials, "samples": samples, "seconds": round(seconds, 2),
            "seconds_per_1000_trials": round(1000 * seconds / n_trials, 2), "peak_mb": round(peak, 1),
            "threads": torch.get_num_threads(), "max_rows": max_rows, "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default="1000,2000,4000")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--max-rows", type=int, default=4096)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # run one count in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(int(args.trials), args.samples, args.device, args.max_rows)), flush=True)
        return
    for n_trials in args.trials.split(","):
        subprocess.run([sys.executable, __file__, "--one", "--trials", n_trials, "--samples", str(args.samples),
                        "--max-rows", str(args.max_rows), "--device", args.device], check=True)


if __name__ == "__main__":
    main()
