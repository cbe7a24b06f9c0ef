"""Step 2: LFADS without inputs. The initial condition alone, as a Pyro model and guide.

The generative model p(x, g0), for each trial (Methods 1.2, without inputs):

    g0   ~ Normal(0, kappa I)                      initial condition (G,)
    g_t  = GRU(g_(t-1))                            generator, no input: g_1:T follows from g0
    f_t  = W_fac g_t                               factors (F,), W_fac rows of unit length
    x_t  ~ Poisson(exp(W_rate f_t + b))            spike counts of the N neurons

The guide q(g0 | x), the encoder (Methods 1.3):

    E    = [last state of GRU_fwd(x_1:T), last state of GRU_bwd(x_T:1)]
    q(g0 | x) = Normal(mu(E), sigma(E))            a linear map of E

Training maximises the ELBO, E_q[log p(x | g0)] - KL(q(g0 | x) || p(g0)),
with ``pyro.infer.SVI`` and ``Trace_ELBO``: one draw of g0 per trial per
step. The two classes below are that program and nothing more, built from
the package's own pieces: the generator (``pyro_lfads.models.lfads.Generator``:
the GRU and the factor readout), the encoder (``pyro_lfads.blocks.networks.BidirectionalEncoder``)
and the Poisson observation model (``pyro_lfads.models.likelihoods``).

What the full ``LFADSModel``/``LFADSGuide`` add with ``co_dim=0`` (fitted here
the same way, plain SVI, and scored on the same validation trials): a learned
prior mean of g0; a floor on the variance of q(g0); dropout on the encoder
input, on E and on the generator state; the model and guide take a ``Batch``
(encoder input, reconstruction target, masks for coordinated dropout and
sample validation, external inputs, the recording session) and a KL weight
(step 4); any observation model (step 5); a controller and inferred inputs
(step 3). ``pyro_lfads.fit`` adds to the SVI loop the KL and L2 ramps,
learning-rate decay, validation and checkpoints.

Figure ``initial_condition.png``: the model and the guide side by side, the
training loss of both pairs, and true against inferred rates.
"""

from __future__ import annotations

import inspect
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402
from pyro.infer import SVI, Predictive, Trace_ELBO  # noqa: E402
from torch import nn  # noqa: E402

from _common import BIN_MS, lorenz_dataset, parse_args, report, showcase, small_config  # noqa: E402
from pyro_lfads.fitting.batch import split_batch  # noqa: E402
from pyro_lfads.guides.lfads import LFADSGuide  # noqa: E402
from pyro_lfads.evaluation.metrics import rate_r2  # noqa: E402
from pyro_lfads.models.lfads import Generator, LFADSModel  # noqa: E402
from pyro_lfads.models.likelihoods import PoissonLikelihood  # noqa: E402
from pyro_lfads.blocks.networks import BidirectionalEncoder  # noqa: E402


class ICModel(nn.Module):
    """p(x, g0): spikes x (B, T, N) from an initial condition g0 (B, G) through the generator."""

    def __init__(self, n_neurons, gen_dim, fac_dim, kappa=0.1):
        super().__init__()
        self.gen_dim, self.kappa = gen_dim, kappa
        self.generator = Generator(0, gen_dim, fac_dim, clip=5.0, dropout=0.0)  # GRU + W_fac
        self.likelihood = PoissonLikelihood(fac_dim, n_neurons)  # exp(W_rate f + b), Poisson

    def forward(self, x):
        pyro.module("ic_model", self)
        n_trials, n_time, _ = x.shape
        with pyro.plate("trials", n_trials):
            prior = dist.Normal(0.0, self.kappa ** 0.5).expand([self.gen_dim])
            g0 = pyro.sample("g0", prior.to_event(1))          # g0 ~ N(0, kappa I)
            states = self.generator.run(g0, None, None, n_time)  # g_1:T  (B, T, G)
            factors = self.generator.factors(states)           # f_1:T  (B, T, F)
            observation = self.likelihood(factors)
            pyro.deterministic("rates", observation.rates, event_dim=2)
            pyro.sample("obs", observation.distribution.to_event(2), obs=x)


class ICGuide(nn.Module):
    """q(g0 | x): a bidirectional GRU reads spikes x (B, T, N); a linear map gives q's mean, scale."""

    def __init__(self, n_neurons, gen_dim, enc_dim):
        super().__init__()
        self.encoder = BidirectionalEncoder(n_neurons, enc_dim)
        self.to_g0 = nn.Linear(self.encoder.output_size, 2 * gen_dim)

    def forward(self, x):
        pyro.module("ic_guide", self)
        _, final = self.encoder(x)                          # E  (B, 2 enc_dim)
        loc, log_var = self.to_g0(final).chunk(2, dim=-1)
        with pyro.plate("trials", x.shape[0]):
            posterior = dist.Normal(loc, (0.5 * log_var).exp())
            pyro.sample("g0", posterior.to_event(1))        # g0 ~ q(g0 | x)


