"""Step 6: posterior averaging with ``Predictive``, and diagnostics with arviz.

LFADS reports, for each trial, the posterior mean of the rates (Methods 1.10):

    E[r | x] ~= (1/S) sum_s r(g0_s, u_s),    (g0_s, u_s) ~ q(g0, u | x)

``pyro_lfads.predictive(run, num_samples=S)`` is a ``pyro.infer.Predictive``
over the fitted model and guide: it draws the latents from the guide, runs the
model on each draw and returns ``g0`` (S, B, G), ``factors`` and the
deterministic ``rates`` (S, B, T, N) (and ``u`` for a model with inferred
inputs). Their spread over draws gives a credible band. By default it draws
the S samples in one pass (each trial S times in a row, one guide trace, the
model replayed on it), the pass ``pyro_lfads.write_posterior`` averages for
whole data sets; ``read_posterior`` reads those averages back. Here it runs
with ``parallel=True``: Pyro's own vectorised ``Predictive.forward``, guide and
model under a plate of S samples, the model conditioned on the guide's draws.
Two code paths, one posterior: the two means must agree up to Monte Carlo error.

The guide is an approximation, so check it (``pyro_lfads.diagnostics.importance``):

- ``to_inference_data`` puts posterior draws, posterior predictive
  simulations, observations and log-likelihoods in an ``arviz.InferenceData``,
  which arviz's functions read (``az.summary``, ``az.loo``, plots);
- importance weights w = p(x, z) / q(z | x) of each trial's draws, and their
  Pareto k-hat (PSIS, ``pareto_khat``): below 0.7 the guide is a usable
  importance sampler of that trial's exact posterior; above it, its bands
  are not to be read as calibrated.

Figures: ``predictive.png`` (one neuron in a trial of each of three conditions: truth, Predictive's
mean and 90% band; Predictive's means against ``write_posterior``'s) and
``khat.png`` (``pyro_lfads.diagnostics.check_figures.plot_khat``).
"""

from __future__ import annotations

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyro  # noqa: E402

import pyro_lfads  # noqa: E402
from _common import BIN_MS, fit_and_score, lorenz_dataset, parse_args, report, showcase, small_config  # noqa: E402
from pyro_lfads.diagnostics.importance import log_importance_weights, pareto_khat, to_inference_data  # noqa: E402
from pyro_lfads.evaluation.metrics import rate_r2  # noqa: E402
from pyro_lfads.diagnostics.check_figures import plot_khat  # noqa: E402
from pyro_lfads.fitting.run import load_fitted  # noqa: E402


def main() -> None:
    args = parse_args(__doc__, "06_posterior_and_diagnostics")
    samples = 4 if args.tiny else 50
    dataset = lorenz_dataset(args.tiny, args.seed)
    run_dir = args.out / "run"
    written = fit_and_score(dataset, small_config(args.tiny, posterior_samples=samples, seed=args.seed), run_dir)
    _, _, model, guide = load_fitted(run_dir)  # best checkpoint, eval mode (dropout off)

    pyro.set_rng_seed(args.seed)
    predictive = pyro_lfads.predictive(run_dir, num_samples=samples, parallel=True)  # a pyro.infer.Predictive
    draws = predictive(dataset.valid)  # every validation trial: {"g0": (S, B, G), "factors": ..., "rates": ...}
    rates = draws["rates"].numpy()  # (S, B, T, N) counts per bin
    mean, lower, upper = rates.mean(0), np.quantile(rates, 0.05, 0), np.quantile(rates, 0.95, 0)
    truth = dataset.truth_counts("valid")

    data = to_inference_data(model, guide, dataset.valid, samples=samples, bin_ms=BIN_MS,
                             conditions=dataset.extras["valid_conditions"])
    data.to_netcdf(args.out / "inference_data.nc")
    g0_summary = az.summary(data, var_names=["g0"], kind="stats")  # mean, sd, hdi of each g0 entry
    simulated = data.posterior_predictive["obs"].values  # (1, S, B, T, N)
    low, high = np.quantile(simulated, [0.05, 0.95], axis=(0, 1))
    observed = data.observed_data["obs"].values
    khat = pareto_khat(log_importance_weights(model, guide, dataset.valid, samples=max(samples, 20)))

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    time_s = np.arange(truth.shape[1]) * BIN_MS / 1000
    to_hz = 1000 / BIN_MS
    for (trial, neuron), ax in zip(showcase(dataset), axes):
        ax.fill_between(time_s, lower[trial, :, neuron] * to_hz, upper[trial, :, neuron] * to_hz,
                        color="tab:red", alpha=0.25, label="90% band (Predictive)")
        ax.plot(time_s, mean[trial, :, neuron] * to_hz, color="tab:red", label="posterior mean")
        ax.plot(time_s, truth[trial, :, neuron] * to_hz, "k", lw=2, label="truth")
        ax.set(xlabel="time (s)", title=f"validation trial {trial}, neuron {neuron}")
    axes[0].set_ylabel("rate (spikes/s)")
    axes[0].legend(fontsize=8)
    ax = axes[3]
    ax.scatter(written["output_params"].ravel()[::5], mean.ravel()[::5], s=2, alpha=0.3)
    top = float(mean.max())
    ax.plot([0, top], [0, top], "k--", lw=1)
    ax.set(xlabel="write_posterior mean (counts/bin)", ylabel="Predictive mean (counts/bin)",
           title="two ways to the same average")
    fig.tight_layout()
    figures = [args.out / "predictive.png", args.out / "khat.png"]
    fig.savefig(figures[0], dpi=110)
    plot_khat(khat, figures[1])

    report(step=6, samples=samples, predictive_rate_r2=rate_r2(truth, mean),
           write_posterior_rate_r2=written["rate_r2"],
           mean_abs_difference=float(np.abs(mean - written["output_params"]).mean()),
           monte_carlo_error=float((rates.std(0) / np.sqrt(samples)).mean()),
           band90_covers_truth=float(np.mean((truth >= lower) & (truth <= upper))),
           ppc90_covers_data=float(np.mean((observed >= low) & (observed <= high))),
           g0_posterior_sd=float(g0_summary["sd"].mean()),
           khat_median=float(np.median(khat)), khat_fraction_below_0_7=float(np.mean(khat < 0.7)),
           figures=figures)


if __name__ == "__main__":
    main()
