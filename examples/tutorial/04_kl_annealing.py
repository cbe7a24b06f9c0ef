"""Step 4: KL annealing, and what goes wrong with the wrong KL weight.

The ELBO of one trial is a reconstruction term minus a KL term:

    ELBO = E_q[log p(x | g0, u)] - KL(q(g0 | x) || p(g0)) - KL(q(u | x) || p(u))

LFADS trains on a weighted version (``pyro_lfads.fitting.train``):

    loss = -E_q[log p(x | g0, u)] + w_t (s_ic KL_g0 + s_co KL_u) + w_t L2
    w_t  = min(1, (t + 1) / kl_ramp_steps)        the ramp (KL annealing), 1 after the ramp
    s_ic, s_co = kl_ic_scale, kl_co_scale          constant weights, 1 (the true ELBO) by default

In Pyro the weights are one line in the model and one in the guide:
``with poutine.scale(scale=w_t * s_ic): pyro.sample("g0", ...)``. Early in
training the decoder is poor, and a full-weight KL pushes q(g0 | x) onto the
prior before the generator can use g0; the ramp lets the reconstruction win
first. This step fits LFADS (``pyro_lfads.fit``) five times on the same Lorenz data,
60 epochs each; the first four without inferred inputs (the model of step 2):

- ``ramp``: the KL weight ramps up over the first 300 steps, then stays 1;
- ``no ramp``: weight 1 from the first step;
- ``KL x 100`` (far too strong): the KL of g0 weighs 100 times its share;
- ``KL x 0.01`` (far too weak): 1/100 of its share;
- ``inputs, KL_u x 0.01, no CD``: 4 inferred inputs whose KL weighs 1/100,
  coordinated dropout off (``cd_rate`` 0): nothing stops the controller from
  passing each spike it reads straight into the rates.

What to look for (the numbers are in examples/tutorial/README.md). On these
data a full-weight KL from the start, like a far too strong one, collapses the
posterior: q(g0 | x) sits on the prior for every trial (KL near 0, the means
of q(g0 | x) do not spread over trials), the rates are the same in every
trial and the rate R2 drops to near 0. A weak KL on g0 costs the ELBO (the KL
grows, the true validation loss rises) but did not over-fit here: g0 only
selects a trajectory of the generator. Over-fitting needs a path for the
noise: a weak KL on the inputs lets the controller copy spikes, and the
training reconstruction drops far below the others while the held-out
entries get worse.

Sample validation (``sv_rate`` 0.2) hides a fixed fifth of the entries from the
encoder and from training: their reconstruction cost on the validation trials
(``valid_sv_recon``) is a held-out score that copying cannot fool, and it
picks the best checkpoint (``best_epoch``). Rates are scored at that
checkpoint (``rate_r2``) and at the last epoch (``rate_r2_last``).

Figures: ``kl_curves.png`` (per epoch, from ``pyro_lfads.fitting.run.read_training_curve``:
the KL of the validation trials, the training reconstruction, and the
reconstruction of the held-out entries; rate R2 of each fit) and
``kl_rates.png`` (rates at the last epoch, one neuron in a trial of each of three conditions).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from _common import BIN_MS, fit_and_score, lorenz_dataset, parse_args, report, showcase, small_config  # noqa: E402
from pyro_lfads.evaluation.metrics import rate_r2  # noqa: E402
from pyro_lfads.fitting.posterior import posterior_chunks  # noqa: E402
from pyro_lfads.fitting.run import load_fitted, read_training_curve  # noqa: E402

#: JSON key: (label, config changes)
VARIANTS = {"ramp": ("ramp", {}), "no_ramp": ("no ramp", {"kl_ramp_steps": 1}),
            "KL_x_100": ("KL x 100", {"kl_ic_scale": 100.0}), "KL_x_001": ("KL x 0.01", {"kl_ic_scale": 0.01}),
            "inputs_KL_u_x_001_no_CD": ("inputs, KL_u x 0.01, no CD",
                                        {"co_dim": 4, "kl_co_scale": 0.01, "cd_rate": 0.0})}


def last_epoch_rates(run_dir, split) -> np.ndarray:
    """Posterior mean rates (trials, T, N) of ``split`` at the last epoch (``write_posterior`` uses the best)."""
    config, _, model, guide = load_fitted(run_dir, "last")
    chunks = posterior_chunks(model, guide, split, samples=config.posterior_samples)
    return np.concatenate([arrays["output_params"] for _, arrays in chunks])


def main() -> None:
    args = parse_args(__doc__, "04_kl_annealing")
    dataset = lorenz_dataset(args.tiny, args.seed)
    truth = dataset.truth_counts("valid")
    base = small_config(args.tiny, sv_rate=0.2, seed=args.seed, **({} if args.tiny else {"max_epochs": 60}))
    results, curves, rates = {}, {}, {}
    for key, (label, changes) in VARIANTS.items():
        run_dir = args.out / key
        best = fit_and_score(dataset, base.replace(**changes), run_dir)
        curve = curves[label] = read_training_curve(run_dir)
        rates[label] = last_epoch_rates(run_dir, dataset.valid)
        held_out = [record["valid_sv_recon"] for record in curve]
        results[key] = {
            "rate_r2": best["rate_r2"], "rate_r2_last": rate_r2(truth, rates[label]),
            "best_epoch": int(np.argmin(held_out)) + 1,
            "valid_kl": curve[-1]["valid_kl"],  # nats per trial, unweighted, last epoch
            "valid_loss": curve[-1]["valid_loss"],  # the true -ELBO per trial
            "train_recon": curve[-1]["train_recon"],
            "heldout_recon_best_last": [min(held_out), held_out[-1]],  # nats per held-out entry
            # a collapsed q(g0 | x) is the same for every trial: its means barely spread over trials
            "g0_mean_spread": float(best["ic_mean"].std(0).mean()),
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
    positions = np.arange(len(results))
    ax.bar(positions - 0.2, [r["rate_r2"] for r in results.values()], 0.4, label="best checkpoint")
    ax.bar(positions + 0.2, [r["rate_r2_last"] for r in results.values()], 0.4, label="last epoch")
    ax.set_xticks(positions, [label.replace(", ", "\n") for label in curves], fontsize=8)
    ax.set(ylabel="rate R2 against the truth", title="validation trials", ylim=(min(0, ax.get_ylim()[0]), 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    figures = [args.out / "kl_curves.png", args.out / "kl_rates.png"]
    fig.savefig(figures[0], dpi=110)

    shown = showcase(dataset)
    time_s = np.arange(truth.shape[1]) * BIN_MS / 1000
    fig, axes = plt.subplots(1, len(shown), figsize=(14, 3.8), squeeze=False)
    for (trial, neuron), ax in zip(shown, axes[0]):
        ax.plot(time_s, truth[trial, :, neuron] * 1000 / BIN_MS, "k", lw=2, label="truth")
        for label, values in rates.items():
            ax.plot(time_s, values[trial, :, neuron] * 1000 / BIN_MS, lw=1.2, label=label)
        ax.set(xlabel="time (s)", title=f"validation trial {trial}, neuron {neuron}")
    axes[0, 0].set_ylabel("rate (spikes/s)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figures[1], dpi=110)
    report(step=4, figures=figures, **results)


if __name__ == "__main__":
    main()
