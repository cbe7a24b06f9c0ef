"""Observation models: each maps factors (B, T, F) to the distribution of the
``obs`` site and owns its own learnable parameters. The built-in ones also take factors
(..., B, T, F) with dimensions left of the trials (a plate of samples, ``Predictive(parallel=True)``).

An observation model is an ``nn.Module`` with

- ``support``: what the data must be ("counts", "nonnegative", "positive" or
  "real"), checked by :mod:`pyro_lfads.data` before training
  (:func:`data_support` answers it for a config's ``likelihood`` name);
- ``link``: how its ``rates`` follow from the read-out W f + b: "log"
  (rates = exp(W f + b)), "identity" (rates = W f + b), or None where they are
  made otherwise (the zero-inflated gamma's gate);
- ``forward(factors) -> Observation``: the element-wise distribution of
  ``obs`` (batch shape (B, T, N), one entry per trial, bin and neuron; the
  model masks entries and declares (T, N) the event), the ``rates`` (B, T, N) users want back
  (counts per bin for spikes and calcium; the mean signal otherwise) and the
  predicted ``mean`` of the observations (B, T, N);
- ``init_from_data(data)``: data-driven initialisation from the training
  observations (trials, T, N);
- ``readout``: the ``nn.Linear`` from factors to the (log) rates, which a
  stitched model initialises per session.

To add one, copy the class closest to what you need, edit it, and
``register_likelihood("name", MyLikelihood)``; then ``likelihood: name`` in a
config trains, samples and evaluates it like the built-in ones (see
``examples/custom_likelihood.py``). Or name it where it lives,
``likelihood: mypackage.noise:MyLikelihood`` (``pyro-lfads fit --likelihood``):
any process that reads such a config imports and registers it
(``pyro_lfads.models.likelihood_spec``). ``LFADSModel(config, n_neurons,
likelihood=MyLikelihood(...))`` builds a model with it directly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pyro.distributions as dist
import torch
from torch import nn

from pyro_lfads.blocks.distributions import ZeroInflatedGamma
from pyro_lfads.config import LIKELIHOOD_NAMES
from pyro_lfads.models.likelihood_spec import import_likelihood, interface_problem, is_spec


class Observation(NamedTuple):
    """What an observation model gives the generative program: a distribution of batch shape
    (B, T, N) and two (B, T, N) tensors."""

    distribution: dist.Distribution
    rates: torch.Tensor
    mean: torch.Tensor


def _readout(fac_dim: int, n_neurons: int) -> nn.Linear:
    """W f + b with W ~ Normal(0, 1/F), b = 0 (Methods 1.9)."""
    layer = nn.Linear(fac_dim, n_neurons)
    nn.init.normal_(layer.weight, std=1.0 / math.sqrt(fac_dim))
    nn.init.zeros_(layer.bias)
    return layer


def _neuron_stats(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron mean and variance over trials and bins of data (trials, T, N) -> (N,), (N,)."""
    flat = data.reshape(-1, data.shape[-1])
    return flat.mean(0), flat.var(0, correction=0)


class PoissonLikelihood(nn.Module):
    """x_t ~ Poisson(r_t), r_t = exp(W_rate f_t + b) (Methods 1.2). Rates in counts per bin."""

    support = "counts"
    link = "log"

    def __init__(self, fac_dim: int, n_neurons: int):
        super().__init__()
        self.readout = _readout(fac_dim, n_neurons)

    def init_from_data(self, data: torch.Tensor) -> None:
        """Start each neuron's log rate at the log of its mean count per bin."""
        with torch.no_grad():
            self.readout.bias.copy_(_neuron_stats(data)[0].clamp_min(1e-3).log())

    def forward(self, factors: torch.Tensor) -> Observation:
        rates = self.readout(factors).exp()
        return Observation(dist.Poisson(rates), rates, rates)


class GaussianLikelihood(nn.Module):
    """x_t ~ Normal(m_t, s^2), m_t = W f_t + b, one learned variance s^2 per neuron.

    For continuous data: EMG, LFP power, z-scored fluorescence. ``rates`` is the mean m_t.
    """

    support = "real"
    link = "identity"  # the readout gives the mean itself

    def __init__(self, fac_dim: int, n_neurons: int):
        super().__init__()
        self.readout = _readout(fac_dim, n_neurons)
        self.log_var = nn.Parameter(torch.zeros(n_neurons))

    def init_from_data(self, data: torch.Tensor) -> None:
        mean, var = _neuron_stats(data)
        with torch.no_grad():
            self.readout.bias.copy_(mean)
            self.log_var.copy_(var.clamp_min(1e-6).log())

    def forward(self, factors: torch.Tensor) -> Observation:
        mean = self.readout(factors)
        return Observation(dist.Normal(mean, (0.5 * self.log_var).exp()), mean, mean)


