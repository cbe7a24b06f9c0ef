"""AutoLFADS on the Lorenz set: a PBT population against the default configuration, same epochs per model.

The data are ``pyro-lfads synth lorenz``'s (seed 0: 65 conditions x 20 trials, 30 neurons, 100 bins).
The default configuration (LFADSConfig(): one inferred input, coordinated dropout 0.3; with the
objective's setting, sample validation's ``sv_rate: 0.1`` by default) is fitted for
``generations x epochs_per_generation`` epochs on one CPU thread; the population, each member also
trained for that many epochs, runs through :func:`pyro_lfads.extensions.tune.tune` with one CPU per member, as
many members at a time as the machine has CPUs. Both models choose their best checkpoint by the
population's validation metric (``--objective``, lower is better: by default sample validation's
reconstruction cost of held-back entries, nats per entry) and are scored there on the validation
trials: that metric, the held-out ELBO of ``evaluate`` (10 passes, nats per trial, higher is better)
and the rate R2 against the true rates (posterior means, ``posterior_samples`` per trial). JSON lines:
one per model, then

    {"config": ..., "objective": ..., "population": ..., "generations": ..., "epochs_per_generation": ...,
     "cpus": ..., "default_wall_s": ..., "tuned_wall_s": ..., "cpu_seconds_budget": ...,
     "default_valid_metric": ..., "default_elbo_per_trial": ..., "default_rate_r2": ...,
     "tuned_valid_metric": ..., "tuned_elbo_per_trial": ..., "tuned_rate_r2": ..., "best_hyperparameters": {...}}

``cpu_seconds_budget`` is the population's wall time times the CPUs it held. With ``--config`` both
models start from that YAML instead of the defaults.

Run: OMP_NUM_THREADS=1 python benchmarks/tune.py [--population 8] [--generations 12]
     [--epochs-per-generation 5] [--objective sv|recon|elbo] [--config YAML] [--out DIR]
     (needs pip install ".[tune]")
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

import pyro_lfads
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import save_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset
from pyro_lfads.extensions.tune import OBJECTIVES, objective_config, tune


def scores(run_dir: Path, dataset) -> dict:
    """Posterior means of the best checkpoint, then the held-out ELBO and rate R2 of the validation trials."""
    pyro_lfads.write_posterior(run_dir, dataset, progress=False)
    lfads = pyro_lfads.evaluate_run(run_dir, dataset, baselines=())["lfads"]
    return {"elbo_per_trial": lfads["elbo_per_trial"], "rate_r2": lfads["rate_r2"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=12)
    parser.add_argument("--epochs-per-generation", type=int, default=5)
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML of config keys for both the default model and the population "
                             "(e.g. kl_ramp_steps: 200)")
    parser.add_argument("--objective", choices=OBJECTIVES, default="sv",
                        help="the population's validation metric (default sv: sample validation, sv_rate 0.1)")
    parser.add_argument("--out", type=Path, default=None, help="keep everything here (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="tune_benchmark_"))
    out.mkdir(parents=True, exist_ok=True)
    epochs = args.generations * args.epochs_per_generation
    cpus = min(args.population, os.cpu_count())

    dataset = make_lorenz_dataset(seed=0)
    data_path = (out / "lorenz.h5").resolve()
    save_dataset(dataset, data_path)
    dataset.source = str(data_path)

    torch.set_num_threads(1)
    config = objective_config(LFADSConfig.from_yaml(args.config) if args.config else LFADSConfig(),
                              args.objective).replace(max_epochs=epochs)
    start = time.perf_counter()
    state = pyro_lfads.fit(dataset, config, out / "default", overwrite=True, progress=False).training
    default_wall = time.perf_counter() - start
    default = {"valid_metric": state.best_valid, **scores(out / "default", dataset)}
    print(json.dumps({"model": "default", "epochs": state.epoch, "wall_s": round(default_wall, 1),
                      **default}), flush=True)

    shutil.rmtree(out / "tuned", ignore_errors=True)
    start = time.perf_counter()
    result = tune(data_path, out / "tuned", population=args.population, generations=args.generations,
                  epochs_per_generation=args.epochs_per_generation, config=config, cpus_per_trial=1,
                  objective=args.objective)
    tuned_wall = time.perf_counter() - start
    tuned = {"valid_metric": result.best_metric, **scores(result.best_dir, dataset)}
    print(json.dumps({"model": "tuned", "epochs_per_member": epochs, "wall_s": round(tuned_wall, 1), **tuned}),
          flush=True)

    print(json.dumps({"config": str(args.config or "defaults"), "objective": args.objective,
                      "population": args.population,
                      "generations": args.generations,
                      "epochs_per_generation": args.epochs_per_generation, "cpus": cpus,
                      "default_wall_s": round(default_wall, 1), "tuned_wall_s": round(tuned_wall, 1),
                      "cpu_seconds_budget": round(tuned_wall * cpus),
                      **{f"{name}_{key}": value for name, figures in (("default", default), ("tuned", tuned))
                         for key, value in figures.items()},
                      "best_hyperparameters": result.best_hyperparameters}))


if __name__ == "__main__":
    main()
