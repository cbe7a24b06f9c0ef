"""The objective: run the guide, replay the model on its draws, and read everything off the two traces.

One draw of the latents per trial (per row of the batch): the guide samples g0 and u, and the
model is replayed on those very values (:func:`guide_and_model_traces`, the only place where
this happens). From the pair of traces come

- the loss that training minimises, :func:`negative_elbo`: Pyro's ``Trace_ELBO`` estimator
  -(log p(x, z) - log q(z | x)) with the KL-annealing scales of the sites, or, for
  ``config.elbo = "meanfield"``, ``TraceMeanField_ELBO``'s (the analytic KL where torch has one);
- the terms that training reports, :func:`elbo_terms` (reconstruction and KL, unscaled);
- the log importance weights log p(x, z) - log q(z | x) per row, :func:`log_importance_weights`;
- the posterior draws, :func:`sampled_values`: what ``pyro.infer.Predictive`` returns.

Shapes: B rows of the batch (trials, or trials x samples).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer.util import is_validation_enabled
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match
from torch.distributions import kl_divergence


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


def negative_elbo(model_trace, guide_trace, mean_field: bool = False) -> torch.Tensor:
    """The loss of one draw, summed over rows: -ELBO with each site's scale (KL annealing), a scalar.

    ``mean_field=False``: -(log p(x, z) - log q(z | x)) at the drawn z, ``Trace_ELBO``'s estimator.
    ``mean_field=True``: the KL of a latent site is analytic where torch registers one (q(g0) and
    p(g0), both Normal) and estimated at the draw elsewhere (u), ``TraceMeanField_ELBO``'s estimator.
    Differentiable (every latent is reparameterised).
    """
    elbo = 0.0
    for name, site in random_sites(model_trace):
        if site["is_observed"]:
            elbo = elbo + site["log_prob_sum"]
            continue
        guide_site = guide_trace.nodes[name]
        kl = _analytic_kl(guide_site["fn"], site["fn"]) if mean_field else None
        if kl is None:
            elbo = elbo + site["log_prob_sum"] - guide_site["log_prob_sum"]
        else:
            elbo = elbo - scale_and_mask(kl, guide_site["scale"], guide_site["mask"]).sum()
    return -elbo


def _analytic_kl(q, p) -> torch.Tensor | None:
    """KL(q || p) per row where torch knows it in closed form, else None."""
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return None


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
    """Every latent and deterministic site's value of a replayed model trace, as ``pyro.infer.Predictive``
    returns them ({"g0": (B, G), "u": (B, T, U), "rates": (B, T, N), "factors": ..., ...}); observed
    sites left out."""
    return {name: site["value"] for name, site in model_trace.nodes.items()
            if site["type"] == "sample" and (not site["is_observed"] or site["infer"].get("_deterministic"))}
