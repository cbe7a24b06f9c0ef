"""Fit LFADS to the paper's Lorenz benchmark with the Python API, end to end.

    python examples/fit_lorenz.py --out lorenz_example --max-epochs 300

Synthesises the data, fits, averages the posterior (``write_posterior``: the
draws of ``pyro_lfads.predictive``, a ``pyro.infer.Predictive``), scores the
validation trials against the true rates and the smoothing baseline, and
draws spikes with true and inferred rates.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyro_lfads
from pyro_lfads.diagnostics.rate_figures import plot_rates
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("lorenz_example"))
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--conditions", type=int, default=65, help="Lorenz conditions (65 in the paper)")
    parser.add_argument("--samples", type=int, default=50, help="posterior samples per trial")
    args = parser.parse_args()

    dataset = make_lorenz_dataset(seed=0, n_conditions=args.conditions)
    # Lorenz is autonomous: no inferred inputs are needed (co_dim=0).
    config = pyro_lfads.LFADSConfig(co_dim=0, max_epochs=args.max_epochs, posterior_samples=args.samples)
    run_dir = args.out / "run"
    pyro_lfads.fit(dataset, config, run_dir, overwrite=True)
    pyro_lfads.write_posterior(run_dir, dataset)

    result = pyro_lfads.evaluate_run(run_dir, dataset, baselines=("smoothing",))  # GPFA: add "gpfa"
    print(json.dumps(result, indent=2))
    posterior = pyro_lfads.read_posterior(run_dir, "valid")
    figure = plot_rates(dataset.valid.recon_data, posterior["output_params"], args.out / "rates.png",
                        truth=dataset.truth_counts("valid"))
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
