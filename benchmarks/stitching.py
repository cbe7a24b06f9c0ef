"""Stitching against single-session models (Methods 1.8, Fig. 5 of the paper), on Lorenz data.

S sessions (:mod:`pyro_lfads.synthetic.multisession`, default 5 of 20 to 36
neurons) record the same 20 Lorenz conditions of 50 bins, each with its own
neurons; one trial per condition and session is held out for validation.
For each number of trials per condition, one stitched model is fitted on all
sessions and one single-session model on each, with the same configuration
and epochs; their validation trials are scored against the truth. One JSON
line per trials-per-condition setting:

    {"sessions", "trials_per_condition", "trials_per_session", "epochs",
     "stitched_rate_r2", "single_rate_r2",       rate R2, averaged over sessions
     "stitched_latent_r2", "single_latent_r2",   cross-validated linear decoding of the
                                                 true Lorenz state from the factors
     "stitched_consistency_r2", "single_consistency_r2",
     "stitched_seconds", "single_seconds"}

Latent decoding (``metrics.cross_validated_r2``, folds by trial) uses the
posterior mean factors of the validation trials: for the stitched model one
decoder over all sessions' trials together (as the paper does), for the single
models one decoder per session, R2 averaged. ``*_consistency_r2`` is
``metrics.cross_session_consistency`` of the condition-averaged factors: how
far the sessions agree on each condition's trajectory (single-session models
have unrelated factor spaces, so theirs are first aligned to session 0's by
least squares; stitched ones are compared as they are).

With ``--out DIR`` the runs are kept and ``DIR/trials{N}/factors_by_session.png``
shows the stitched model's condition-averaged factors (train and validation
trials) of every session.

Run: python benchmarks/stitching.py [--trials 2,5] [--epochs 150] [--out DIR]
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
from pyro_lfads.evaluation.metrics import cross_session_consistency, cross_validated_r2, rate_r2
from pyro_lfads.diagnostics.rate_figures import plot_session_factors
from pyro_lfads.synthetic.multisession import DEFAULT_NEURONS, make_multisession_datasets

N_CONDITIONS = 20
N_TIME = 50



def condition_means(factors: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """(conditions, T, F) averages of (trials, T, F) factors over each condition's trials."""
    return np.stack([factors[conditions == c].mean(axis=0) for c in range(N_CONDITIONS)])


def align_to(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` (C, T, F) mapped onto ``reference``'s factor space by least squares."""
    flat = other.reshape(-1, other.shape[-1])
    fitted = LinearRegression().fit(flat, reference.reshape(-1, reference.shape[-1])).predict(flat)
    return fitted.reshape(reference.shape)


def scores(posteriors: list[dict], sessions: list, stitched: bool) -> dict:
    rate = np.mean([rate_r2(d.truth_counts("valid"), p["output_params"]) for d, p in zip(sessions, posteriors)])
    latents = [d.extras["valid_latents"] for d in sessions]
    factors = [p["factors"] for p in posteriors]
    if stitched:
        latent = cross_validated_r2(np.concatenate(factors), np.concatenate(latents))
    else:
        latent = float(np.mean([cross_validated_r2(f, z) for f, z in zip(factors, latents)]))
    means = [condition_means(f, d.extras["valid_conditions"]) for f, d in zip(factors, sessions)]
    if not stitched:
        means = [means[0]] + [align_to(means[0], m) for m in means[1:]]
    return {"rate_r2": float(rate), "latent_r2": latent, "consistency_r2": cross_session_consistency(means),
            "condition_factors": means}


def plot_factors_by_session(run_dir: Path, sessions: list, path: Path) -> None:
    """The stitched model's condition-averaged factors of all trials of every session, in one PC plane."""
    means = []
    for k, dataset in enumerate(sessions):
        factors = np.concatenate([pyro_lfads.read_posterior(run_dir, split, session=k)["factors"]
                                  for split in ("train", "valid")])
        conditions = np.concatenate([dataset.extras["train_conditions"], dataset.extras["valid_conditions"]])
        means.append(condition_means(factors, conditions))
    plot_session_factors(means, path)


def fit(data, config, run_dir: Path, device: str) -> float:
    start = time.perf_counter()
    pyro_lfads.fit(data, config, run_dir, device=device, overwrite=True, progress=False)
    pyro_lfads.write_posterior(run_dir, data, device=device, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default="2,5", help="trials per condition and session, comma-separated")
    parser.add_argument("--sessions", type=int, default=len(DEFAULT_NEURONS))
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep runs and the figure here")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    neurons = [20 + 4 * (k % 5) for k in range(args.sessions)]
    config = pyro_lfads.LFADSConfig(co_dim=0, fac_dim=8, batch_size=16, kl_ramp_steps=200,
                                    max_epochs=args.epochs, posterior_samples=20, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for trials in (int(t) for t in args.trials.split(",")):
            sessions = make_multisession_datasets(seed=args.seed, neurons=neurons, n_conditions=N_CONDITIONS,
                                                  trials_per_condition=trials, n_time=N_TIME,
                                                  train_fraction=(trials - 1) / trials)
            stitched_dir = root / f"trials{trials}" / "stitched"
            stitched_seconds = fit(sessions, config, stitched_dir, args.device)
            stitched = scores([pyro_lfads.read_posterior(stitched_dir, "valid", session=k)
                               for k in range(len(sessions))], sessions, stitched=True)
            single_seconds, single_posteriors = 0.0, []
            for k, dataset in enumerate(sessions):
                run_dir = root / f"trials{trials}" / f"single{k}"
                single_seconds += fit(dataset, config, run_dir, args.device)
                single_posteriors.append(pyro_lfads.read_posterior(run_dir, "valid"))
            single = scores(single_posteriors, sessions, stitched=False)
            if args.out is not None:
                plot_factors_by_session(stitched_dir, sessions, root / f"trials{trials}" / "factors_by_session.png")
            print(json.dumps({"sessions": len(sessions), "trials_per_condition": trials,
                              "trials_per_session": sessions[0].train.n_trials + sessions[0].valid.n_trials,
                              "epochs": args.epochs,
                              **{f"stitched_{k}": v for k, v in stitched.items() if k != "condition_factors"},
                              **{f"single_{k}": v for k, v in single.items() if k != "condition_factors"},
                              "stitched_seconds": round(stitched_seconds, 1),
                              "single_seconds": round(single_seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
