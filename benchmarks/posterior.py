"""Seconds and peak memory of posterior averaging (S samples per trial), default configuration, and the
seconds of the same draws through Pyro's own ``Predictive``.

For each trial count, a fresh process builds the default model and guide
(30 neurons, 100 bins, one inferred input; weights as initialised: the cost
does not depend on them), runs :func:`pyro_lfads.fitting.posterior.posterior_chunks`
over all trials (chunks of at most ``--max-rows`` trial-samples; each chunk one pass
of ``pyro_lfads.predictive``'s forward: one guide trace, one model replay) and keeps
the averages in memory as ``write_posterior`` streams them to disk. Then, on the same
chunks and sites (g0, u, generator states, factors, rates), the mean and standard
deviation over samples of the draws of

- ``predictive_seconds``: plain ``pyro.infer.Predictive(model, guide=guide, num_samples=S)``,
  sequential (it runs guide and model S + 2 times per chunk);
- ``parallel_predictive_seconds``: ``pyro_lfads.predictive(..., parallel=True)``, Pyro's
  plate-vectorised forward (three runs of each per chunk).

One JSON line per trial count:

    {"trials", "samples", "seconds", "seconds_per_1000_trials", "peak_mb", "threads", "max_rows", "device",
     "predictive_seconds", "parallel_predictive_seconds"}

``peak_mb`` is the peak resident memory of that process during ``seconds`` (measured before the
``Predictive`` timings); with chunking it should not grow with the number of trials beyond the outputs
themselves.

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
from pyro.infer import Predictive

import pyro_lfads
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.fitting.batch import trial_chunks
from pyro_lfads.fitting.posterior import posterior_chunks
from pyro_lfads.fitting.run import RunInfo, build_model_and_guide

N_NEURONS, N_TIME = 30, 100
SITES = ["g0", "u", "gen_states", "factors", "rates"]


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
    result = {"trials": n_trials, "samples": samples, "seconds": round(seconds, 2),
              "seconds_per_1000_trials": round(1000 * seconds / n_trials, 2), "peak_mb": round(peak, 1),
              "threads": torch.get_num_threads(), "max_rows": max_rows, "device": device}
    predictives = {"predictive_seconds": Predictive(model, guide=guide, num_samples=samples, return_sites=SITES),
                   "parallel_predictive_seconds": pyro_lfads.predictive((model, guide), samples, return_sites=SITES,
                                                                        parallel=True)}
    for key, predictive in predictives.items():
        result[key] = round(time_predictive(predictive, split, samples, device, max_rows), 2)
    return result


def time_predictive(predictive, split: Split, samples: int, device: str, max_rows: int) -> float:
    """Seconds to draw with ``predictive`` on posterior_chunks's chunks and average the draws of every site."""
    start = time.perf_counter()
    for _, batch in trial_chunks(split, max_rows=max(1, max_rows // samples), device=device):
        draws = predictive(batch, 1.0)  # {site: (S, chunk trials, ...)}
        averages = {site: (values.mean(0).cpu(), values.std(0, correction=0).cpu()) for site, values in draws.items()}
        assert set(averages) == set(SITES)
    return time.perf_counter() - start


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
