"""Observation models: each maps factors (B, T, F) to the distribution of the
``obs`` site and owns its own learnable parameters.

An observation model is an ``nn.Module`` with

- ``support``: what the data must be ("counts", "nonnegative" or "real"),
  checked by :mod:`pyro_lfads.data` before training;
- ``forward(factors) -> (distribution, rates)``: a Pyro distribution with
  batch shape (B,) and event shape (T, N), and the rates (B, T, N), the
  quantity users want back (counts per bin for spike data);
- ``init_from_data(mean)``: optional data-driven initialisation from the
  per-neuron mean of the training data (N,).

To use another observation model, write one such class and add it to
``LIKELIHOODS`` below (see ``examples/`` for a worked case).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn


class PoissonLikelihood(nn.Module):
    """x_t ~ Poisson(r_t), r_t = exp(W_rate f_t + b) (Methods 1.2)."""

    support = "counts"

    def __init__(self, fac_dim: int, n_neurons: int):
        super().__init__()
        self.readout = nn.Linear(fac_dim, n_neurons)
        nn.init.normal_(self.readout.weight, std=1.0 / math.sqrt(fac_dim))
        nn.init.zeros_(self.readout.bias)

    def init_from_data(self, mean: torch.Tensor) -> None:
        """Start each neuron's log rate at the log of its mean count per bin."""
        with torch.no_grad():
            self.readout.bias.copy_(mean.clamp_min(1e-3).log())

    def forward(self, factors: torch.Tensor) -> tuple[dist.Distribution, torch.Tensor]:
        """factors (B, T, F) -> (Poisson with event shape (T, N), rates (B, T, N))."""
        log_rates = self.readout(factors)
        rates = log_rates.exp()
        return dist.Poisson(rates).to_event(2), rates


LIKELIHOODS = {"poisson": PoissonLikelihood}


def make_likelihood(name: str, fac_dim: int, n_neurons: int) -> nn.Module:
    """The observation model called ``name`` for F factors and N neurons."""
    return LIKELIHOODS[name](fac_dim, n_neurons)