class NegativeBinomialLikelihood(nn.Module):
    """x_t ~ NegativeBinomial(mean r_t, dispersion k), r_t = exp(W f_t + b), one k per neuron.

    A gamma-Poisson mixture: Var x = r + r^2 / k, for over-dispersed counts;
    large k recovers the Poisson.
    """

    support = "counts"
    link = "log"

    def __init__(self, fac_dim: int, n_neurons: int):
        super().__init__()
        self.readout = _readout(fac_dim, n_neurons)
        self.log_dispersion = nn.Parameter(torch.full((n_neurons,), math.log(10.0)))

    def init_from_data(self, data: torch.Tensor) -> None:
        with torch.no_grad():
            self.readout.bias.copy_(_neuron_stats(data)[0].clamp_min(1e-3).log())

    def forward(self, factors: torch.Tensor) -> Observation:
        rates = self.readout(factors).exp()
        k = self.log_dispersion.exp()
        return Observation(dist.GammaPoisson(k, k / rates), rates, rates)


class GammaLikelihood(nn.Module):
    """x_t ~ Gamma(shape a, rate a / m_t), m_t = exp(W f_t + b), one shape a per neuron.

    For positive continuous data (e.g. deconvolved calcium with no zeros);
    the mean is m_t. Data with zeros needs the zero-inflated Gamma.
    """

    support = "positive"
    link = "log"

    def __init__(self, fac_dim: int, n_neurons: int):
        super().__init__()
        self.readout = _readout(fac_dim, n_neurons)
        self.log_shape = nn.Parameter(torch.zeros(n_neurons))

    def init_from_data(self, data: torch.Tensor) -> None:
        mean, var = _neuron_stats(data)
        with torch.no_grad():
            self.readout.bias.copy_(mean.clamp_min(1e-6).log())
            self.log_shape.copy_((mean**2 / var.clamp_min(1e-12)).clamp(1e-2, 1e3).log())

    def forward(self, factors: torch.Tensor) -> Observation:
        mean = self.readout(factors).exp()
        shape = self.log_shape.exp()
        return Observation(dist.Gamma(shape, shape / mean), mean, mean)


class ZeroInflatedGammaLikelihood(nn.Module):
    """x_t = 0 with probability 1 - q_t, else x_t - s_min ~ Gamma(a, a / m_t) (as lfads-torch).

    q_t = sigmoid(W_q f_t + b_q), m_t = exp(W f_t + b), one shape a per neuron;
    s_min per neuron is the smallest non-zero training value (fixed). For
    deconvolved calcium with many exact zeros; zeros never produce NaN.
    ``rates`` is the mean q_t (s_min + m_t).
    """

    support = "nonnegative"
    link = None  # rates = q (s_min + exp(W f + b)), q from the gate

    def __init__(self, fac_dim: int, n_neurons: int):
        super().__init__()
        self.readout = _readout(fac_dim, n_neurons)
        self.gate = _readout(fac_dim, n_neurons)
        self.log_shape = nn.Parameter(torch.zeros(n_neurons))
        self.register_buffer("s_min", torch.zeros(n_neurons))

    def init_from_data(self, data: torch.Tensor) -> None:
        flat = data.reshape(-1, data.shape[-1])
        nonzero = flat > 0
        fraction = nonzero.float().mean(0).clamp(1e-3, 1 - 1e-3)
        s_min = torch.where(nonzero, flat, torch.full_like(flat, math.inf)).min(0).values
        s_min = torch.where(torch.isfinite(s_min), s_min, torch.zeros_like(s_min))
        excess = torch.where(nonzero, flat - s_min, torch.zeros_like(flat))
        count = nonzero.sum(0).clamp_min(1)
        mean = excess.sum(0) / count
        var = ((excess - mean) ** 2 * nonzero).sum(0) / count
        with torch.no_grad():
            self.s_min.copy_(s_min)
            self.gate.bias.copy_(torch.logit(fraction))
            self.readout.bias.copy_(mean.clamp_min(1e-6).log())
            self.log_shape.copy_((mean**2 / var.clamp_min(1e-12)).clamp(1e-2, 1e3).log())

    def forward(self, factors: torch.Tensor) -> Observation:
        q = torch.sigmoid(self.gate(factors))
        mean = self.readout(factors).exp()
        shape = self.log_shape.exp()
        distribution = ZeroInflatedGamma(q, shape, shape / mean, self.s_min)
        rates = q * (self.s_min + mean)
        return Observation(distribution, rates, rates)


