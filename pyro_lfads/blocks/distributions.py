"""Custom distributions: the AR(1) input prior and the controller's path posterior (event
shape (T, D): T time bins, D inferred inputs), a Normal and a low-rank Gaussian driven by noise given in advance,
the zero-inflated Gamma, and per-entry weights on an observation model.
"""

from __future__ import annotations

import torch
from pyro.distributions import Gamma, LowRankMultivariateNormal, Normal, TorchDistribution, constraints


class AR1Process(TorchDistribution):
    """Independent stationary AR(1) processes, one per input dimension (Methods 1.7).

    s_1 ~ N(0, var),  s_t | s_(t-1) ~ N(alpha s_(t-1), var (1 - alpha^2)),
    with alpha = exp(-1 / tau). The process is stationary: every s_t has
    variance ``var`` and Cov(s_t, s_(t+k)) = var * alpha^|k|.

    Args:
        tau: (..., D) autocorrelation times in bins, > 0.
        process_var: (..., D) process variances, > 0.
        n_time: T, the number of bins.
    """

    arg_constraints = {"tau": constraints.positive, "process_var": constraints.positive}
    support = constraints.independent(constraints.real, 2)
    has_rsample = True

    def __init__(self, tau: torch.Tensor, process_var: torch.Tensor, n_time: int, validate_args=None):
        self.tau, self.process_var = torch.broadcast_tensors(tau, process_var)
        self.n_time = int(n_time)
        batch_shape = self.tau.shape[:-1]
        event_shape = (self.n_time, self.tau.shape[-1])
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def alpha(self) -> torch.Tensor:
        return torch.exp(-1.0 / self.tau)

    def _step_scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Std of s_1 and of the innovation of s_t given s_(t-1), each (..., D)."""
        first = self.process_var.sqrt()
        innovation = (self.process_var * (1.0 - self.alpha**2)).sqrt()
        return first, innovation

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """value (..., T, D) -> log density (...)."""
        if self._validate_args:
            self._validate_sample(value)
        first_scale, innovation_scale = self._step_scales()
        alpha = self.alpha.unsqueeze(-2)
        first = Normal(0.0, first_scale).log_prob(value[..., 0, :]).sum(-1)
        rest = Normal(alpha * value[..., :-1, :], innovation_scale.unsqueeze(-2)).log_prob(value[..., 1:, :])
        return first + rest.sum((-2, -1))

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        noise = torch.randn(shape, dtype=self.tau.dtype, device=self.tau.device)
        first_scale, innovation_scale = self._step_scales()
        values = [first_scale * noise[..., 0, :]]
        for t in range(1, self.n_time):
            values.append(self.alpha * values[-1] + innovation_scale * noise[..., t, :])
        return torch.stack(values, dim=-2)

    def covariance(self) -> torch.Tensor:
        """(..., D, T, T) covariance of each dimension's process (for checks)."""
        lags = torch.arange(self.n_time, device=self.tau.device)
        lag = (lags[:, None] - lags[None, :]).abs()
        return self.process_var[..., None, None] * self.alpha[..., None, None] ** lag

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(AR1Process, _instance)
        new.tau = self.tau.expand(batch_shape + self.tau.shape[-1:])
        new.process_var = self.process_var.expand(batch_shape + self.process_var.shape[-1:])
        new.n_time = self.n_time
        super(AR1Process, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


class PathNormal(TorchDistribution):
    """The guide's q(u_1:T): a diagonal Normal at each step, drawn step by step.

    The controller computes loc_t and scale_t from u_(<t) (through the
    generator's factors), samples u_t = loc_t + scale_t * eps_t, and moves on.
    This distribution holds that path: :meth:`rsample` returns it, and
    :meth:`log_prob` of it is sum_t log N(u_t; loc_t, scale_t) = log q(u_1:T),
    the exact density of the values the generator consumed. It is not a
    density for other values (their locs and scales would differ), and it
    cannot draw new paths: a ``sample_shape`` repeats the path, as a point
    mass (``Delta``) and :meth:`expand` do. Independent paths come from the
    guide: run under a plate of samples (``Predictive(parallel=True)``,
    vectorised particles) its controller draws one per row, and loc, scale
    and path arrive with that plate's dimension in their batch shape.

    Args:
        loc, scale: (..., T, D) per-step means and standard deviations.
        path: (..., T, D) the sampled values.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.independent(constraints.real, 2)
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, path: torch.Tensor, validate_args=None):
        self.loc, self.scale, self.path = loc, scale, path
        super().__init__(loc.shape[:-2], loc.shape[-2:], validate_args=validate_args)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """The path (..., T, D), repeated over ``sample_shape``: (*sample_shape, ..., T, D)."""
        return self.path.expand(torch.Size(sample_shape) + self.path.shape) if sample_shape else self.path

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """value (*sample_shape, ..., T, D) -> (*sample_shape, ...), nats."""
        return Normal(self.loc, self.scale).log_prob(value).sum((-2, -1))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(PathNormal, _instance)
        full = batch_shape + self.event_shape
        new.loc, new.scale, new.path = self.loc.expand(full), self.scale.expand(full), self.path.expand(full)
        super(PathNormal, new).__init__(batch_shape, self.event_shape, validate_args=False)
        return new


class _DrivenByNoise:
    """What a distribution drawn from ``self.noise`` (batch shape, then any trailing noise dimensions) needs
    beside its ``rsample``: a ``sample`` without gradients, and an ``expand`` that expands the noise too."""

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        new.noise = self.noise.expand(torch.Size(batch_shape) + self.noise.shape[len(self.batch_shape):])
        return super().expand(batch_shape, _instance=new)


class NoiseDrivenNormal(_DrivenByNoise, Normal):
    """Normal(loc, scale) whose draw is loc + scale * noise for standard normal ``noise`` given in advance.

    The density is the Normal's; only where the randomness comes from differs. Posterior sampling gives
    each trial noise of its own (:func:`~pyro_lfads.fitting.batch.trial_noise`), so that a trial's draws
    of g0 do not depend on the trials that share its batch. A ``sample_shape`` repeats the draw.

    Args:
        loc, scale: (...) means and standard deviations.
        noise: (...) standard normal draws, loc's shape.
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor, validate_args=None):
        super().__init__(loc, scale, validate_args=validate_args)
        self.noise = noise.expand(self.batch_shape)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """loc + scale * noise, (*sample_shape, ...)."""
        value = self.loc + self.scale * self.noise
        return value.expand(torch.Size(sample_shape) + value.shape) if sample_shape else value