def train(model, guide, arguments, split, steps: int, seed: int) -> list[float]:
    """Plain SVI on minibatches of 16 training trials; ``arguments(batch)`` is what model and guide
    take. Returns the loss (-ELBO, nats per trial) of every step."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model.train()
    guide.train()
    svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.01, "clip_norm": 200.0}), Trace_ELBO())
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        batch = split_batch(split, np.sort(rng.choice(split.n_trials, 16, replace=False)))
        losses.append(svi.step(*arguments(batch)) / batch.n_trials)
    return losses


def score(model, guide, arguments, split, truth, samples: int) -> dict:
    """Validation -ELBO per trial (``samples`` draws) and the rate R2 of the posterior mean rates,
    averaged over ``samples`` draws by ``Predictive``."""
    model.eval()
    guide.eval()
    batch = split_batch(split, slice(None))
    loss = Trace_ELBO(num_particles=samples).loss(model, guide, *arguments(batch)) / batch.n_trials
    rates = Predictive(model, guide=guide, num_samples=samples, return_sites=["rates"])(*arguments(batch))["rates"]
    return {"valid_loss": loss, "rate_r2": rate_r2(truth, rates.mean(0).numpy()), "rates": rates.mean(0).numpy()}


def code_panel(ax, cls) -> None:
    """Draw a class's source in monospace on an empty axis."""
    ax.text(0, 1, textwrap.dedent(inspect.getsource(cls)), family="monospace", fontsize=7.2, va="top")
    ax.set_axis_off()


def main() -> None:
    args = parse_args(__doc__, "02_initial_condition_only",
                      lambda p: p.add_argument("--steps", type=int, default=600, help="SVI steps of each fit"))
    steps, samples = (5, 2) if args.tiny else (args.steps, 20)
    dataset = lorenz_dataset(args.tiny, args.seed)
    config = small_config(args.tiny)
    n_neurons, truth = dataset.train.n_neurons, dataset.truth_counts("valid")
    train_counts = split_batch(dataset.train, slice(None)).recon_data

    pyro.set_rng_seed(args.seed)
    simple_model = ICModel(n_neurons, config.gen_dim, config.fac_dim, config.ic_prior_var)
    simple_guide = ICGuide(n_neurons, config.gen_dim, config.ic_enc_dim)
    full_model = LFADSModel(config, n_neurons)
    full_guide = LFADSGuide(full_model, n_neurons)
    for model in (simple_model, full_model):
        model.likelihood.init_from_data(train_counts)  # each neuron's bias b starts at its log mean count

    pairs = {"tutorial ICModel/ICGuide": (simple_model, simple_guide, lambda batch: (batch.recon_data,)),
             "full LFADSModel/LFADSGuide, co_dim=0": (full_model, full_guide, lambda batch: (batch, 1.0))}
    losses, scores = {}, {}
    for name, (model, guide, arguments) in pairs.items():
        losses[name] = train(model, guide, arguments, dataset.train, steps, args.seed)
        scores[name] = score(model, guide, arguments, dataset.valid, truth, samples)

    fig, axes = plt.subplots(2, 2, figsize=(14, 8.5), gridspec_kw={"height_ratios": [0.7, 1]})
    code_panel(axes[0, 0], ICModel)
    code_panel(axes[0, 1], ICGuide)
    ax = axes[1, 0]
    for name, curve in losses.items():
        window = max(1, len(curve) // 20)
        ax.plot(np.convolve(curve, np.ones(window) / window, mode="valid"), label=name)
    ax.set(xlabel="SVI step", ylabel="-ELBO (nats per trial, running mean)", title="training with Trace_ELBO")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    [(trial, neuron)] = showcase(dataset, 1)
    time_s = np.arange(truth.shape[1]) * BIN_MS / 1000
    ax.plot(time_s, truth[trial, :, neuron] * 1000 / BIN_MS, "k", lw=2, label="truth")
    for name, result in scores.items():
        ax.plot(time_s, result["rates"][trial, :, neuron] * 1000 / BIN_MS, label=f"{name}: R2 {result['rate_r2']:.3f}")
    ax.set(xlabel="time (s)", ylabel="rate (spikes/s)", title=f"validation trial {trial}, neuron {neuron}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figure = args.out / "initial_condition.png"
    fig.savefig(figure, dpi=100)

    report(step=2, steps=steps, figures=[figure],
           **{key: {"rate_r2": result["rate_r2"], "valid_loss": result["valid_loss"]}
              for key, result in zip(("tutorial", "full"), scores.values())})


if __name__ == "__main__":
    main()
