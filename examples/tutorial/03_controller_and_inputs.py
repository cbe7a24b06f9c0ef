"""Step 3: the controller and the AR(1) prior of inferred inputs, on pulse data.

A system kicked from outside cannot be told from its initial condition alone.
The data (Methods 2.3, ``pyro_lfads.synthetic.chaotic_rnn.make_pulse_dataset``):
a chaotic RNN of 50 units, each unit a neuron, gets in every trial one pulse
at a random time between 250 and 750 ms.

The model gains inferred inputs u_t (U of them; ``co_dim``) that drive the
generator (Methods 1.2, 1.7; ``pyro_lfads.models.lfads``):

    g0        ~ Normal(mu_g0, kappa I)
    u_1       ~ Normal(0, v)                                 the AR(1) prior (InputPrior,
    u_t | u_(t-1) ~ Normal(a u_(t-1), v (1 - a^2))            pyro_lfads.blocks.distributions.AR1Process):
                  a = exp(-1 / tau), tau and v learned        smooth inputs, variance v, time scale tau
    g_t       = GRU_gen(g_(t-1), u_t)
    f_t, x_t  as in step 2

The guide gains a second encoder and the controller, an RNN that reads the
data and the factors it has caused so far (Methods 1.4; ``pyro_lfads.guides.lfads``):

    E_con_t   = BiGRU_ci(x_1:T)_t
    c_t       = GRU_con(c_(t-1), [E_con_t, f_(t-1)])
    q(u_t | u_<t, g0, x) = Normal(mu(c_t), sigma(c_t))

The guide runs the model's own generator (one set of weights) to know
f_(t-1): q(u) is sampled step by step, and the ELBO now has a second KL term,
for u. With inferred inputs the default config also turns on coordinated
dropout (``cd_rate`` 0.3), which keeps the controller from copying spikes
straight into the rates (the identity overfit; step 4).

This step fits the full model twice with ``pyro_lfads.fit``, with one inferred
input (``co_dim=1``) and without (``co_dim=0``), and scores both against the
true rates; the inferred input should peak at the true pulse.

Figures: ``controller.png`` (draws of the AR(1) prior before and after
training, one trial's inferred input, one neuron's rates with and without the
controller) and ``pulses.png`` (``pyro_lfads.diagnostics.input_figures.plot_pulse_aligned_inputs``:
every validation trial's inferred input aligned to its true pulse).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyro  # noqa: E402

from _common import BIN_MS, fit_and_score, parse_args, report, small_config  # noqa: E402
from pyro_lfads.evaluation.metrics import pulse_time_errors_ms  # noqa: E402
from pyro_lfads.models.lfads import InputPrior  # noqa: E402
from pyro_lfads.diagnostics.input_figures import plot_pulse_aligned_inputs  # noqa: E402
from pyro_lfads.fitting.run import load_fitted  # noqa: E402
from pyro_lfads.synthetic.chaotic_rnn import make_pulse_dataset  # noqa: E402


def pulse_dataset(tiny: bool, seed: int):
    """Pulses into a chaotic RNN: 40 conditions x 10 trials of 1 s (100 bins), 50 neurons;
    tiny: 4 x 5 trials of 0.4 s, 12 neurons, pulses between 100 and 300 ms."""
    if tiny:
        return make_pulse_dataset(seed=seed, n_conditions=4, trials_per_condition=5, n_units=12, n_time=40,
                                  pulse_window_ms=(100.0, 300.0))
    return make_pulse_dataset(seed=seed, n_conditions=40)


def prior_draws(prior: InputPrior, n_time: int, n_draws: int = 3) -> np.ndarray:
    """(n_draws, n_time) paths of the first input from an AR(1) prior."""
    pyro.set_rng_seed(0)
    return prior(n_time).sample((n_draws,))[..., 0].detach().numpy()


def main() -> None:
    args = parse_args(__doc__, "03_controller_and_inputs")
    dataset = pulse_dataset(args.tiny, args.seed)
    config = small_config(args.tiny, co_dim=1, seed=args.seed,
                          **({} if args.tiny else dict(batch_size=32, max_epochs=50)))
    with_inputs = fit_and_score(dataset, config, args.out / "run_controller")
    without = fit_and_score(dataset, config.replace(co_dim=0), args.out / "run_no_controller")

    _, _, model, _ = load_fitted(args.out / "run_controller")
    untrained = InputPrior(config.co_dim, config.ar_tau_init, config.ar_var_init)
    tau, var = model.input_prior.log_tau.exp().item(), model.input_prior.log_var.exp().item()
    pulse_ms = dataset.extras["valid_pulse_times_ms"]
    errors = pulse_time_errors_ms(with_inputs["co_means"], pulse_ms, BIN_MS)

    n_time = dataset.valid.n_time
    time_ms = np.arange(n_time) * BIN_MS
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    priors = ((untrained, "tab:gray", f"before: tau {config.ar_tau_init:g} bins"),
              (model.input_prior, "tab:blue", f"learned: tau {tau:.1f} bins"))
    for prior, color, label in priors:
        for i, path in enumerate(prior_draws(prior, n_time)):
            axes[0].plot(time_ms, path, color=color, lw=1, label=label if i == 0 else None)
    axes[0].set(xlabel="time (ms)", ylabel="u", title="draws of the AR(1) input prior")
    axes[0].legend(fontsize=8)
    trial = 0
    mean, std = with_inputs["co_means"][trial, :, 0], with_inputs["co_stds"][trial, :, 0]
    axes[1].plot(time_ms, mean, color="tab:blue", label="posterior mean of u")
    axes[1].fill_between(time_ms, mean - 2 * std, mean + 2 * std, color="tab:blue", alpha=0.2, label="±2 sd")
    axes[1].axvline(pulse_ms[trial], color="tab:red", ls="--", label="true pulse")
    axes[1].set(xlabel="time (ms)", ylabel="inferred input", title=f"validation trial {trial}")
    axes[1].legend(fontsize=8)
    truth = dataset.truth_counts("valid")
    neuron = int(truth[trial].var(0).argmax())
    to_hz = 1000 / BIN_MS
    axes[2].plot(time_ms, truth[trial, :, neuron] * to_hz, "k", lw=2, label="truth")
    for result, label in ((with_inputs, "with controller"), (without, "without")):
        axes[2].plot(time_ms, result["output_params"][trial, :, neuron] * to_hz,
                     label=f"{label}: R2 {result['rate_r2']:.3f}")
    axes[2].axvline(pulse_ms[trial], color="tab:red", ls="--")
    axes[2].set(xlabel="time (ms)", ylabel="rate (spikes/s)", title=f"trial {trial}, neuron {neuron}")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    figures = [args.out / "controller.png", args.out / "pulses.png"]
    fig.savefig(figures[0], dpi=110)
    plot_pulse_aligned_inputs(with_inputs["co_means"], pulse_ms, figures[1], bin_ms=BIN_MS)

    report(step=3, rate_r2_with_controller=with_inputs["rate_r2"], rate_r2_without_controller=without["rate_r2"],
           pulse_median_abs_error_ms=float(np.median(errors)), pulse_fraction_within_50ms=float(np.mean(errors <= 50)),
           learned_ar_tau_bins=tau, learned_ar_var=var, figures=figures)


if __name__ == "__main__":
    main()
