"""LFADS with behaviour in the model: some factors explain the behaviour as well as the spikes (TNDM-like).

The program is LFADS (:mod:`pyro_lfads.models.lfads`: the same generator, priors and likelihoods) with one
more observation site, made from the first ``behavior_factors`` factors only, the behaviourally relevant
ones; the other factors explain the spikes only::

    f_t^rel = f_t[:K]                                     K = config.behavior_factors
    y_t     ~ Normal(W_b f_t^rel + b_b, sigma_b)          behaviour, D dims, sigma_b learned per dim

The site ``behavior`` is scaled by ``config.behavior_weight`` (1: the ELBO; see
:class:`~pyro_lfads.config.LFADSConfig` for why it exists). The guide is LFADS's and never reads the
behaviour, so the fitted model infers behaviour from spikes alone: the deterministic site
``behavior_mean`` (B, T, D), W_b f_t^rel + b_b, is the decoded behaviour of any trial, with or without
recorded behaviour (``posterior.h5``'s ``{split}_behavior_pred``). A batch without behaviour
(``batch.behavior`` None) skips the site: the model is then LFADS plus that read-out.

Behaviour of fewer bins than the trial (T_b < T) is scored on its T_b bins.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from pyro_lfads.config import LFADSConfig

from .lfads import LFADSModel


class BehaviorModel(LFADSModel):
    """LFADS whose first ``config.behavior_factors`` factors also generate behaviour (D dims) through a
    linear read-out with learned Gaussian noise. Arguments as :class:`LFADSModel`'s, and ``n_behavior``, D."""

    def __init__(self, config: LFADSConfig, n_neurons: int, n_ext_inputs: int = 0, likelihood: nn.Module | None = None,
                 *, n_behavior: int):
        super().__init__(config, n_neurons, n_ext_inputs, likelihood)
        self.n_relevant = config.behavior_factors
        self.behavior_readout = nn.Linear(self.n_relevant, n_behavior)
        self.behavior_log_std = nn.Parameter(torch.zeros(n_behavior))

    def decode_behavior(self, factors: torch.Tensor) -> torch.Tensor:
        """Factors (..., F) -> the behaviour's mean (..., D), read from the relevant factors f[..., :K] only."""
        return self.behavior_readout(factors[..., : self.n_relevant])

    def observe_more(self, batch, factors: torch.Tensor) -> None:
        mean = self.decode_behavior(factors)
        pyro.deterministic("behavior_mean", mean, event_dim=2)
        if batch.behavior is None:
            return
        observed = batch.behavior.shape[-2]
        noise = dist.Normal(mean[..., :observed, :], self.behavior_log_std.exp())
        with poutine.scale(scale=self.config.behavior_weight):
            pyro.sample("behavior", noise.to_event(2), obs=batch.behavior)
