"""Step 8: editing the model: behaviour as a second observation, read from some of the factors.

A Pyro model is a program, so a new kind of data is a new ``pyro.sample`` statement. LFADS's model
(``pyro_lfads.models.lfads.LFADSModel.forward``) scores the spikes and then calls ``self.observe_more(batch,
factors)`` inside the plate of trials, a method that does nothing. The behaviour model
(``pyro_lfads.models.behavior.BehaviorModel``) is LFADS with that one method filled in, line by line::

    class BehaviorModel(LFADSModel):
        def __init__(self, config, n_neurons, n_ext_inputs=0, likelihood=None, *, n_behavior):
            super().__init__(config, n_neurons, n_ext_inputs, likelihood)     # generator, priors, likelihood
            self.n_relevant = config.behavior_factors                          # K: the relevant factors
            self.behavior_readout = nn.Linear(self.n_relevant, n_behavior)      # W_b, b_b
            self.behavior_log_std = nn.Parameter(torch.zeros(n_behavior))       # log sigma_b, per dimension

        def observe_more(self, batch, factors):                                # inside pyro.plate("trials")
            mean = self.behavior_readout(factors[..., :self.n_relevant])       # f_t^rel = f_t[:K] only
            pyro.deterministic("behavior_mean", mean, event_dim=2)             # decoded behaviour, every trial
            if batch.behavior is None:                                         # new trials: nothing to score
                return
            noise = dist.Normal(mean, self.behavior_log_std.exp())
            with poutine.scale(scale=self.config.behavior_weight):            # 1: the ELBO
                pyro.sample("behavior", noise.to_event(2), obs=batch.behavior)  # y_t ~ N(W_b f_t^rel + b_b, s)

(The package's version also scores behaviour recorded in fewer bins than the trial, on those bins.)
Nothing else changes. The guide is LFADS's and never reads ``batch.behavior``, so the fitted model infers the
behaviour from spikes alone (``behavior_mean``, averaged into ``posterior.h5`` as ``behavior_pred``). Only the
first K factors reach the behaviour; the gradient of the behaviour term pulls the behaviourally relevant
dynamics into them, and the other factors are left to explain the spikes that behaviour does not.
``LFADSConfig(model="behavior", behavior_factors=K, behavior_weight=w)`` selects it.

The data (``pyro_lfads.synthetic.behavior_lorenz``): Lorenz system A drives the behaviour and half the neurons;
an independent Lorenz system B drives the other half. Plain LFADS and the behaviour model are fitted, and a
ridge map from factors (the behaviour model's relevant ones; all of plain LFADS's) to each system's state,
fitted on the training trials, is scored on the validation trials: the relevant factors should hold A and not B.

Figure ``behavior.png``: one validation trial's behaviour and the model's decoding of it; the R2 of A and B from
each model's factors.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import RidgeCV  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402

import pyro_lfads  # noqa: E402
from _common import parse_args, report, small_config  # noqa: E402
from pyro_lfads.synthetic.behavior_lorenz import make_behavior_lorenz_dataset  # noqa: E402

RELEVANT_FACTORS = 3  # system A is 3-dimensional


def behavior_dataset(tiny: bool, seed: int):
    """20 conditions x 10 trials of 50 bins (20 ms), 20 neurons; tiny: 4 x 5 trials of 20 bins, 8 neurons."""
    sizes = (dict(n_conditions=4, trials_per_condition=5, n_time=20, n_neurons=8) if tiny else
             dict(n_conditions=20, trials_per_condition=10, n_time=50, n_neurons=20))
    return make_behavior_lorenz_dataset(seed=seed, **sizes)


def state_r2(run_dir, dataset, key: str, n_factors: int | None) -> float:
    """Validation R2 of a ridge map from the first ``n_factors`` factors (all: None) to ``{split}_{key}``."""
    factors = {split: pyro_lfads.read_posterior(run_dir, split)["factors"][..., :n_factors] for split in ("train", "valid")}
    flat = {split: (factors[split].reshape(-1, factors[split].shape[-1]),
                    dataset.extras[f"{split}_{key}"].reshape(-1, 3)) for split in factors}
    ridge = RidgeCV(alphas=np.logspace(-4, 3, 15)).fit(*flat["train"])
    return float(r2_score(flat["valid"][1], ridge.predict(flat["valid"][0])))


def main() -> None:
    args = parse_args(__doc__, "08_behavior_in_the_model")
    dataset = behavior_dataset(args.tiny, args.seed)
    config = small_config(args.tiny, seed=args.seed)
    scores = {}
    for model, keys, relevant in (("lfads", {}, None),
                                  ("behavior", dict(model="behavior", behavior_factors=RELEVANT_FACTORS), RELEVANT_FACTORS)):
        run_dir = args.out / model
        pyro_lfads.fit(dataset, config.replace(**keys), run_dir, overwrite=True, progress=False)
        pyro_lfads.write_posterior(run_dir, dataset, progress=False)
        scores[model] = {"system_A_r2": state_r2(run_dir, dataset, "latents", relevant),
                         "system_B_r2": state_r2(run_dir, dataset, "irrelevant_latents", relevant)}
    decoded = pyro_lfads.read_posterior(args.out / "behavior", "valid")["behavior_pred"]
    truth = dataset.extras["valid_behavior"]
    behavior_r2 = float(r2_score(truth.reshape(-1, 2), decoded.reshape(-1, 2)))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    time_s = np.arange(truth.shape[1]) * 0.02
    for dim, color in ((0, "tab:blue"), (1, "tab:orange")):
        axes[0].plot(time_s, truth[0, :, dim], color=color, lw=2, alpha=0.5, label=f"behaviour {dim + 1}")
        axes[0].plot(time_s, decoded[0, :, dim], color=color, ls="--", label=f"decoded from spikes {dim + 1}")
    axes[0].set(xlabel="time (s)", title=f"a validation trial (behaviour R2 {behavior_r2:.2f} over all)")
    axes[0].legend(fontsize=8)
    positions = np.arange(2)
    for offset, system in ((-0.2, "system_A_r2"), (0.2, "system_B_r2")):
        axes[1].bar(positions + offset, [scores[m][system] for m in ("lfads", "behavior")], width=0.4,
                    label=system.replace("_r2", "").replace("_", " "))
    axes[1].set_xticks(positions, ["LFADS: all factors", f"behaviour model: first {RELEVANT_FACTORS}"])
    axes[1].set(ylabel="R2 of the state from the factors", title="what the factors hold")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    figure = args.out / "behavior.png"
    fig.savefig(figure, dpi=110)
    report(step=8, behavior_r2=behavior_r2, lfads=scores["lfads"], behavior_model=scores["behavior"],
           figures=[figure])


if __name__ == "__main__":
    main()
