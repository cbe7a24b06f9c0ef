"""Recovery of the true signal by each observation model, on its own synthetic data.

Prints one JSON line per fit:
    {"likelihood": ..., "data": ..., "recovery_r2": ..., "recovery_r2_affine": ...,
     "elbo_per_trial": ..., "epochs": ..., "seconds": ...}
recovery_r2 is the pooled R2 of the posterior-mean rates (mean signal for
Gaussian/Gamma) against the truth on validation trials; recovery_r2_affine
first maps each neuron's estimate to the truth by a linear regression fitted
on the training trials (fair when an estimate lives on another scale, as the
Gaussian model's fluorescence does next to spike rates). Two extra fits
compare models on the same data: Poisson on over-dispersed counts, and the
Gaussian model on calcium traces. elbo_per_trial is the held-out ELBO.

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
from pyro_lfads.metrics import rate_r2
from pyro_lfads.synthetic.calcium import make_calcium_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

# (model likelihood, data kind); the first six are each model on its own data
CASES = [("poisson", "poisson"), ("negbinom", "negbinom"), ("gaussian", "gaussian"), ("gamma", "gamma"),
         ("zig", "zig"), ("calcium", "calcium"), ("poisson", "negbinom"), ("gaussian", "calcium")]
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
    result = pyro_lfads.evaluate_run(run_dir, dataset)
    return {"likelihood": likelihood, "data": kind, "recovery_r2": result["rate_r2"],
            "recovery_r2_affine": affine_r2(dataset, run_dir), "elbo_per_trial": result["elbo_per_trial"],
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
