"""The objective: run the guide, replay the model on its draws, and read everything off the two traces.

One draw of the latents per trial (per row of the batch): the guide samples g0 and u, and the
model is replayed on those very values (:func:`guide_and_model_traces`, the only place where
this happens). From the pair of traces come

- the loss that training minimises is Pyro's ``Trace_ELBO`` (or ``TraceMeanField_ELBO``, or
  ``RenyiELBO``'s importance-weighted bound: :func:`make_elbo`), run on a :class:`TracedPair` so that the draw it used is kept for the report;
- the terms that training reports, :func:`elbo_terms` (reconstruction and KL, unscaled);
- the log importance weights log p(x, z) - log q(z | x) per row, :func:`log_importance_weights`;
- the posterior draws, :func:`sampled_values`, one per row, which
  :class:`~pyro_lfads.fitting.predictive.PosteriorPredictive` lays out as ``Predictive`` does, (S, B, ...).

Shapes: B rows of the batch (trials, or trials x samples).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from pyro import poutine
from pyro.infer import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match


def make_elbo(config) -> Trace_ELBO | TraceMeanField_ELBO | RenyiELBO:
    """The Pyro ELBO object ``config.elbo`` names. The IWAE's particles are a plate left of ``trials``
    (the model and guide take latents with dimensions left of the trials)."""
    if config.elbo == "iwae":
        return RenyiELBO(alpha=0.0, num_particles=config.iwae_particles, vectorize_particles=True,
                         max_plate_nesting=1)
    return TraceMeanField_ELBO() if config.elbo == "meanfield" else Trace_ELBO()


def guide_and_model_traces(model, guide, batch, kl_scale: float = 1.0, *, log_densities: bool = True):
    """(model trace, guide trace) of one draw of the latents per row of ``batch``.

    The guide samples g0 and u; the model is replayed on those very values (and receives the
    guide's :class:`~pyro_lfads.models.lfads.GeneratorRun` with them). Subsample sites are pruned;
    with ``log_densities`` every sample site's ``log_prob``, ``unscaled_log_prob`` and
    ``log_prob_sum`` are computed.
    """
    guide_trace = poutine.trace(guide).get_trace(batch, kl_scale)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch, kl_scale)
    if is_validation_enabled():
        check_model_guide_match(model_trace, guide_trace)
    model_trace, guide_trace = prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)
    if log_densities:
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
    return model_trace, guide_trace


def random_sites(trace) -> Iterator[tuple[str, dict]]:
    """(name, site) of every sample site that is a random variable: latent or observed, not a
    deterministic record such as ``rates``."""
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site["infer"].get("_deterministic"):
            yield name, site


class TracedPair:
    """A model and a guide wrapped so that the traces an ELBO object runs them under are kept.

    ``Trace_ELBO().differentiable_loss(pair.model, pair.guide, *args)`` is Pyro's own estimator of
    the loss; :meth:`traces` then reads the reported terms off that very draw. Only Pyro's public
    ``poutine.trace`` is used: each call of ``pair.model`` / ``pair.guide`` runs the wrapped
    program under a trace handler (nested inside the ELBO's own) and keeps the trace.
    """

    def __init__(self, model, guide):
        self.model, self.guide = _KeepsTrace(model), _KeepsTrace(guide)

    def traces(self):
        """(model trace, guide trace) of the last call, subsample sites pruned, log densities computed."""
        pair = [prune_subsample_sites(program.trace) for program in (self.model, self.guide)]
        for trace in pair:
            trace.compute_log_prob()
        return pair


class _KeepsTrace:
    """Calls a Pyro program under ``poutine.trace`` and keeps the trace of the last call."""

    def __init__(self, program):
        self.program, self.trace = program, None

    def __call__(self, *args, **kwargs):
        handler = poutine.trace(self.program)
        value = handler(*args, **kwargs)
        self.trace = handler.trace
        return value


def elbo_terms(model_trace, guide_trace) -> tuple[float, float]:
    """(reconstruction NLL, KL estimate) summed over rows, nats, without annealing scales.

    The KL estimate is log q(z | x) - log p(z) at the drawn z (g0 and u).
    """
    recon, kl = 0.0, 0.0
    for name, site in random_sites(model_trace):
        if site["is_observed"]:
            recon -= site["unscaled_log_prob"].sum().item()
        elif name in guide_trace.nodes:
            kl += (guide_trace.nodes[name]["unscaled_log_prob"].sum() - site["unscaled_log_prob"].sum()).item()
    return recon, kl


def log_density(trace) -> torch.Tensor:
    """Sum of the log densities of a trace's random sites per row: (B,), nats (unscaled: the true
    densities, whatever KL weights the model was trained with)."""
    total = 0.0
    for _, site in random_sites(trace):
        total = total + site["unscaled_log_prob"]
    return total


def log_importance_weights(model_trace, guide_trace) -> torch.Tensor:
    """log p(x, z) - log q(z | x) of each row's draw: (B,), nats."""
    return log_density(model_trace) - log_density(guide_trace)


def sampled_values(model_trace) -> dict[str, torch.Tensor]:
    """Every latent and deterministic site's value of a replayed model trace, one row per draw
    ({"g0": (B, G), "u": (B, T, U), "rates": (B, T, N), "factors": ..., ...}); observed sites left out."""
    return {name: site["value"] for name, site in model_trace.nodes.items()
            if site["type"] == "sample" and (not site["is_observed"] or site["infer"].get("_deterministic"))}


def iwae_bound(model, guide, batch, particles: int) -> float:
    """The IWAE bound of ``particles`` = K draws of each trial of ``batch``, log (1/K) sum_k w_k, summed over
    the trials: nats, unscaled (the model's true densities, whatever KL weights it trains with)."""
    log_w = log_importance_weights(*guide_and_model_traces(model, guide, batch.repeat_trials(particles)))
    return (torch.logsumexp(log_w.reshape(-1, particles), dim=-1) - math.log(particles)).sum().item()
