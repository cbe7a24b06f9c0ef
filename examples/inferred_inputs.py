"""The paper's inferred-input figures: pulses into a chaotic RNN, and white noise into an integrator.

    python examples/inferred_inputs.py --out inputs_example --epochs 200
    python examples/inferred_inputs.py --out inputs_example --runs BENCH_OUT   # from benchmarks/inputs.py --out

Fits LFADS with one inferred input (co_dim 1) to the pulse data set (Methods 2.3)
and to the integrate-to-bound data set (Methods 2.4; with its white input prior and input KL weight,
``integrate_to_bound.FIT_CONFIG``), or takes the fits that
``benchmarks/inputs.py --out BENCH_OUT`` kept, and draws:

- ``pulses.png``: the inferred input of validation trials aligned to their true pulse;
- ``integrate_to_bound.png``: the inferred input against the true white-noise input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import pyro_lfads
from pyro_lfads.evaluation.metrics import input_r2, pulse_time_errors_ms
from pyro_lfads.diagnostics.input_figures import plot_input_recovery, plot_pulse_aligned_inputs
from pyro_lfads.synthetic.chaotic_rnn import make_pulse_dataset
from pyro_lfads.synthetic.integrate_to_bound import FIT_CONFIG as ITB_FIT_CONFIG
from pyro_lfads.synthetic.integrate_to_bound import make_integrate_to_bound_dataset

BIN_MS = 10.0


def fitted(name: str, make, args, **config_keys) -> tuple[Path, pyro_lfads.LFADSDataset]:
    """(run directory, data set) of a fit with one inferred input (and ``config_keys``): the benchmark's,
    or a new one."""
    if args.runs is not None:
        run_dir = args.runs / name / "controller"
        return run_dir, pyro_lfads.Run.open(run_dir).dataset()
    dataset = make(seed=0, n_conditions=args.conditions)
    run_dir = args.out / name
    config = pyro_lfads.LFADSConfig(co_dim=1, max_epochs=args.epochs, posterior_samples=args.samples, **config_keys)
    pyro_lfads.fit(dataset, config, run_dir, overwrite=True)
    pyro_lfads.write_posterior(run_dir, dataset)
    return run_dir, dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("inputs_example"))
    parser.add_argument("--runs", type=Path, help="benchmarks/inputs.py --out folder: draw its fits, fit nothing")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--conditions", type=int, default=100, help="conditions of each data set")
    parser.add_argument("--samples", type=int, default=20, help="posterior samples per trial")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    run_dir, dataset = fitted("pulses-1.5", make_pulse_dataset, args)
    inputs = pyro_lfads.read_posterior(run_dir, "valid")["co_means"]  # (trials, time, 1)
    pulse_times = dataset.extras["valid_pulse_times_ms"]
    errors = pulse_time_errors_ms(inputs, pulse_times, BIN_MS)
    plot_pulse_aligned_inputs(inputs, pulse_times, args.out / "pulses.png", bin_ms=BIN_MS)

    run_dir, dataset = fitted("integrate-to-bound", make_integrate_to_bound_dataset, args, **ITB_FIT_CONFIG)
    inputs = pyro_lfads.read_posterior(run_dir, "valid")["co_means"]
    true_inputs = dataset.extras["valid_inputs"]
    plot_input_recovery(inputs, true_inputs, args.out / "integrate_to_bound.png", bin_ms=BIN_MS)
    print(json.dumps({"pulse_median_abs_error_ms": float(np.median(errors)),
                      "input_r2": input_r2(inputs, true_inputs),
                      "figures": [str(args.out / "pulses.png"), str(args.out / "integrate_to_bound.png")]}))


if __name__ == "__main__":
    main()
