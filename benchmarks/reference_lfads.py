"""The LFADS objective and SVI step in plain PyTorch: the yardstick of what the Pyro layer costs.

It uses the package's own modules (the model's generator, priors and
observation model; the guide's encoders and controller) and computes exactly
the loss :class:`pyro_lfads.fitting.train.Trainer` minimises, with the same draws in
the same order: per trial,

    -ELBO_w = -log p(x | g0, u) - w (log p(g0) + log p(u) - log q(g0 | x) - log q(u | g0, x)),

divided by the batch size, plus w times the L2 penalty; one sample of g0 and u
per trial, reparameterised, drawn as ``Normal.rsample`` draws them. The step
is backward, gradient-norm clipping and one Adam update over all parameters
(one ``torch.optim.Adam``). Nothing Pyro does (traces, sites, messengers, the
parameter store) runs here.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal

from pyro_lfads.blocks.distributions import WeightedElements
from pyro_lfads.fitting.train import l2_penalty


class ReferenceLFADS:
    """The plain-PyTorch step on a (model, guide) pair built by ``build_model_and_guide``."""

    def __init__(self, model, guide):
        self.model, self.guide, self.config = model, guide, model.config
        self.params = [p for m in (model, guide) for p in m.parameters()]
        cfg = self.config
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                          eps=cfg.adam_eps)

    def loss(self, batch, kl_scale: float) -> torch.Tensor:
        """The per-trial loss of one draw (a scalar tensor)."""
        model, guide, cfg = self.model, self.guide, self.config
        x = guide.encoder_input(batch)
        ic_loc, ic_scale = guide.initial_condition(x)
        q_g0 = Normal(ic_loc, ic_scale)
        g0 = q_g0.rsample()
        # log p - log q of each latent, weighted by its KL scale (kl_ic_scale, kl_co_scale)
        log_ratio = cfg.kl_ic_scale * (Normal(model.ic_prior_mean, math.sqrt(cfg.ic_prior_var)).log_prob(g0)
                                       - q_g0.log_prob(g0)).sum(-1)
        if cfg.co_dim:  # the controller runs the generator; the rates are made from the factors it read
            loc, scale, run = guide.controller_and_generator(x, g0, batch)
            u = run.inputs
            log_ratio = log_ratio + cfg.kl_co_scale * (model.input_prior(batch.n_time).log_prob(u)
                                                       - Normal(loc, scale).log_prob(u).sum((-2, -1)))
            factors = run.factors
        else:
            factors = model.generator.factors(model.generator.run(g0, None, batch.ext_input, batch.n_time))
        observation = model.likelihoods[batch.session](factors)
        likelihood = observation.distribution
        if batch.recon_weight is not None:
            likelihood = WeightedElements(likelihood, batch.recon_weight)
        log_lik = likelihood.log_prob(batch.recon_data).sum((-2, -1))
        elbo = log_lik + kl_scale * log_ratio
        return -elbo.sum() / batch.n_trials + kl_scale * l2_penalty(model, guide, cfg)

    def step(self, batch, kl_scale: float) -> float:
        """One optimisation step; returns the loss before it."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(batch, kl_scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip_norm)
        self.optimizer.step()
        return float(loss.detach())