class ZeroInflatedGamma(TorchDistribution):
    """x = 0 with probability 1 - q; else x = s_min + y with y ~ Gamma(shape, rate).

    A mixed density (a point mass at 0 and a continuous part on (s_min, inf)),
    as lfads-torch's zero-inflated Gamma. Values in (0, s_min] are scored as
    if just above s_min. Zeros never produce NaN in the value or its gradient.

    Args (broadcastable): q in (0, 1), shape > 0, rate > 0, s_min >= 0.
    """

    arg_constraints = {"q": constraints.unit_interval, "shape": constraints.positive,
                       "rate": constraints.positive, "s_min": constraints.nonnegative}
    support = constraints.nonnegative
    _tiny = 1e-6

    def __init__(self, q, shape, rate, s_min, validate_args=None):
        self.q, self.shape, self.rate, self.s_min = torch.broadcast_tensors(
            torch.as_tensor(q), torch.as_tensor(shape), torch.as_tensor(rate), torch.as_tensor(s_min))
        super().__init__(self.q.shape, validate_args=validate_args)

    @property
    def mean(self) -> torch.Tensor:
        return self.q * (self.s_min + self.shape / self.rate)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        is_zero = value <= 0
        excess = torch.where(is_zero, torch.ones_like(value), (value - self.s_min).clamp_min(self._tiny))
        continuous = torch.log(self.q.clamp_min(self._tiny)) + Gamma(self.shape, self.rate).log_prob(excess)
        return torch.where(is_zero, torch.log1p(-self.q.clamp_max(1 - self._tiny)), continuous)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            nonzero = torch.rand(shape, device=self.q.device) < self.q.expand(shape)
            amount = self.s_min.expand(shape) + Gamma(self.shape, self.rate).sample(sample_shape)
            return torch.where(nonzero, amount, torch.zeros_like(amount))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(ZeroInflatedGamma, _instance)
        new.q, new.shape, new.rate, new.s_min = (x.expand(batch_shape) for x in
                                                 (self.q, self.shape, self.rate, self.s_min))
        super(ZeroInflatedGamma, new).__init__(batch_shape, validate_args=False)
        return new


class WeightedElements(TorchDistribution):
    """An element-wise distribution whose log density at each entry is multiplied by a weight.

    log_prob(x)[i] = weight[i] * base.log_prob(x)[i]. A weight of 0 leaves an
    entry unscored; coordinated dropout gives the entries it scores the weight
    1 / rate, so that over its random masks the expected log-likelihood is that
    of all entries. Sampling is the base distribution's.

    Args:
        base: a distribution of batch shape (..., T, N), empty event shape.
        weight: (..., T, N) non-negative weights, broadcastable to that shape.
    """

    arg_constraints = {}

    def __init__(self, base, weight: torch.Tensor, validate_args=None):
        self.base, self.weight = base, weight
        batch_shape = torch.broadcast_shapes(base.batch_shape, weight.shape)
        super().__init__(batch_shape, base.event_shape, validate_args=False)

    @property
    def support(self):
        return self.base.support

    @property
    def mean(self) -> torch.Tensor:
        return self.base.mean

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        log_p = self.base.log_prob(value)
        return torch.where(self.weight > 0, log_p * self.weight, torch.zeros_like(log_p))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.base.sample(sample_shape)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(WeightedElements, _instance)
        new.base, new.weight = self.base.expand(batch_shape), self.weight.expand(batch_shape)
        super(WeightedElements, new).__init__(batch_shape, self.base.event_shape, validate_args=False)
        return new


class NoiseDrivenLowRankNormal(_DrivenByNoise, LowRankMultivariateNormal):
    """LowRankMultivariateNormal(loc, V, d) whose draw is loc + V e_r + sqrt(d) * e_G for standard normal noise
    [e_G, e_r] given in advance (the low-rank q(g0) of ``ic_posterior_rank``; see :class:`NoiseDrivenNormal`).

    Args:
        loc, cov_diag: (..., G) means and diagonal variances d.
        cov_factor: (..., G, r) the low-rank factor V.
        noise: (..., G + r) standard normal draws.
    """

    def __init__(self, loc, cov_factor, cov_diag, noise: torch.Tensor, validate_args=None):
        super().__init__(loc, cov_factor, cov_diag, validate_args=validate_args)
        self.noise = noise.expand(self.batch_shape + (noise.shape[-1],))

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """loc + V e_r + sqrt(d) e_G, (*sample_shape, ..., G)."""
        n_gen = self.loc.shape[-1]
        diagonal, factor = self.noise[..., :n_gen], self.noise[..., n_gen:]
        value = (self.loc + (self.cov_factor @ factor.unsqueeze(-1)).squeeze(-1)
                 + self.cov_diag.sqrt() * diagonal)
        return value.expand(torch.Size(sample_shape) + value.shape) if sample_shape else value

