"""Inferred inputs against the truth: the paper's chaotic-RNN, pulse and integrate-to-bound experiments.

For each experiment, LFADS is fitted twice on the same data, with one inferred
input (``controller: true``, co_dim 1) and without (co_dim 0), and its
validation trials are scored against the ground truth. One JSON line per fit:

    {"experiment", "gamma", "controller", "conditions", "trials", "epochs", "seconds",
     "rate_r2",                                                 every experiment
     "pulse_median_abs_error_ms", "pulse_fraction_within_50ms", pulses, with a controller
     "embedding_knn_accuracy", "embedding_chance_accuracy",     pulses with unpulsed trials
     "embedding_silhouette",                                    (--pulse-fraction below 1), with a controller
     "input_r2", "input_r2_supervised_ridge"}                   integrate-to-bound, with a controller

``rate_r2`` is the R2 of the posterior mean rates against the true rates.
Pulse timing compares the bin where the inferred input departs most from its
median with the true pulse time; ``input_r2`` allows a fitted sign, scale and
offset between the inferred and the true input (:mod:`pyro_lfads.evaluation.metrics`);
``input_r2_supervised_ridge`` is what a ridge decoder *trained on the true
inputs* recovers from the same validation spikes (cross-validated), a yardstick
for how much of the input the spikes carry. Pulse timing is scored on the pulsed
trials; with ``--pulse-fraction`` below 1 the others get no pulse, and the
validation trials' inferred inputs in the pulse window (bins ``EMBEDDING_WINDOW``)
are embedded by t-SNE (:mod:`pyro_lfads.analysis.input_embedding`, the paper's
Fig. 6) with labels pulsed / unpulsed: the leave-one-out 5-nearest-neighbour
accuracy against chance, and the 2-D silhouette.

Reduced sizes by default (the paper's with ``--paper-sizes``): chaotic RNN and
pulses 100 conditions x 10 trials (paper 400 x 10), integrate-to-bound 200
conditions x 5 trials (paper 800 x 5); 1 s trials of 100 bins, as the paper.

Everything else is the default configuration, but for batches of 64 trials,
an 800-step KL ramp (the default 2000 steps would outlast these shorter runs)
and, for integrate-to-bound, ``integrate_to_bound.FIT_CONFIG`` (a white input
prior, a KL weight of 0.3 on the inputs; EXPERIMENT_CONFIG);
``--config`` keys override those, the flags override ``--config``.

Run: python benchmarks/inputs.py [--experiments chaotic-rnn,pulses,integrate-to-bound]
         [--gammas 1.5,2.5] [--pulse-fraction 0.5] [--epochs 120] [--controller both|with|without] [--config YAML] [--out DIR] [--device cpu]
``--out`` keeps each experiment's data file and runs (``examples/inferred_inputs.py`` draws them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

import pyro_lfads
from pyro_lfads.analysis.input_embedding import embed_inputs
from pyro_lfads.data import save_dataset
from pyro_lfads.evaluation.metrics import input_r2, pulse_time_errors_ms, rate_r2
from pyro_lfads.fitting.run import read_training_curve
from pyro_lfads.synthetic.chaotic_rnn import make_chaotic_rnn_dataset, make_pulse_dataset
from pyro_lfads.synthetic.integrate_to_bound import FIT_CONFIG as ITB_FIT_CONFIG
from pyro_lfads.synthetic.integrate_to_bound import make_integrate_to_bound_dataset, supervised_input_r2

BIN_MS = 10.0
#: (reduced, paper) conditions of each experiment.
CONDITIONS = {"chaotic-rnn": (100, 400), "pulses": (100, 400), "integrate-to-bound": (200, 800)}
#: Config keys set for one experiment only: integrate-to-bound's, for its white-noise input.
EXPERIMENT_CONFIG = {"integrate-to-bound": ITB_FIT_CONFIG}
#: Bins of the inferred inputs the pulses embedding reads: the pulse window (250 to 750 ms) and 50 ms after.
EMBEDDING_WINDOW = (25, 81)


def make_dataset(experiment: str, gamma: float, n_conditions: int, seed: int, itb_neurons: int,
                 pulse_fraction: float = 1.0):
    if experiment == "chaotic-rnn":
        return make_chaotic_rnn_dataset(seed=seed, gamma=gamma, n_conditions=n_conditions)
    if experiment == "pulses":
        return make_pulse_dataset(seed=seed, gamma=gamma, n_conditions=n_conditions, pulse_fraction=pulse_fraction)
    return make_integrate_to_bound_dataset(seed=seed, n_conditions=n_conditions, n_neurons=itb_neurons)


def fit_and_score(dataset, experiment: str, controller: bool, run_dir: Path, config: pyro_lfads.LFADSConfig,
                  device: str) -> dict:
    """Fit one model, average its posterior, score the validation trials against the truth."""
    config = config.replace(co_dim=1 if controller else 0)
    start = time.perf_counter()
    pyro_lfads.fit(dataset, config, run_dir, device=device, overwrite=True, progress=False)
    pyro_lfads.write_posterior(run_dir, dataset, device=device, progress=False)
    seconds = time.perf_counter() - start
    posterior = pyro_lfads.read_posterior(run_dir, "valid")
    figures = {"epochs": len(read_training_curve(run_dir)), "seconds": round(seconds, 1),
               "rate_r2": rate_r2(dataset.truth_counts("valid"), posterior["output_params"])}
    if controller and experiment == "pulses":
        pulsed = dataset.extras["valid_pulsed"].astype(bool)
        errors = pulse_time_errors_ms(posterior["co_means"][pulsed], dataset.extras["valid_pulse_times_ms"][pulsed],
                                      BIN_MS)
        figures.update(pulse_median_abs_error_ms=float(np.median(errors)),
                       pulse_fraction_within_50ms=float(np.mean(errors <= 50.0)))
        if not pulsed.all():
            embedding = embed_inputs(posterior["co_means"], pulsed.astype(int), window=EMBEDDING_WINDOW)
            figures.update(embedding_knn_accuracy=embedding.knn_accuracy,
                           embedding_chance_accuracy=embedding.chance_accuracy,
                           embedding_silhouette=embedding.silhouette)
    if controller and experiment == "integrate-to-bound":
        figures["input_r2"] = input_r2(posterior["co_means"], dataset.extras["valid_inputs"])
        figures["input_r2_supervised_ridge"] = supervised_input_r2(dataset.valid.recon_data,
                                                                   dataset.extras["valid_inputs"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", default="chaotic-rnn,pulses,integrate-to-bound")
    parser.add_argument("--gammas", default="1.5,2.5", help="chaotic-rnn gammas (pulses use the first)")
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--kl-ramp-steps", type=int, default=800)
    parser.add_argument("--controller", choices=["both", "with", "without"], default="both")
    parser.add_argument("--paper-sizes", action="store_true")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML of config keys to start from (the flags here still apply on top)")
    parser.add_argument("--ic-enc-seq-len", type=int, default=None,
                        help="bins the initial-condition encoder reads (default: the whole trial)")
    parser.add_argument("--pulse-fraction", type=float, default=1.0,
                        help="pulses: the chance that a trial gets its pulse (default 1; below 1 adds the embedding)")
    parser.add_argument("--itb-neurons", type=int, default=50, help="integrate-to-bound neurons (paper: 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep data and runs here (default: temporary)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    gammas = [float(g) for g in args.gammas.split(",")]
    controllers = {"both": (True, False), "with": (True,), "without": (False,)}[args.controller]
    user_keys = yaml.safe_load(args.config.read_text()) if args.config else {}
    flags = dict(max_epochs=args.epochs, batch_size=args.batch_size, kl_ramp_steps=args.kl_ramp_steps,
                 ic_enc_seq_len=args.ic_enc_seq_len, posterior_samples=20)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for experiment in args.experiments.split(","):
            n_conditions = CONDITIONS[experiment][args.paper_sizes]
            for gamma in (gammas if experiment == "chaotic-rnn" else gammas[:1]):
                name = f"{experiment}-{gamma}" if experiment != "integrate-to-bound" else experiment
                dataset = make_dataset(experiment, gamma, n_conditions, args.seed, args.itb_neurons, args.pulse_fraction)
                (root / name).mkdir(parents=True, exist_ok=True)
                dataset.source = str(root / name / "data.h5")
                save_dataset(dataset, dataset.source)
                for controller in controllers:
                    run_dir = root / name / ("controller" if controller else "no_controller")
                    keys = {**EXPERIMENT_CONFIG.get(experiment, {}), **(user_keys or {}), **flags}
                    config = pyro_lfads.LFADSConfig().replace(**keys)
                    figures = fit_and_score(dataset, experiment, controller, run_dir, config, args.device)
                    print(json.dumps({"experiment": experiment,
                                      "gamma": gamma if experiment != "integrate-to-bound" else None,
                                      "controller": controller, "conditions": n_conditions,
                                      "neurons": dataset.train.n_neurons,
                                      "trials": dataset.train.n_trials + dataset.valid.n_trials, **figures}),
                          flush=True)


if __name__ == "__main__":
    main()