class CalciumLikelihood(nn.Module):
    """A generative model of dF/F driven by the rates (counts per bin).

        r_t = exp(W f_t + b)                          spikes per bin
        c_t = d c_(t-1) + r_t,  c_1 = r_1 / (1 - d)   indicator (AR(1) kernel, decay d per neuron)
        y_t ~ Normal(baseline + gain * c_t, s^2)       fluorescence

    c_1 is the indicator level that rates held at r_1 before the trial would
    leave. The decay d = exp(-1 / tau) has tau in bins, learned per neuron,
    starting at ``tau_init``. ``rates`` are the spike rates r_t; ``mean``
    is the predicted fluorescence.

    Fluorescence alone fixes each neuron's rates only up to a scale and an
    offset: gain x scale and baseline x offset trade off exactly. Compare
    the rates with other quantities per neuron up to a linear map (as
    ``benchmarks/likelihoods.py`` does), or fix the gain if it is known.
    """

    support = "real"
    link = "log"  # of the spike rates; the fluorescence is their AR(1) filter

    def __init__(self, fac_dim: int, n_neurons: int, tau_init: float = 10.0):
        super().__init__()
        self.readout = _readout(fac_dim, n_neurons)
        self.log_tau = nn.Parameter(torch.full((n_neurons,), math.log(tau_init)))
        self.baseline = nn.Parameter(torch.zeros(n_neurons))
        self.log_gain = nn.Parameter(torch.zeros(n_neurons))
        self.log_var = nn.Parameter(torch.zeros(n_neurons))

    def init_from_data(self, data: torch.Tensor) -> None:
        """Baseline at the 5th percentile, noise from the spread below the median, rates ~0.1/bin."""
        flat = data.reshape(-1, data.shape[-1])
        low = torch.quantile(flat, 0.05, dim=0)
        median = flat.median(0).values
        decay = self.decay().detach()
        initial_rate = 0.1
        with torch.no_grad():
            self.baseline.copy_(low)
            self.readout.bias.fill_(math.log(initial_rate))
            gain = (flat.mean(0) - low).clamp_min(1e-3) * (1 - decay) / initial_rate
            self.log_gain.copy_(gain.log())
            self.log_var.copy_(((median - low) / 2).clamp_min(1e-3).pow(2).log())

    def decay(self) -> torch.Tensor:
        return torch.exp(-1.0 / self.log_tau.exp())

    def indicator(self, rates: torch.Tensor) -> torch.Tensor:
        """rates (..., B, T, N) -> indicator level c (..., B, T, N) by the AR(1) kernel."""
        n_time = rates.shape[-2]
        decay = self.decay()  # (N,)
        steps = torch.arange(n_time, device=rates.device)
        lag = steps[:, None] - steps[None, :]  # (T, T): t - s
        kernel = torch.where(lag >= 0, decay[:, None, None] ** lag.clamp_min(0), 0.0)  # (N, T, T)
        driven = torch.einsum("nts,...sn->...tn", kernel, rates)
        history = decay ** (steps[:, None] + 1) * rates[..., :1, :] / (1 - decay)
        return driven + history

    def forward(self, factors: torch.Tensor) -> Observation:
        rates = self.readout(factors).exp()
        fluorescence = self.baseline + self.log_gain.exp() * self.indicator(rates)
        distribution = dist.Normal(fluorescence, (0.5 * self.log_var).exp())
        return Observation(distribution, rates, fluorescence)


LIKELIHOODS = {
    "poisson": PoissonLikelihood,
    "gaussian": GaussianLikelihood,
    "negbinom": NegativeBinomialLikelihood,
    "gamma": GammaLikelihood,
    "zig": ZeroInflatedGammaLikelihood,
    "calcium": CalciumLikelihood,
}


def register_likelihood(name: str, likelihood_class: type) -> None:
    """Make ``likelihood: name`` in a config build ``likelihood_class(fac_dim, n_neurons)``."""
    problem = interface_problem(likelihood_class)
    if problem:
        raise TypeError(problem)
    LIKELIHOODS[name] = likelihood_class
    if name not in LIKELIHOOD_NAMES:
        LIKELIHOOD_NAMES.append(name)


def lookup_likelihood(name: str) -> type:
    """The observation model ``name`` names: a registered name, or a ``package.module:ClassName`` spec,
    imported and registered under the spec on first use (InputError in one line if that fails)."""
    if name not in LIKELIHOODS and is_spec(name):
        register_likelihood(name, import_likelihood(name))
    return LIKELIHOODS[name]


def data_support(likelihood: str) -> str:
    """What data the observation model named ``likelihood`` accepts: "counts" (non-negative integers),
    "nonnegative" (>= 0), "positive" (> 0) or "real" (finite)."""
    return lookup_likelihood(likelihood).support


def make_likelihood(config, n_neurons: int) -> nn.Module:
    """The observation model that ``config.likelihood`` names, for config.fac_dim factors."""
    if config.likelihood == "calcium":
        return CalciumLikelihood(config.fac_dim, n_neurons, tau_init=config.calcium_tau_init)
    return lookup_likelihood(config.likelihood)(config.fac_dim, n_neurons)
