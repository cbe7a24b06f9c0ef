"""Step 7: comparing ELBOs: Trace_ELBO, TraceMeanField_ELBO and an importance-weighted bound.

Every objective here is a lower bound on log p(x), estimated by sampling
z = (g0, u) from the guide:

    Trace_ELBO            E_q[log p(x, z) - log q(z | x)]           one draw: log w, w = p(x, z) / q(z | x)
    TraceMeanField_ELBO   E_q[log p(x | z)] - KL(q(g0 | x) || p(g0))   the same bound, the Gaussian KL of g0
                                                                     computed exactly, not sampled
    IWAE_K                E[log (1/K) sum_k w_k]                     K draws per trial; IWAE_1 = ELBO,
                                                                     IWAE_K grows with K towards log p(x)

The first two have the same expectation, so the choice between them is about
noise: the mean-field version drops the sampling noise of the KL term,
which lowers the variance of the loss and of the guide's gradients. Train
with either through ``LFADSConfig(elbo="trace" | "meanfield")``. The IWAE
bound (``pyro_lfads.diagnostics.importance.log_importance_weights`` and
``iwae_per_trial``) measures how loose the ELBO is: the gap IWAE_K - ELBO is
a lower bound on the KL of the guide from the exact posterior.

This step fits one model (no inferred inputs) with ``pyro_lfads.fit``, then,
on the validation trials:

1. draws the per-trial loss estimate of both ELBOs many times (the spread of
   the estimate) and the gradient of each on a batch of 16 trials (its
   variance over draws, summed over the guide's parameters, relative to the
   squared mean gradient), for the model before training and after: the KL
   term dominates the noise only while q(g0 | x) is far from the prior;
2. estimates IWAE_K of the fitted model for K = 1, 10, 100, averaging
   independent groups of K draws per trial.

Figure ``elbos.png``: the two ELBOs' loss estimates over draws (fitted
model); their gradient variance before and after training; the bound against K.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO  # noqa: E402

from _common import fit_and_score, lorenz_dataset, parse_args, report, small_config  # noqa: E402
from pyro_lfads.fitting.batch import split_batch  # noqa: E402
from pyro_lfads.diagnostics.importance import iwae_per_trial, log_importance_weights  # noqa: E402
from pyro_lfads.guides.lfads import LFADSGuide  # noqa: E402
from pyro_lfads.models.lfads import LFADSModel  # noqa: E402
from pyro_lfads.fitting.run import load_fitted  # noqa: E402

ELBOS = {"Trace_ELBO": Trace_ELBO, "TraceMeanField_ELBO": TraceMeanField_ELBO}


def loss_draws(elbo, model, guide, batch, draws: int) -> np.ndarray:
    """(draws,) estimates of -ELBO per trial, one draw of the latents per trial each."""
    with torch.no_grad():
        return np.array([elbo.loss(model, guide, batch, 1.0) / batch.n_trials for _ in range(draws)])


def relative_gradient_variance(elbo, model, guide, batch, draws: int) -> float:
    """Sum over the guide's parameters of the variance of d(-ELBO)/d(theta) over draws, divided by
    the squared norm of the mean gradient (dimensionless: 1 means noise as large as the signal)."""
    params = list(guide.parameters())
    grads = []
    for _ in range(draws):
        loss = elbo.differentiable_loss(model, guide, batch, 1.0) / batch.n_trials
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, allow_unused=False)]))
    grads = torch.stack(grads)
    return float(grads.var(0).sum() / grads.mean(0).pow(2).sum())


def iwae_by_k(log_weights: np.ndarray, ks) -> dict[int, float]:
    """IWAE_K (nats per trial, mean over trials) for each K, from (trials, D) log weights: the D draws
    of each trial cut into D // K independent groups of K, the groups' bounds averaged."""
    out = {}
    for k in ks:
        groups = log_weights[:, : (log_weights.shape[1] // k) * k].reshape(log_weights.shape[0], -1, k)
        out[k] = float(np.mean([iwae_per_trial(groups[:, g]) for g in range(groups.shape[1])]))
    return out


def noise(model, guide, dataset, draws: int) -> dict:
    """Both ELBOs' loss estimates over ``draws`` repeats on the validation trials (nats per trial) and
    their relative gradient variance on 16 of them."""
    model.eval()
    guide.eval()
    valid, small = split_batch(dataset.valid, slice(None)), split_batch(dataset.valid, slice(0, 16))
    return {name: {"losses": loss_draws(elbo(), model, guide, valid, draws),
                   "gradient_variance": relative_gradient_variance(elbo(), model, guide, small, min(draws, 100))}
            for name, elbo in ELBOS.items()}


def main() -> None:
    args = parse_args(__doc__, "07_comparing_elbos")
    draws, ks, importance_draws = (5, (1, 10), 10) if args.tiny else (200, (1, 10, 100), 1000)
    dataset = lorenz_dataset(args.tiny, args.seed)
    config = small_config(args.tiny, seed=args.seed)
    pyro.set_rng_seed(args.seed)
    untrained = LFADSModel(config, dataset.train.n_neurons)  # the same model before any training
    untrained.likelihood.init_from_data(split_batch(dataset.train, slice(None)).recon_data)
    run_dir = args.out / "run"
    fitted = fit_and_score(dataset, config, run_dir)
    _, _, model, guide = load_fitted(run_dir)

    pyro.set_rng_seed(args.seed)
    stages = {"untrained": noise(untrained, LFADSGuide(untrained, dataset.train.n_neurons), dataset, draws),
              "fitted": noise(model, guide, dataset, draws)}
    log_weights = log_importance_weights(model, guide, dataset.valid, samples=importance_draws)
    bounds = iwae_by_k(log_weights, ks)  # log p(x) >= IWAE_K, nats per trial

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, result in stages["fitted"].items():
        values = result["losses"]
        axes[0].hist(values, bins=20, alpha=0.6, label=f"{name}: sd {values.std():.2f}")
    axes[0].set(xlabel="-ELBO estimate (nats per trial)", ylabel="draws",
                title="fitted model: one draw per trial, repeated")
    axes[0].legend(fontsize=8)
    for offset, name in ((-0.2, "Trace_ELBO"), (0.2, "TraceMeanField_ELBO")):
        axes[1].bar(np.arange(2) + offset, [stages[stage][name]["gradient_variance"] for stage in stages], 0.4,
                    label=name)
    axes[1].set_xticks(np.arange(2), list(stages))
    axes[1].set(yscale="log", ylabel="gradient variance / squared mean",
                title="noise of the guide's gradient (16 trials)")
    axes[1].legend(fontsize=8, loc="lower right")
    axes[2].semilogx(list(bounds), list(bounds.values()), "o-", color="tab:green", label="IWAE_K")
    axes[2].axhline(bounds[1], color="gray", ls="--", label="ELBO (K = 1)")
    axes[2].set(xlabel="K, draws per trial", ylabel="bound on log p(x) (nats per trial)",
                title="fitted model: IWAE_K tightens with K")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    figure = args.out / "elbos.png"
    fig.savefig(figure, dpi=110)

    report(step=7, rate_r2=fitted["rate_r2"], figures=[figure], iwae={str(k): v for k, v in bounds.items()},
           **{stage: {name: {"loss_mean": float(r["losses"].mean()), "loss_sd": float(r["losses"].std()),
                             "relative_gradient_variance": r["gradient_variance"]} for name, r in result.items()}
              for stage, result in stages.items()})


if __name__ == "__main__":
    main()
