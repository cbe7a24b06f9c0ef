"""Recovery of the true signal by each observation model, on its own synthetic data.

Prints one JSON line per fit:
    {"likelihood": ..., "data": ..., "recovery_r2": ..., "raw_r2": ...,
     "elbo_per_trial": ..., "epochs": ..., "seconds": ...}
recovery_r2 is the pooled R2, on validation trials, of the posterior-mean
rates (the mean signal for Gaussian and Gamma) against the truth after each
neuron's estimate is mapped to the truth by a linear regression fitted on the
training trials. That is the identifiable part: in the calcium model, a
neuron's gain and rate scale (and its baseline and rate offset) trade off
exactly, so its rates are only defined up to such a map; the Gaussian model
of calcium traces returns fluorescence, on another scale. raw_r2 is the R2
without the map (what ``pyro-lfads evaluate`` reports as rate_r2). Two extra
fits compare models on the same data: Poisson on over-dispersed counts, and
the Gaussian model on calcium traces. elbo_per_trial is the held-out ELBO per
trial (nats), comparable between models of the same data.

Run: python benchmarks/likelihoods.py [--epochs 200] [--only calcium,zig] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LinearRegression

import pyro_lfads
from pyro_lfads.evaluation.metrics import rate_r2
from pyro_lfads.synthetic.calcium import make_calcium_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

# (model likelihood, data kind): each model on its own data, and each comparison next to its reference
CASES = [("calcium", "calcium"), ("gaussian", "calcium"), ("negbinom", "negbinom"), ("poisson", "negbinom"),
         ("poisson", "poisson"), ("gaussian", "gaussian"), ("gamma", "gamma"), ("zig", "zig")]
CALCIUM_TAU_FRAMES = 0.4 / 0.03  # GCaMP6f-like decay at 33 Hz imaging, as the simulation uses


def make_data(kind: str):
    if kind == "calcium":
        return make_calcium_dataset(seed=0)
    return make_lorenz_dataset(seed=0, likelihood=kind)


def affine_r2(dataset, run_dir: Path) -> float:
    """R2 on valid after a per-neuron linear map from estimate to truth fitted on train."""
    estimates = {s: pyro_lfads.read_posterior(run_dir, s)["output_params"] for s in ("train", "valid")}
    truth = {s: dataset.truth_counts(s) for s in ("train", "valid")}
    mapped = np.empty_like(truth["valid"])
    for n in range(mapped.shape[-1]):
        fit = LinearRegression().fit(estimates["train"][..., n].reshape(-1, 1), truth["train"][..., n].ravel())
        mapped[..., n] = fit.predict(estimates["valid"][..., n].reshape(-1, 1)).reshape(mapped.shape[:2])
    return rate_r2(truth["valid"], mapped)


def run_case(likelihood: str, kind: str, epochs: int, out: Path) -> dict:
    dataset = make_data(kind)
    config = pyro_lfads.LFADSConfig(likelihood=likelihood, co_dim=0, max_epochs=epochs,
                                    kl_ramp_steps=min(2000, 5 * epochs), calcium_tau_init=CALCIUM_TAU_FRAMES)
    run_dir = out / f"{likelihood}_on_{kind}"
    start = time.perf_counter()
    pyro_lfads.fit(dataset, config, run_dir, overwrite=True, progress=False)
    pyro_lfads.write_posterior(run_dir, dataset, progress=False)
    result = pyro_lfads.evaluate_run(run_dir, dataset, baselines=())["lfads"]
    return {"likelihood": likelihood, "data": kind, "recovery_r2": affine_r2(dataset, run_dir),
            "raw_r2": result["rate_r2"], "elbo_per_trial": result["elbo_per_trial"],
            "epochs": epochs, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--only", default="", help="comma-separated data kinds to run (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        for likelihood, kind in CASES:
            if not only or kind in only:
                print(json.dumps(run_case(likelihood, kind, args.epochs, out)), flush=True)


if __name__ == "__main__":
    main()
