"""The LFADS generative program p(x, g0, u) as a Pyro model (Methods 1.2, 1.7).

    g0        ~ Normal(mu_g0, kappa)                     initial condition
    u_1:T     ~ AR(1)(tau, var) per input dimension      inferred inputs
    g_t       = GRU_gen(g_(t-1), [u_t, a_t])             generator (a_t: external inputs)
    f_t       = W_fac g_t   (W_fac row-normalised)       factors
    r_t       = exp(W_rate f_t + b)                      rates
    x_t       ~ Poisson(r_t)                             observations

The last two lines are the observation model, ``self.likelihood``: swap it
for another in ``likelihoods.py`` (Gaussian, negative binomial, Gamma,
zero-inflated Gamma, calcium) or one of your own.

The guide's hand-off: with a controller (``co_dim`` > 0) the guide has already
run g_1:T and f_1:T while it sampled u (its controller reads f_(t-1)). It hands
that run over as one documented object, a :class:`GeneratorRun`, in its ``u``
site's ``infer`` dict; replayed on the guide's trace, the model's ``u`` site
receives it and the model scores the rates of those very factors. Run on its
own (prior samples, no controller) the model runs the generator itself.

Stitching (Methods 1.8): a model of several recording sessions, each with its
own neurons, has one observation model per session (``self.likelihoods[s]``,
with the session's read-out W_rate^s); ``batch.session`` picks it. The
generator, the priors and the factor readout are shared by all sessions.

Sample sites: ``g0`` (B, G), ``u`` (B, T, U), ``obs`` (B, T, N); deterministic
sites ``gen_states`` (B, T, G), ``factors`` (B, T, F), ``rates`` (B, T, N)
and, where the observations' mean is not the rates (calcium), ``obs_mean``.
B trials, T bins, G generator units, U inferred inputs, F factors, N neurons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from pyro_lfads.config import LFADSConfig
from pyro_lfads.blocks.distributions import AR1Process, WeightedElements
from pyro_lfads.blocks.networks import ClippedGRUCell, FactorReadout

from .likelihoods import make_likelihood


@dataclass
class GeneratorRun:
    """What the guide hands the model: one run of the generator along the inputs it sampled.

    The guide's controller reads the factors of step t - 1 to choose u_t, so the guide runs the
    generator step by step while it samples u (:meth:`pyro_lfads.guides.lfads.LFADSGuide.controller_and_generator`).
    It attaches this record to its ``u`` site (``infer={GENERATOR_RUN: run}``); replaying the
    model on the guide's trace gives the model's ``u`` site the same ``infer`` dict, and the model
    takes states and factors from here instead of running the recurrence again. The factors are
    those the controller read, dropout mask included, so the rates are made from the very factors
    that chose the inputs.

    The controller's states ride along for the posterior's output (lfads-torch's ``con_states``);
    the model does not read them.

    Shapes: B trials, T bins, G generator units, U inferred inputs, F factors, C controller units.
    """

    g0: torch.Tensor  # (B, G) the initial condition
    inputs: torch.Tensor  # (B, T, U) the inferred inputs u_1:T the generator consumed
    states: torch.Tensor  # (B, T, G) g_1:T
    factors: torch.Tensor  # (B, T, F) f_1:T, after the generator's dropout
    controller_states: torch.Tensor | None = None  # (B, T, C) c_1:T, the controller's states that chose u


#: The key of a sample site's ``infer`` dict under which the guide hands over its GeneratorRun.
GENERATOR_RUN = "generator_run"


class Generator(nn.Module):
    """The generator RNN and its factor readout: the dynamical system of LFADS.

    The model owns it; the guide runs the very same module (step by step, with the controller)
    and hands its run over as a :class:`GeneratorRun`.
    """

    def __init__(self, input_dim: int, gen_dim: int, fac_dim: int, clip: float, dropout: float, fused: bool = True,
                 initial_map: bool = False):
        super().__init__()
        self.input_dim = input_dim
        self.cell = ClippedGRUCell(input_dim, gen_dim, clip, fused)
        self.readout = FactorReadout(gen_dim, fac_dim)
        self.dropout = nn.Dropout(dropout)
        self.initial_map = None
        if initial_map:  # g_0 = W_0 g0 + b_0, starting as the identity
            self.initial_map = nn.Linear(gen_dim, gen_dim)
            nn.init.eye_(self.initial_map.weight)
            nn.init.zeros_(self.initial_map.bias)

    def initial_state(self, g0: torch.Tensor) -> torch.Tensor:
        """The generator's state before bin 1 from the initial condition g0 (..., G): g0 itself, or
        W_0 g0 + b_0 with ``config.g0_map``."""
        return g0 if self.initial_map is None else self.initial_map(g0)

    def run(self, g0: torch.Tensor, u: torch.Tensor | None, ext_input: torch.Tensor | None,
            n_time: int) -> torch.Tensor:
        """g0 (..., B, G), inputs u (..., B, T, U) and a_t (B, T, E), known in advance (either may be
        None) -> states g_1:T (..., B, T, G), in one scan (:meth:`ClippedGRUCell.scan`).

        Dimensions left of the trials (a plate of samples, as ``Predictive(parallel=True)`` adds)
        run as more rows of the scan.
        """
        inputs = _generator_inputs(u, ext_input, g0, n_time)
        rows = self.initial_state(g0).reshape(-1, g0.shape[-1])
        states = self.cell.scan(inputs.reshape(rows.shape[0], n_time, inputs.shape[-1]), rows)
        return states.reshape(*g0.shape[:-1], n_time, states.shape[-1])

    def step(self, g: torch.Tensor, inputs_t: torch.Tensor) -> torch.Tensor:
        """One update: g (B, G), inputs_t [u_t, a_t] (B, U + E) -> g (B, G)."""
        return self.cell(inputs_t, g)

    def factors(self, states: torch.Tensor, readout_weight: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """states (..., G) -> factors (..., F), with dropout on the states while training: ``mask`` (..., G)
        from :meth:`dropout_mask` when given, else one drawn here.

        ``readout_weight``: ``self.readout.normalized_weight()``, computed once by a caller that reads
        the factors bin by bin (the guide's controller loop).
        """
        return self.readout(self.dropout(states) if mask is None else states * mask, readout_weight)

    def dropout_mask(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
        """A dropout mask of the states (kept units 1 / (1 - p), dropped 0) of ``shape`` (..., G), drawn in
        advance for a caller that reads the factors bin by bin; None when dropout is off (p = 0 or eval)."""
        if not self.training or self.dropout.p == 0:
            return None
        return self.dropout(like.new_ones(shape))


class InputPrior(nn.Module):
    """The learnable AR(1) prior over inferred inputs (Methods 1.7)."""

    def __init__(self, co_dim: int, tau_init: float, var_init: float):
        super().__init__()
        self.log_tau = nn.Parameter(torch.full((co_dim,), math.log(tau_init)))
        self.log_var = nn.Parameter(torch.full((co_dim,), math.log(var_init)))

    def forward(self, n_time: int) -> AR1Process:
        return AR1Process(self.log_tau.exp(), self.log_var.exp(), n_time)


class LFADSModel(nn.Module):
    """The generative program. Call it as a Pyro model: ``model(batch, kl_scale)``.

    Args:
        config: hyperparameters.
        n_neurons: N, neurons reconstructed; for a stitched model, a sequence
            of each session's N.
        n_ext_inputs: external (observed) inputs a_t fed to the generator.
        likelihood: an observation model (see ``likelihoods.py``) for a
            single-session model; by default the one ``config.likelihood`` names.
    """

    def __init__(self, config: LFADSConfig, n_neurons: int | Sequence[int], n_ext_inputs: int = 0,
                 likelihood: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.session_neurons = [n_neurons] if isinstance(n_neurons, int) else [int(n) for n in n_neurons]
        if likelihood is not None and len(self.session_neurons) > 1:
            raise ValueError("likelihood: give one observation model per session through config.likelihood")
        self.n_ext_inputs = n_ext_inputs
        self.generator = Generator(config.co_dim + n_ext_inputs, config.gen_dim, config.fac_dim,
                                   config.cell_clip, config.dropout, config.fused_recurrence, config.g0_map)
        self.ic_prior_mean = nn.Parameter(torch.zeros(config.gen_dim))
        self.input_prior = InputPrior(config.co_dim, config.ar_tau_init, config.ar_var_init) if config.co_dim else None
        self.likelihoods = nn.ModuleList([likelihood] if likelihood is not None else
                                         [make_likelihood(config, n) for n in self.session_neurons])

    @property
    def likelihood(self) -> nn.Module:
        """The observation model of session 0 (the only one of a single-session model)."""
        return self.likelihoods[0]

    def forward(self, batch, kl_scale: float = 1.0) -> torch.Tensor:
        """Score ``batch.recon_data`` (or simulate it when absent); returns the rates (B, T, N).

        Each entry's log-likelihood is weighted by ``batch.recon_weight`` (all 1 when it is None).

        ``kl_scale`` (> 0) multiplies the log densities of the latent sites
        ``g0`` and ``u`` (KL annealing), on top of ``config.kl_ic_scale`` and
        ``config.kl_co_scale``; the guide applies the same scales.
        """
        pyro.module("lfads_model", self)
        n_trials, n_time = batch.n_trials, batch.n_time
        ic_std = math.sqrt(self.config.ic_prior_var)
        with pyro.plate("trials", n_trials):
            with poutine.scale(scale=kl_scale * self.config.kl_ic_scale):
                g0 = pyro.sample("g0", dist.Normal(self.ic_prior_mean, ic_std).to_event(1))
            u, handed_over = None, None
            if self.input_prior is not None:
                with poutine.scale(scale=kl_scale * self.config.kl_co_scale):
                    u, handed_over = _sample_with_hand_off("u", self.input_prior(n_time))
            if handed_over is None:  # no controller, or not replaying a guide: run the generator here
                states = self.generator.run(g0, u, batch.ext_input, n_time)
                factors = self.generator.factors(states)
            else:  # the guide ran it on these very g0 and u, see GeneratorRun
                states, factors = handed_over.states, handed_over.factors
            observation = self.likelihoods[batch.session](factors)
            pyro.deterministic("gen_states", states, event_dim=2)
            pyro.deterministic("factors", factors, event_dim=2)
            pyro.deterministic("rates", observation.rates, event_dim=2)
            if observation.mean is not observation.rates:
                pyro.deterministic("obs_mean", observation.mean, event_dim=2)
            likelihood = observation.distribution  # element-wise, batch shape (B, T, N)
            if batch.recon_weight is not None:  # coordinated dropout, sample validation
                likelihood = WeightedElements(likelihood, batch.recon_weight)
            pyro.sample("obs", likelihood.to_event(2), obs=batch.recon_data)
            self.observe_more(batch, factors)
        return observation.rates

    def observe_more(self, batch, factors: torch.Tensor) -> None:
        """Observations beyond the spikes, made from the factors (B, T, F) inside the trials plate: none in
        LFADS. A variant of the model adds its sites here (:mod:`pyro_lfads.models.behavior`)."""


def _sample_with_hand_off(name: str, prior) -> tuple[torch.Tensor, GeneratorRun | None]:
    """``pyro.sample(name, prior)`` and the :class:`GeneratorRun` that the guide attached to its site of
    that name, when the model is replayed on the guide's trace (None otherwise)."""
    with poutine.trace() as site:
        value = pyro.sample(name, prior)
    return value, site.trace.nodes[name]["infer"].get(GENERATOR_RUN)


def _generator_inputs(u, ext_input, g0: torch.Tensor, n_time: int) -> torch.Tensor:
    """[u_t, a_t] for all t: (..., B, T, U + E), a_t broadcast over g0's (..., B, G) dimensions left of
    the trials; (..., B, T, 0) when there are neither."""
    leading = g0.shape[:-1]
    parts = [x.expand(*leading, *x.shape[-2:]) for x in (u, ext_input) if x is not None]
    if not parts:
        return g0.new_zeros(*leading, n_time, 0)
    return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
