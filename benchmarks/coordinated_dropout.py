"""Coordinated dropout against the identity overfit: LFADS with inferred inputs, with and without it.

With inferred inputs and a weak KL penalty, LFADS can copy each held-in spike
through the controller to the rate of the same bin: the held-in fit of the
validation trials then beats the true rates (an impossible figure for a
model of the rates) while the rates themselves get noisier. Coordinated
dropout scores only entries the encoder did not see, so copying cannot pay.

On the synthetic NLB-shaped Lorenz set (``pyro_lfads.synthetic.lorenz_nlb``),
two fits with a controller (co_dim 4) differ only in ``cd_rate`` (0 and
0.3). The KL ramp is long (5000 steps), so these epochs run at KL weight
below 0.08: the regime where the overfit shows. After every ``--every``
epochs the run's posterior (``--samples`` per trial) is scored; one JSON line
per (cd_rate, epoch):

    {"cd_rate": ..., "epoch": ..., "kl_weight": ..., "valid_loss": ...,
     "heldin_bps": ..., "true_heldin_bps": ..., "co_bps": ..., "rate_r2": ...,
     "heldin_rate_r2": ...}

``heldin_bps`` above ``true_heldin_bps`` is the overfit; ``heldin_rate_r2``
(held-in neurons, observed bins, against the truth) is what it costs.

Run: python benchmarks/coordinated_dropout.py [--epochs 40] [--every 10] [--samples 5] [--only 0.3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pyro_lfads
from pyro_lfads.evaluation.metrics import bits_per_spike, rate_r2
from pyro_lfads.fitting.run import CURVE_FILE
from pyro_lfads.evaluation.nlb_figures import Layout, score_rates
from pyro_lfads.synthetic.lorenz_nlb import make_nlb_lorenz_dataset


def scores(dataset, run_dir: Path, samples: int) -> dict:
    pyro_lfads.write_posterior(run_dir, dataset, samples=samples, progress=False)
    rates = {split: pyro_lfads.read_posterior(run_dir, split)["output_params"] for split in ("train", "valid")}
    figures = score_rates(dataset, rates["train"], rates["valid"])
    layout = Layout.of(dataset)
    heldin = slice(None), slice(0, layout.n_time), slice(0, layout.n_heldin)
    truth = dataset.truth_counts("valid")
    return {"heldin_bps": figures["heldin_bps"],
            "true_heldin_bps": bits_per_spike(dataset.valid.recon_data[heldin], truth[heldin]),
            "co_bps": figures["co_bps"], "rate_r2": figures["rate_r2"],
            "heldin_rate_r2": rate_r2(truth[heldin], rates["valid"][heldin])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--only", type=float, default=None, help="run this cd_rate only")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    dataset = make_nlb_lorenz_dataset(seed=0)
    rates = [args.only] if args.only is not None else [0.0, 0.3]
    with tempfile.TemporaryDirectory() as tmp:
        for cd_rate in rates:
            run_dir = (args.out or Path(tmp)) / f"cd_{cd_rate}"
            for epochs in range(args.every, args.epochs + 1, args.every):
                config = pyro_lfads.LFADSConfig(co_dim=4, cd_rate=cd_rate, kl_ramp_steps=5000, max_epochs=epochs)
                pyro_lfads.fit(dataset, config, run_dir, progress=False)  # continues the same run
                last = json.loads((run_dir / CURVE_FILE).read_text().splitlines()[-1])
                print(json.dumps({"cd_rate": cd_rate, "epoch": epochs, "kl_weight": last["kl_weight"],
                                  "valid_loss": last["valid_loss"], **scores(dataset, run_dir, args.samples)}),
                      flush=True)


if __name__ == "__main__":
    main()
