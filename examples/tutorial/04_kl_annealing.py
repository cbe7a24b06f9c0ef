"""Step 4: KL annealing, and what goes wrong with the wrong KL weight.

The ELBO of one trial is a reconstruction term minus a KL term:

    ELBO = E_q[log p(x | g0, u)] - KL(q(g0 | x) || p(g0)) - KL(q(u | x) || p(u))

LFADS trains on a weighted version (``pyro_lfads.train``):

    loss = -E_q[log p(x | g0, u)] + w_t (s_ic KL_g0 + s_co KL_u) + w_t L2
    w_t  = min(1, (t + 1) / kl_ramp_steps)        the ramp (KL annealing), 1 after the ramp
    s_ic, s_co = kl_ic_scale, kl_co_scale          constant weights, 1 (the true ELBO) by default

In Pyro the weights are one line in the model and one in the guide:
``with poutine.scale(scale=w_t * s_ic): pyro.sample("g0", ...)``. Early in
training the decoder is poor, and a full-weight KL pushes q(g0 | x) onto the
prior before the generator can use g0; the ramp lets the reconstruction win
first. This step fits the model of step 2 (``pyro_lfads.fit``, no inferred
inputs) four times on the same Lorenz data:

- ``ramp``: the ramp over the first steps, KL weight 1;
- ``no ramp``: weight 1 from the first step;
- ``KL x 100`` (too strong): posterior collapse, q(g0 | x) sits on the prior
  for every trial (KL near 0), g0 carries nothing about the trial and the
  rates are the same in every trial: the rate R2 drops;
- ``KL x 0.01`` (too weak): over-fitting, q(g0 | x) moves far from the prior
  (a large KL) to fit each trial's spikes, noise included.

Sample validation (``sv_rate`` 0.2) hides a fixed fifth of the spikes from the
encoder and from training: their reconstruction cost on the validation trials
(``valid_sv_recon``) is a held-out score that over-fitting cannot fool.

Figures: ``kl_curves.png`` (per epoch, from ``pyro_lfads.run.read_training_curve``:
the KL of the validation trials, the training reconstruction, and the
reconstruction of the held-out entries; rate R2 of each fit) and
``kl_rates.png`` (one neuron's rates in three trials under each weight).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from _common import BIN_MS, fit_and_score, lorenz_dataset, parse_args, report, small_config  # noqa: E402
from pyro_lfads.run import read_training_curve  # noqa: E402

VARIANTS = {"ramp": {}, "no ramp": {"kl_ramp_steps": 1},
            "KL x 100": {"kl_ic_scale": 100.0}, "KL x 0.01": {"kl_ic_scale": 0.01}}


def main() -> None:
    args = parse_args(__doc__, "04_kl_annealing")
    dataset = lorenz_dataset(args.tiny, args.seed)
    base = small_config(args.tiny, sv_rate=0.2, seed=args.seed)
    results, curves = {}, {}
    for name, changes in VARIANTS.items():
        run_dir = args.out / name.replace(" ", "_")
        posterior = fit_and_score(dataset, base.replace(**changes), run_dir)
        curve = read_training_curve(run_dir)
        curves[name] = curve
        results[name] = {
            "rate_r2": posterior["rate_r2"],
            "valid_kl": curve[-1]["valid_kl"],  # nats per trial, unweighted
            "train_recon_first_to_last": [curve[0]["train_recon"], curve[-1]["train_recon"]],
            "valid_heldout_recon_best_to_last": [min(r["valid_sv_recon"] for r in curve), curve[-1]["valid_sv_recon"]],
            # a collapsed q(g0 | x) is the same for every trial: its means barely spread over trials
            "g0_mean_spread": float(posterior["ic_mean"].std(0).mean()),
            "rates": posterior["output_params"],
        }

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = (("valid_kl", "KL of the validation trials (nats)", True),
              ("train_recon", "training reconstruction (nats per trial)", False),
              ("valid_sv_recon", "held-out entries' reconstruction (nats per entry)", False))
    for ax, (key, title, log) in zip(axes.flat, panels):
        for name, curve in curves.items():
            ax.plot([r["epoch"] for r in curve], [r[key] for r in curve], lw=1.3, label=name)
        ax.set(xlabel="epoch", title=title, yscale="log" if log else "linear")
        ax.legend(fontsize=8)
    ax = axes[1, 1]
    ax.bar(list(results), [r["rate_r2"] for r in results.values()], color="tab:gray")
    ax.set(ylabel="rate R2 against the truth", title="validation trials")
    fig.tight_layout()
    figures = [args.out / "kl_curves.png", args.out / "kl_rates.png"]
    fig.savefig(figures[0], dpi=110)

    truth = dataset.truth_counts("valid")
    neuron = int(truth.var((0, 1)).argmax())
    time_s = np.arange(truth.shape[1]) * BIN_MS / 1000
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
    for trial, ax in enumerate(axes):
        ax.plot(time_s, truth[trial, :, neuron] * 1000 / BIN_MS, "k", lw=2, label="truth")
        for name, result in results.items():
            ax.plot(time_s, result["rates"][trial, :, neuron] * 1000 / BIN_MS, lw=1.2, label=name)
        ax.set(xlabel="time (s)", title=f"validation trial {trial}, neuron {neuron}")
    axes[0].set_ylabel("rate (spikes/s)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figures[1], dpi=110)

    for result in results.values():
        del result["rates"]
    report(step=4, figures=figures, **{name.replace(" ", "_").replace(".", ""): r for name, r in results.items()})


if __name__ == "__main__":
    main()
