"""How far the guide is to be trusted as the posterior: k-hat, the IWAE gap and rate R2 of each objective/guide.

For each data set and each combination of objective and guide (``--combos``), LFADS is fitted as a user
would (``pyro_lfads.fit``, the data set's config with the combination's keys on top), the posterior
averaged (``pyro_lfads.write_posterior``), and the validation trials scored:

- ``khat_fraction_below_0_7``, ``khat_median``: PSIS k-hat of the guide as the importance proposal of the
  model's exact posterior (200 draws per trial, :mod:`pyro_lfads.diagnostics.importance`), as ``diagnose``;
- ``iwae_minus_elbo``: nats per trial by which the ELBO understates the IWAE_200 bound;
- ``rate_r2``: the posterior mean rates against the true rates; ``rate_r2_psis``: the same with
  ``posterior --means psis``, which weighs the draws of the ``psis_weighted_fraction`` of trials whose k-hat
  (of the posterior's 50 draws) is below 0.7; ``fit_seconds``: fit and posterior.

Data: ``demo``, the demo's Lorenz set and config (``pyro_lfads.cli.demo``, no inferred inputs);
``chaotic-rnn``, the paper's chaotic RNN (gamma 1.5, 100 conditions, ``benchmarks/inputs.py``'s reduced size)
with the default config (one inferred input). Combinations (:data:`COMBOS`): ``default``; ``kl1``, the KL
weights at 1, the true ELBO; ``iwae``, ``iwae_kl1``: ``elbo: iwae`` (K = ``--particles``); ``lowrank_kl1``,
``iwae_lowrank_kl1``: q(g0) with a rank-4 covariance beyond its diagonal (``ic_posterior_rank: 4``).

One JSON line per fit: ``data``, ``combo``, the keys it sets, and the figures above.

Run: python benchmarks/posterior_quality.py [--data demo,chaotic-rnn] [--combos default,kl1,iwae,iwae_kl1]
     [--particles 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import pyro_lfads
from pyro_lfads.cli.demo import DEMO_BINS, DEMO_CONFIG
from pyro_lfads.diagnostics.importance import elbo_per_trial, iwae_per_trial, log_importance_weights, pareto_khat
from pyro_lfads.evaluation.metrics import rate_r2
from pyro_lfads.fitting.run import Run
from pyro_lfads.synthetic.chaotic_rnn import make_chaotic_rnn_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

IMPORTANCE_SAMPLES = 200
#: combination -> config keys set on top of the data set's config (``iwae_particles`` from --particles).
KL1 = {"kl_ic_scale": 1.0, "kl_co_scale": 1.0}
COMBOS = {"default": {}, "kl1": KL1, "iwae": {"elbo": "iwae"}, "iwae_kl1": {"elbo": "iwae", **KL1},
          "lowrank_kl1": {"ic_posterior_rank": 4, **KL1}, "iwae_lowrank_kl1": {"elbo": "iwae", "ic_posterior_rank": 4, **KL1}}


def data_and_config(name: str):
    """(data set, config) of a data name."""
    if name == "demo":
        return make_lorenz_dataset(seed=DEMO_CONFIG.seed, **DEMO_BINS), DEMO_CONFIG
    return make_chaotic_rnn_dataset(seed=0, gamma=1.5, n_conditions=100), pyro_lfads.LFADSConfig()


def score(run_dir: Path, dataset) -> dict:
    """k-hat, IWAE gap (200 draws per trial) and rate R2 of the validation trials."""
    model, guide = Run.open(run_dir).fitted("best", "cpu")
    torch.manual_seed(0)
    log_w = log_importance_weights(model, guide, dataset.valid, samples=IMPORTANCE_SAMPLES,
                                   time_bins=model.config.time_bins)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Estimated shape parameter", UserWarning)
        khat = pareto_khat(log_w)
    posterior = pyro_lfads.read_posterior(run_dir, "valid")
    pyro_lfads.write_posterior(run_dir, dataset, means="psis", progress=False)
    psis = pyro_lfads.read_posterior(run_dir, "valid")
    return {"khat_fraction_below_0_7": round(float(np.mean(khat < 0.7)), 4),
            "khat_median": round(float(np.median(khat)), 3),
            "iwae_minus_elbo": round(float(np.mean(iwae_per_trial(log_w) - elbo_per_trial(log_w))), 3),
            "rate_r2": round(rate_r2(dataset.truth_counts("valid"), posterior["output_params"]), 4),
            "rate_r2_psis": round(rate_r2(dataset.truth_counts("valid"), psis["output_params"]), 4),
            "psis_weighted_fraction": round(float(psis["importance_weighted"].mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo,chaotic-rnn", help="comma-separated, of demo, chaotic-rnn")
    parser.add_argument("--combos", default=",".join(COMBOS), help=f"comma-separated, of {', '.join(COMBOS)}")
    parser.add_argument("--particles", type=int, default=5, help="K of elbo iwae (default 5)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: temporary)")
    args = parser.parse_args()
    combos = args.combos.split(",")
    unknown = [c for c in combos if c not in COMBOS]
    if unknown:
        parser.error(f"--combos: unknown {', '.join(unknown)}; known: {', '.join(COMBOS)}")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for name in args.data.split(","):
            dataset, base = data_and_config(name)
            for combo in combos:
                keys = {**COMBOS[combo], **({"iwae_particles": args.particles} if "elbo" in COMBOS[combo] else {})}
                run_dir = root / name / combo
                start = time.perf_counter()
                pyro_lfads.fit(dataset, base.replace(**keys), run_dir, overwrite=True, progress=False)
                pyro_lfads.write_posterior(run_dir, dataset, progress=False)
                seconds = time.perf_counter() - start
                print(json.dumps({"data": name, "combo": combo, "keys": keys, **score(run_dir, dataset),
                                  "fit_seconds": round(seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
