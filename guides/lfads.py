"""The LFADS inference program q(g0, u | x) as a Pyro guide (Methods 1.3-1.4).

    E_ic        = BiGRU_ic(x_1:T)  (final states of both directions)
    q(g0)       = Normal(mu, sqrt(sigma^2 + floor)),  [mu, log sigma^2] = W_ic E_ic
                  (with ic_posterior_rank r: N(mu, diag(sigma^2 + floor) + V V^T), V = W_V E_ic, G x r)
    E_con_t     = [fwd BiGRU_ci(x)_(t-lag), bwd BiGRU_ci(x)_(t+lag)]    (lag: config.ci_lag, 1)
    c_t         = GRU_con(c_(t-1), [E_con_t, f_(t-1)])           controller
    q(u_t | .)  = Normal(mu_t, sigma_t),  [mu_t, log sigma_t^2] = W_co c_t
    g_t         = GRU_gen(g_(t-1), [u_t, a_t]),  f_t = W_fac g_t  (the model's generator)

The hand-off: the guide runs the model's generator (it owns none), step by
step beside the controller, and hands that run, g_1:T and f_1:T with the
dropout mask the controller saw, to the model as a
:class:`~pyro_lfads.models.lfads.GeneratorRun` attached to its ``u`` site
(``infer``); see :mod:`pyro_lfads.models.lfads`. Its KL scales and sizes are the
model's config.

Dropout (Methods 1.9) on the encoder input, on E_ic before W_ic, and on the
controller's encoder input. With ``co_dim = 0`` only the initial-condition
encoder exists. The guide takes the model's arguments: ``guide(batch, kl_scale)``.

Causal variant (``config.causal``, for streaming): both encoders are forward-only
GRUs, so E_con_t has read x_1..x_t and no later bin, and q(g0) reads the first
``config.ic_window`` bins (see :mod:`pyro_lfads.extensions.streaming`).

Stitching (Methods 1.8): with several sessions, the encoders read
``W_in^s x_t`` (F wide, the session's read-in) instead of x_t; everything
else is shared.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from pyro_lfads.blocks.distributions import NoiseDrivenLowRankNormal, NoiseDrivenNormal, PathNormal
from pyro_lfads.blocks.fused_controller import ScanPath, ScanWeights, controller_generator_scan
from pyro_lfads.blocks.networks import ClippedGRUCell, ReadIn, make_encoder
from pyro_lfads.models.lfads import GENERATOR_RUN, Generator, GeneratorRun, LFADSModel


class LFADSGuide(nn.Module):
    """The approximate posterior, sharing the model's generator and config.

    Args:
        model: the LFADSModel whose generator this guide runs and whose config
            (sizes, KL scales, dropout) it reads.
        n_encod_neurons: neurons the encoders read; for a stitched model, a
            sequence of each session's count (each session gets a read-in).

    ``guide.model`` is a reference, not a submodule: the generator's parameters
    exist once, in the model (``model.parameters()``, ``lfads_model$$$generator.*``
    in Pyro's parameter store), and the guide's own are its encoders and controller.
    """

    def __init__(self, model: LFADSModel, n_encod_neurons: int | Sequence[int]):
        super().__init__()
        object.__setattr__(self, "model", model)  # bypasses nn.Module's registration of submodules
        config = self.config = model.config
        self.dropout = nn.Dropout(config.dropout)
        sessions = [n_encod_neurons] if isinstance(n_encod_neurons, int) else list(n_encod_neurons)
        self.read_ins = (nn.ModuleList([ReadIn(n, config.fac_dim, config.train_read_in) for n in sessions])
                         if len(sessions) > 1 else None)
        n_encod_neurons = sessions[0] if self.read_ins is None else config.fac_dim
        self.ic_encoder = make_encoder(n_encod_neurons, config.ic_enc_dim, config.causal, config.fused_recurrence)
        self.ic_posterior = nn.Linear(self.ic_encoder.output_size, 2 * config.gen_dim)
        nn.init.normal_(self.ic_posterior.weight, std=self.ic_encoder.output_size ** -0.5)
        nn.init.zeros_(self.ic_posterior.bias)
        if config.ic_posterior_rank:  # V of q(g0) = N(mu, diag(sigma^2) + V V^T), starting near 0
            self.ic_posterior_factor = nn.Linear(self.ic_encoder.output_size, config.gen_dim * config.ic_posterior_rank)
            nn.init.normal_(self.ic_posterior_factor.weight, std=0.01 * self.ic_encoder.output_size ** -0.5)
            nn.init.zeros_(self.ic_posterior_factor.bias)
        if config.co_dim:
            self.ci_encoder = make_encoder(n_encod_neurons, config.ci_enc_dim, config.causal, config.fused_recurrence)
            self.controller = ClippedGRUCell(self.ci_encoder.output_size + config.fac_dim, config.con_dim,
                                             config.cell_clip)
            self.controller_h0 = nn.Parameter(torch.zeros(config.con_dim))
            self.co_posterior = nn.Linear(config.con_dim, 2 * config.co_dim)
            nn.init.normal_(self.co_posterior.weight, std=config.con_dim ** -0.5)
            nn.init.zeros_(self.co_posterior.bias)

    @property
    def generator(self) -> Generator:
        """The model's generator, which the controller loop runs."""
        return self.model.generator

    def forward(self, batch, kl_scale: float = 1.0) -> None:
        pyro.module("lfads_guide", self)
        x = self.encoder_input(batch)
        q_g0 = self.initial_condition_posterior(x, batch)
        with pyro.plate("trials", batch.n_trials):
            with poutine.scale(scale=kl_scale * self.config.kl_ic_scale):
                g0 = pyro.sample("g0", q_g0)
            if self.config.co_dim:
                loc, scale, run = self.controller_and_generator(x, g0, batch)
                with poutine.scale(scale=kl_scale * self.config.kl_co_scale):
                    pyro.sample("u", PathNormal(loc, scale, run.inputs), infer={GENERATOR_RUN: run})

    def encoder_input(self, batch) -> torch.Tensor:
        """What the encoders read: ``batch.encod_data`` (B, T_enc, N_enc) after dropout, through the
        session's read-in (B, T_enc, F) in a stitched model. One row per trial, or per
        ``batch.encoder_repeats`` trials."""
        x = self.dropout(batch.encod_data)
        return x if self.read_ins is None else self.read_ins[batch.session](x)

    def initial_condition(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T_enc, N_enc) from :meth:`encoder_input` -> mean and std of q(g0), each (B, G) (the
        diagonal part's std with ``ic_posterior_rank``)."""
        return self._initial_condition(x)[:2]

    def _initial_condition(self, x: torch.Tensor):
        """(mean (B, G), diagonal std (B, G), low-rank factor V (B, G, r) or None) of q(g0). The encoder reads
        the first ``config.ic_window`` bins only, when that is set."""
        _, final = self.ic_encoder(x[:, : self.config.ic_window])
        final = self.dropout(final)
        loc, log_var = self.ic_posterior(final).chunk(2, dim=-1)
        scale = (log_var.exp() + self.config.ic_post_var_min).sqrt()
        if not self.config.ic_posterior_rank:
            return loc, scale, None
        return loc, scale, self.ic_posterior_factor(final).reshape(*loc.shape, self.config.ic_posterior_rank)

    def initial_condition_posterior(self, x: torch.Tensor, batch):
        """q(g0) of each row of ``batch`` (x from :meth:`encoder_input`), event shape (G,): a diagonal Normal,
        or N(mu, diag(sigma^2) + V V^T) with ``ic_posterior_rank``; drawn from ``batch.noise`` when it has it."""
        parts = self._initial_condition(x) if self.config.ic_posterior_rank else (*self.initial_condition(x), None)
        loc, scale, factor = (None if v is None else _repeat(v, batch.encoder_repeats) for v in parts)
        noise = None if batch.noise is None else batch.noise.g0
        if factor is not None:
            return (dist.LowRankMultivariateNormal(loc, factor, scale ** 2) if noise is None
                    else NoiseDrivenLowRankNormal(loc, factor, scale ** 2, noise))
        return (dist.Normal(loc, scale) if noise is None else NoiseDrivenNormal(loc, scale, noise)).to_event(1)

    def controller_and_generator(self, x: torch.Tensor, g0: torch.Tensor, batch, sample: bool = True
                                 ) -> tuple[torch.Tensor, torch.Tensor, GeneratorRun]:
        """Run controller and generator together and sample u_1:T (or, with ``sample=False``,
        take each u_t at the mean of q(u_t | u_<t, g0, x): the posterior-mean path).

        x (B, T_enc, N_enc) from :meth:`encoder_input`, g0 (..., B, G): dimensions left of the trials
        (a plate of samples outside ``trials``, as ``Predictive(parallel=True)`` adds) run as more
        rows, each its own path. Returns per-step loc and scale of q(u_t | u_<t, g0, x), each
        (..., B, T, U), and the generator's run along the path: the sampled u (..., B, T, U), the
        states (..., B, T, G) and the factors (..., B, T, F) that the controller read (one dropout
        mask, the same the model's rates will see), and the controller's states (..., B, T, C). Bins
        past the encoder window (forward prediction) get zero encoder input. The draws of u are
        made of ``batch.noise`` when the batch carries it (its rows those of g0), else of fresh noise.

        The loop below is the reference; with ``config.fused_recurrence`` the same recurrence runs as
        one autograd node (:mod:`pyro_lfads.blocks.fused_controller`).
        """
        n_time, leading = batch.n_time, g0.shape[:-1]
        enc = self.dropout(self.ci_encoder.lagged_sequence(x, self.config.ci_lag))
        if enc.shape[1] < n_time:
            enc = torch.nn.functional.pad(enc, (0, 0, 0, n_time - enc.shape[1]))
        # the controller's input [E_con_t, f_(t-1)]: the encoder part is known in advance, projected for all t at once
        w_enc, w_factors = self.controller.weight_ih.split([enc.shape[-1], self.config.fac_dim], dim=1)
        enc_gates = _rows(_repeat(torch.nn.functional.linear(enc, w_enc, self.controller.bias_ih),
                                  batch.encoder_repeats), leading)  # (R, T, 3 con_dim), R rows = prod(leading)
        g = self.generator.initial_state(g0).reshape(-1, g0.shape[-1])  # the generator's state before bin 1
        if not sample:
            noise = g.new_zeros(g.shape[0], n_time, self.config.co_dim)
        elif batch.noise is None:
            noise = torch.randn(g.shape[0], n_time, self.config.co_dim, dtype=g.dtype, device=g.device)
        else:
            noise = batch.noise.u.reshape(g.shape[0], n_time, -1)
        generator = self.generator
        masks = generator.dropout_mask((n_time + 1, *g.shape), g)  # m_0..m_T, or None
        ext = None if batch.ext_input is None else _rows(batch.ext_input, leading)  # (R, T, E)
        if self.config.fused_recurrence and torch.is_grad_enabled():  # without gradients the plain loop is faster
            path = self._fused_scan(enc_gates, g, noise, ext, masks, w_factors)
        else:
            path = self._scan(enc_gates, g, noise, ext, masks, w_factors)
        states = path.states.transpose(0, 1)  # (R, T, G)
        if path.factors is None:
            factors = generator.factors(states, mask=None if masks is None else masks[1:].transpose(0, 1))
        else:
            factors = path.factors.transpose(0, 1)
        run = GeneratorRun(g0, _unflat(path.inputs, leading), _unflat(states, leading, time_first=False),
                           _unflat(factors, leading, time_first=False), _unflat(path.controller_states, leading))
        return _unflat(path.loc, leading), _unflat(path.scale, leading), run

    def _scan(self, enc_gates, g, noise, ext, masks, w_factors) -> ScanPath:
        """The recurrence bin by bin: enc_gates (R, T, 3C), g = g0 (R, G), noise (R, T, U), ext (R, T, E) or
        None, masks (T + 1, R, G) or None -> the path, time first, with the factors the controller read
        (:class:`ScanPath`)."""
        generator = self.generator
        readout_weight = generator.readout.normalized_weight()
        factors = generator.factors(g, readout_weight, None if masks is None else masks[0])  # f_0
        c = self.controller_h0.expand(g.shape[0], -1)
        controller_states, locs, scales, inputs, states, factor_path = [], [], [], [], [], []
        for t in range(enc_gates.shape[1]):
            c = self.controller.step(enc_gates[:, t] + torch.nn.functional.linear(factors, w_factors), c)
            loc, log_var = self.co_posterior(c).chunk(2, dim=-1)
            scale = (0.5 * log_var).exp()
            u_t = loc + scale * noise[:, t]
            g = generator.step(g, u_t if ext is None else torch.cat([u_t, ext[:, t]], dim=-1))
            factors = generator.factors(g, readout_weight, None if masks is None else masks[t + 1])
            controller_states.append(c)
            locs.append(loc)
            scales.append(scale)
            inputs.append(u_t)
            states.append(g)
            factor_path.append(factors)
        return ScanPath(*(torch.stack(steps) for steps in (controller_states, locs, scales, inputs, states,
                                                            factor_path)))

    def _fused_scan(self, enc_gates, g, noise, ext, masks, w_factors) -> ScanPath:
        """:meth:`_scan` as one autograd node (:func:`~pyro_lfads.blocks.fused_controller.controller_generator_scan`)."""
        cell = self.generator.cell
        w_inputs, w_ext = cell.weight_ih.split([self.config.co_dim, cell.input_size - self.config.co_dim], dim=1)
        rows, n_time = enc_gates.shape[:2]
        gen_in_gates = (cell.bias_ih.expand(n_time, rows, -1) if ext is None else
                        torch.nn.functional.linear(ext.transpose(0, 1), w_ext, cell.bias_ih))
        weights = ScanWeights(
            con_weight_hh=self.controller.weight_hh, con_bias_hh=self.controller.bias_hh,
            con_factor_weight=w_factors @ self.generator.readout.normalized_weight(),
            posterior_weight=self.co_posterior.weight, posterior_bias=self.co_posterior.bias,
            gen_input_weight=w_inputs, gen_weight_hh=cell.weight_hh, gen_bias_hh=cell.bias_hh)
        return controller_generator_scan(enc_gates.transpose(0, 1), self.controller_h0.expand(rows, -1), g,
                                         noise.transpose(0, 1).contiguous(), gen_in_gates, masks,
                                         self.controller.clip, cell.clip, weights)


def _repeat(x: torch.Tensor, times: int) -> torch.Tensor:
    """Each row ``times`` times in a row (itself when times is 1)."""
    return x if times == 1 else x.repeat_interleave(times, dim=0)


def _rows(x: torch.Tensor, leading: torch.Size) -> torch.Tensor:
    """x (B, T, D), one row per trial, as (R, T, D): broadcast to (..., B, T, D) for the leading
    dimensions ``leading`` = (..., B) of the latents, then flattened (R = their product)."""
    return x.expand(*leading, *x.shape[1:]).reshape(-1, *x.shape[1:])


def _unflat(x: torch.Tensor, leading: torch.Size, time_first: bool = True) -> torch.Tensor:
    """(T, R, D) (or (R, T, D) with ``time_first=False``) -> (..., B, T, D), the rows unflattened to
    ``leading`` = (..., B)."""
    rows_first = x.transpose(0, 1) if time_first else x
    return rows_first.reshape(*leading, *rows_first.shape[1:])
