"""The Neural Latents Benchmark figures of LFADS, smoothing and GPFA on the synthetic NLB-shaped set.

The data (``pyro_lfads.synthetic.lorenz_nlb``, seed 0): the paper's Lorenz
system, 65 conditions x 20 trials (1040 train, 260 valid), 30 held-in and 10
held-out Poisson neurons, 80 observed and 20 forward-prediction bins of 10 ms,
and a 2-D behaviour that reads the Lorenz state 5 bins earlier plus noise.
LFADS is fitted without inferred inputs (the Lorenz system is autonomous),
120 epochs (9 steps each) with a 600-step KL ramp;
all three methods are scored by ``pyro_lfads.evaluate_run`` with a decoder
lag of 5 bins. Prints one JSON line per method:

    {"method": "lfads" | "smoothing" | "gpfa", "co_bps": ..., "fp_bps": ...,
     "vel_r2": ..., "psth_r2": ..., "heldin_bps": ..., "rate_r2": ..., ...}

and, last, the bits/spike and rate R2 of the true rates (the ceiling).

Run: python benchmarks/nlb_synthetic.py [--epochs 120] [--out DIR] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyro_lfads
from pyro_lfads.evaluation.nlb_figures import score_rates
from pyro_lfads.synthetic.lorenz_nlb import make_nlb_lorenz_dataset

BEHAVIOR_LAG_BINS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--out", type=Path, default=None, help="keep the run here (default: a temporary folder)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dataset = make_nlb_lorenz_dataset(seed=0, behavior_lag_bins=BEHAVIOR_LAG_BINS)
    config = pyro_lfads.LFADSConfig(co_dim=0, max_epochs=args.epochs, kl_ramp_steps=600)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = (args.out or Path(tmp)) / "lfads"
        start = time.perf_counter()
        # a finished run already in --out is reused (fit resumes it, with nothing left to do)
        pyro_lfads.fit(dataset, config, run_dir, device=args.device, progress=False)
        pyro_lfads.write_posterior(run_dir, dataset, device=args.device, progress=False)
        fit_seconds = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        result = pyro_lfads.evaluate_run(run_dir, dataset, lag_bins=BEHAVIOR_LAG_BINS)
        score_seconds = round(time.perf_counter() - start, 1)
    for method, figures in result.items():
        extra = {"epochs": args.epochs, "fit_seconds": fit_seconds} if method == "lfads" else {}
        print(json.dumps({"method": method, **figures, **extra}), flush=True)
    truth = {split: dataset.truth_counts(split) for split in ("train", "valid")}
    ceiling = score_rates(dataset, truth["train"], truth["valid"], lag_bins=BEHAVIOR_LAG_BINS)
    print(json.dumps({"method": "true_rates", **ceiling, "score_seconds": score_seconds}), flush=True)


if __name__ == "__main__":
    main()
