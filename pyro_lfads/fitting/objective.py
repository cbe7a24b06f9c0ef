"""Running a guide and replaying the model on its samples: the traces an ELBO is made of."""

from __future__ import annotations

import torch
from pyro import poutine


def guide_and_model_traces(model, guide, batch, kl_scale: float = 1.0):
    """(model trace, guide trace) for one draw of the latents per trial, log densities computed.

    The guide samples g0 and u; the model is replayed on those very values.
    """
    guide_trace = poutine.trace(guide).get_trace(batch, kl_scale)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch, kl_scale)
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    return model_trace, guide_trace


@torch.no_grad()
def posterior_draw(model, guide, batch) -> dict[str, torch.Tensor]:
    """One posterior draw per trial, as ``pyro.infer.Predictive`` makes it: the guide samples g0
    and u, the model is replayed on them. Returns every sample and deterministic site's value
    ({"g0": (B, G), "u": (B, T, U), "rates": (B, T, N), "factors": ..., ...}), observed sites left out."""
    guide_trace = poutine.trace(guide).get_trace(batch, 1.0)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch, 1.0)
    return {name: site["value"] for name, site in model_trace.nodes.items()
            if site["type"] == "sample" and (not site["is_observed"] or site["infer"].get("_deterministic"))}
