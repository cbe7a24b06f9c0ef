"""What the tutorial steps share: their command line, the data sizes, one fit, and the line of figures.

Every step runs as ``python examples/tutorial/NN_name.py [--out DIR] [--tiny] [--seed N]``:
``--out`` is where its figures go, ``--tiny`` shrinks data and training so the
step runs in seconds (the test suite uses it; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

import pyro_lfads
from pyro_lfads.evaluation.metrics import rate_r2
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

BIN_MS = 10.0


def parse_args(doc: str, step: str, add_arguments=None) -> argparse.Namespace:
    """The step's arguments: --out (default ``runs/tutorial/<step>``), --tiny, --seed, and any
    ``add_arguments(parser)`` adds. Creates the --out folder."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs") / "tutorial" / step, help="folder for the figures")
    parser.add_argument("--tiny", action="store_true", help="tiny data and training: seconds, for tests")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the fit")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def lorenz_dataset(tiny: bool, seed: int = 0, **changes) -> pyro_lfads.LFADSDataset:
    """The paper's Lorenz benchmark (Methods 2.1), smaller: 20 conditions x 10 trials of 50 bins
    (10 ms), 30 neurons; tiny: 4 conditions x 5 trials of 20 bins, 12 neurons. ``changes`` go to
    :func:`make_lorenz_dataset` (e.g. ``likelihood="gaussian"``)."""
    sizes = (dict(n_conditions=4, trials_per_condition=5, n_neurons=12, n_time=20) if tiny else
             dict(n_conditions=20, trials_per_condition=10, n_neurons=30, n_time=50))
    return make_lorenz_dataset(seed=seed, bin_ms=BIN_MS, **{**sizes, **changes})


def small_config(tiny: bool, **changes) -> pyro_lfads.LFADSConfig:
    """An LFADSConfig with networks small enough for a laptop CPU and no inferred inputs: generator 32,
    factors 8, initial-condition encoder 32, batches of 16, a 300-step KL ramp, 100 epochs;
    tiny: generator 8, factors 4, encoder 8, a 5-step ramp, 2 epochs. ``changes`` override any key."""
    sizes = (dict(gen_dim=8, fac_dim=4, ic_enc_dim=8, ci_enc_dim=4, con_dim=4, kl_ramp_steps=5, max_epochs=2,
                  posterior_samples=4) if tiny else
             dict(gen_dim=32, fac_dim=8, ic_enc_dim=32, ci_enc_dim=16, con_dim=16, kl_ramp_steps=300,
                  max_epochs=100, posterior_samples=20))
    return pyro_lfads.LFADSConfig(**{"co_dim": 0, "batch_size": 16, **sizes, **changes})


def fit_and_score(dataset: pyro_lfads.LFADSDataset, config: pyro_lfads.LFADSConfig, run_dir: Path) -> dict:
    """Fit LFADS, average its posterior, and return the validation trials' posterior averages
    (:func:`pyro_lfads.read_posterior`: ``output_params`` (trials, T, N) rates in counts per bin, ...)
    with ``rate_r2``, their R2 against the true rates."""
    pyro_lfads.fit(dataset, config, run_dir, overwrite=True, progress=False)
    pyro_lfads.write_posterior(run_dir, dataset, progress=False)
    posterior = pyro_lfads.read_posterior(run_dir, "valid")
    posterior["rate_r2"] = rate_r2(dataset.truth_counts("valid"), posterior["output_params"])
    return posterior


def showcase(dataset: pyro_lfads.LFADSDataset, n_trials: int = 3) -> list[tuple[int, int]]:
    """(trial, neuron) pairs to draw: validation trials of the first ``n_trials`` conditions, each
    with the neuron whose true rate varies most in it."""
    trials = np.unique(dataset.extras["valid_conditions"], return_index=True)[1][:n_trials]
    truth = dataset.truth_counts("valid")
    return [(int(trial), int(truth[trial].var(0).argmax())) for trial in trials]


def report(**figures) -> None:
    """Print the step's measured figures as one JSON line (floats rounded to 4 digits, null where not finite)."""
    def tidy(value):
        if isinstance(value, float):
            return round(value, 4) if math.isfinite(value) else None
        if isinstance(value, dict):
            return {key: tidy(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [tidy(item) for item in value]
        return str(value) if isinstance(value, Path) else value
    print(json.dumps(tidy(figures)))
