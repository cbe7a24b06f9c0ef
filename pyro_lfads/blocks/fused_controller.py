"""The controller and the generator over a whole trial as one autograd node, its backward written out:
the fast path of :meth:`~pyro_lfads.guides.lfads.LFADSGuide.controller_and_generator`.

Per bin t (the guide's loop, which stays the readable reference):

    c_t   = GRU_con(c_(t-1), E_t + W_cf f_(t-1))         E_t: the encoder's input gates, W_cf: the factors' columns
    [mu_t, log sigma_t^2] = W_co c_t + b_co,   u_t = mu_t + sigma_t eps_t
    g_t   = GRU_gen(g_(t-1), A_t + W_u u_t)              A_t: the external inputs' gates (b_ih without any)
    f_t   = W_fac (m_t * g_t)                            m_t: the dropout mask (none without dropout)

The controller's factor input is W_cf W_fac (m_(t-1) g_(t-1)), so one product of g_(t-1) gives both
the generator's hidden gates and the controller's factor gates (two without dropout's mask); the
factors themselves are read out after the scan, for all bins at once. The backward runs the bins
in reverse with the gates' derivatives precomputed for all bins (:mod:`pyro_lfads.blocks.fused_gru`),
and the weight gradients are one product each over all bins.

Shapes: T bins, R rows (trials, or trials x samples), C controller units, G generator units,
U inferred inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pyro_lfads.blocks.fused_gru import (clip_in_place, clipped_bins, gru_update, gru_update_backward,
                                         previous_bins, summed_product)


@dataclass
class ScanWeights:
    """The weights the scan reads (all of them tensors that autograd tracks outside the scan)."""

    con_weight_hh: torch.Tensor  # (3C, C)
    con_bias_hh: torch.Tensor  # (3C,)
    con_factor_weight: torch.Tensor  # (3C, G) W_cf W_fac: the controller's gates per unit of g_(t-1)
    posterior_weight: torch.Tensor  # (2U, C) W_co
    posterior_bias: torch.Tensor  # (2U,)
    gen_input_weight: torch.Tensor  # (3G, U) W_u
    gen_weight_hh: torch.Tensor  # (3G, G)
    gen_bias_hh: torch.Tensor  # (3G,)

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        return (self.con_weight_hh, self.con_bias_hh, self.con_factor_weight, self.posterior_weight,
                self.posterior_bias, self.gen_input_weight, self.gen_weight_hh, self.gen_bias_hh)


@dataclass
class ScanPath:
    """What the scan returns, time first: controller states (T, R, C), the loc and scale of q(u_t | .) and
    the inputs u drawn (each (T, R, U)), the generator's states (T, R, G) and, from a scan that read them
    bin by bin, the factors f_1:T (T, R, F) (None: read them out of the states)."""

    controller_states: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor
    inputs: torch.Tensor
    states: torch.Tensor
    factors: torch.Tensor | None = None


class ControllerGeneratorScan(torch.autograd.Function):
    """See the module's docstring. Arguments: enc_gates (T, R, 3C), c0 (R, C), g0 (R, G), noise (T, R, U),
    gen_in_gates (T, R, 3G), mask (T + 1, R, G) or None (m_0..m_T), con_clip, gen_clip, then the weights of
    :class:`ScanWeights` in order. Returns c, loc, scale, u, g (see :class:`ScanPath`)."""

    @staticmethod
    def forward(ctx, enc_gates, c0, g0, noise, gen_in_gates, mask, con_clip, gen_clip, *weights):
        w = ScanWeights(*weights)
        n_bins, rows, con3 = enc_gates.shape
        con, gen, n_in = con3 // 3, g0.shape[-1], noise.shape[-1]
        gen3 = 3 * gen
        new = enc_gates.new_empty
        g_states, c_states = new(n_bins + 1, rows, gen), new(n_bins + 1, rows, con)
        g_states[0], c_states[0] = g0, c0
        # of g_(t-1): [W_hh g + b_hh | W_cf W_fac m g], the generator's hidden gates and the controller's factor gates
        mixed, con_x, con_h = new(n_bins, rows, gen3 + con3), new(n_bins, rows, con3), new(n_bins, rows, con3)
        con_rz, con_n, post = new(n_bins, rows, 2 * con), new(n_bins, rows, con), new(n_bins, rows, 2 * n_in)
        scale, inputs = new(n_bins, rows, n_in), new(n_bins, rows, n_in)
        gen_x, gen_rz, gen_n = new(n_bins, rows, gen3), new(n_bins, rows, 2 * gen), new(n_bins, rows, gen)
        con_inside = new(clipped_bins(con_clip, n_bins), rows, con, dtype=torch.bool)
        gen_inside = new(clipped_bins(gen_clip, n_bins), rows, gen, dtype=torch.bool)
        mixed_weight_t = torch.cat([w.gen_weight_hh, w.con_factor_weight]).t()
        mixed_bias = torch.cat([w.gen_bias_hh, w.gen_bias_hh.new_zeros(con3)])
        gen_hh_t, factor_t, con_hh_t = w.gen_weight_hh.t(), w.con_factor_weight.t(), w.con_weight_hh.t()
        posterior_t, gen_input_t = w.posterior_weight.t(), w.gen_input_weight.t()
        gen_h = mixed[..., :gen3]
        bins = zip(range(n_bins), *_unbound(
            g_states, g_states[1:], c_states, c_states[1:], mixed, gen_h, mixed[..., gen3:], enc_gates, con_x,
            con_x[..., : 2 * con], con_x[..., 2 * con:], con_h, con_h[..., : 2 * con], con_h[..., 2 * con:], con_rz,
            con_rz[..., :con], con_rz[..., con:], con_n, post, post[..., :n_in], post[..., n_in:], scale, noise,
            inputs, gen_in_gates, gen_x, gen_x[..., : 2 * gen], gen_x[..., 2 * gen:], gen_h[..., : 2 * gen],
            gen_h[..., 2 * gen:], gen_rz, gen_rz[..., :gen], gen_rz[..., gen:], gen_n))
        for (t, g_prev, g, c_prev, c, mixed_t, gen_h_t, factor_gates, enc_t, con_x_t, con_x_rz, con_x_n, con_h_t,
             con_h_rz, con_h_n, con_rz_t, con_r, con_z, con_n_t, post_t, loc_t, log_var_t, scale_t, noise_t, u_t,
             gen_in_t, gen_x_t, gen_x_rz, gen_x_n, gen_h_rz, gen_h_n, gen_rz_t, gen_r, gen_z, gen_n_t) in bins:
            if mask is None:
                torch.addmm(mixed_bias, g_prev, mixed_weight_t, out=mixed_t)
            else:
                torch.addmm(w.gen_bias_hh, g_prev, gen_hh_t, out=gen_h_t)
                torch.mm(g_prev * mask[t], factor_t, out=factor_gates)
            torch.add(enc_t, factor_gates, out=con_x_t)
            torch.addmm(w.con_bias_hh, c_prev, con_hh_t, out=con_h_t)
            gru_update(con_x_rz, con_x_n, con_h_rz, con_h_n, c_prev, con_rz_t, con_r, con_z, con_n_t, c)
            if t < con_inside.shape[0]:
                clip_in_place(c, con_clip, con_inside[t])
            torch.addmm(w.posterior_bias, c, posterior_t, out=post_t)
            torch.mul(log_var_t, 0.5, out=scale_t).exp_()
            torch.addcmul(loc_t, scale_t, noise_t, out=u_t)
            torch.addmm(gen_in_t, u_t, gen_input_t, out=gen_x_t)
            gru_update(gen_x_rz, gen_x_n, gen_h_rz, gen_h_n, g_prev, gen_rz_t, gen_r, gen_z, gen_n_t, g)
            if t < gen_inside.shape[0]:
                clip_in_place(g, gen_clip, gen_inside[t])
        ctx.save_for_backward(noise, mask, g_states, c_states, mixed, con_h, con_rz, con_n, scale, inputs,
                              gen_rz, gen_n, con_inside, gen_inside, *weights)
        return c_states[1:], post[..., :n_in], scale, inputs, g_states[1:]

    @staticmethod
    def backward(ctx, d_c, d_loc, d_scale, d_inputs, d_g):
        (noise, mask, g_states, c_states, mixed, con_h, con_rz, con_n, scale, inputs, gen_rz, gen_n,
         con_inside, gen_inside, *weights) = ctx.saved_tensors
        w = ScanWeights(*weights)
        n_bins, rows, con = con_n.shape
        gen, n_in = gen_n.shape[-1], scale.shape[-1]
        gen3 = 3 * gen
        d_g, d_c = d_g.contiguous(), d_c.contiguous()
        dg, dc = d_g.clone(), d_c.clone()  # become the gradients of g_t and c_t
        d_mixed = torch.empty_like(mixed)
        d_gen_h, d_con_x = d_mixed[..., :gen3], d_mixed[..., gen3:]  # the controller's input gates: its factor gates
        d_gen_x, d_con_h = torch.empty_like(d_gen_h), torch.empty_like(con_h)
        d_post = d_g.new_empty(n_bins, rows, 2 * n_in)
        mixed_weight = torch.cat([w.gen_weight_hh, w.con_factor_weight])
        half_scale = 0.5 * scale
        gen_h = mixed[..., :gen3]
        # per bin: its own tensors and those of the bin before (the carries' targets; bin 0's are unused)
        bins = zip(range(n_bins), *_unbound(
            dg, previous_bins(dg), previous_bins(d_g), dc, previous_bins(dc), previous_bins(d_c), g_states, gen_h[..., 2 * gen:],
            gen_rz, gen_rz[..., :gen], gen_rz[..., gen:], gen_n, d_mixed, d_gen_h, d_gen_h[..., : 2 * gen],
            d_gen_h[..., 2 * gen:], d_gen_x, d_gen_x[..., : 2 * gen], d_gen_x[..., 2 * gen:], d_inputs, d_loc,
            d_scale, noise, half_scale, d_post, d_post[..., :n_in], d_post[..., n_in:], c_states, con_h[..., 2 * con:],
            con_rz, con_rz[..., :con], con_rz[..., con:], con_n, d_con_h, d_con_h[..., : 2 * con],
            d_con_h[..., 2 * con:], d_con_x, d_con_x[..., : 2 * con], d_con_x[..., 2 * con:]))
        carry_c = carry_g = None
        for (t, dg_t, dg_prev, d_g_prev, dc_t, dc_prev, d_c_prev, g_prev, gen_hn, gen_rz_t, gen_r, gen_z, gen_n_t,
             d_mixed_t, d_gen_h_t, d_gen_h_rz, d_gen_h_n, d_gen_x_t, d_gen_x_rz, d_gen_x_n, d_inputs_t, d_loc_t,
             d_scale_t, noise_t, half_scale_t, d_post_t, d_post_loc, d_post_log_var, c_prev, con_hn, con_rz_t, con_r,
             con_z, con_n_t, d_con_h_t, d_con_h_rz, d_con_h_n, d_con_x_t, d_con_x_rz, d_con_x_n) in reversed(list(bins)):
            if t < gen_inside.shape[0]:
                dg_t.mul_(gen_inside[t])
            gru_update_backward(dg_t, g_prev, gen_hn, gen_rz_t, gen_r, gen_z, gen_n_t, d_gen_h_rz, d_gen_h_n,
                                d_gen_x_n)
            d_gen_x_rz.copy_(d_gen_h_rz)
            du = torch.addmm(d_inputs_t, d_gen_x_t, w.gen_input_weight)
            torch.add(d_loc_t, du, out=d_post_loc)
            torch.mul(torch.addcmul(d_scale_t, du, noise_t), half_scale_t, out=d_post_log_var)
            dc_t.addmm_(d_post_t, w.posterior_weight)
            if t < con_inside.shape[0]:
                dc_t.mul_(con_inside[t])
            gru_update_backward(dc_t, c_prev, con_hn, con_rz_t, con_r, con_z, con_n_t, d_con_h_rz, d_con_h_n,
                                d_con_x_n)
            d_con_x_rz.copy_(d_con_h_rz)
            # the gradients of c_(t-1) and g_(t-1): through the updates' z (h_(t-1) - n) and their products
            carry_c = torch.addcmul(d_c_prev, dc_t, con_z, out=dc_prev) if t else dc_t * con_z
            carry_c.addmm_(d_con_h_t, w.con_weight_hh)
            carry_g = torch.addcmul(d_g_prev, dg_t, gen_z, out=dg_prev) if t else dg_t * gen_z
            if mask is None:
                carry_g.addmm_(d_mixed_t, mixed_weight)
            else:
                carry_g.addmm_(d_gen_h_t, w.gen_weight_hh)
                carry_g.addcmul_(d_con_x_t @ w.con_factor_weight, mask[t])
        g_prev = g_states[:-1]
        grads = ScanWeights(
            con_weight_hh=summed_product(d_con_h, c_states[:-1]), con_bias_hh=d_con_h.sum((0, 1)),
            con_factor_weight=summed_product(d_con_x, g_prev if mask is None else g_prev * mask[:-1]),
            posterior_weight=summed_product(d_post, c_states[1:]), posterior_bias=d_post.sum((0, 1)),
            gen_input_weight=summed_product(d_gen_x, inputs),
            gen_weight_hh=summed_product(d_gen_h, g_prev), gen_bias_hh=d_gen_h.sum((0, 1)))
        return (d_con_x, carry_c, carry_g, None, d_gen_x, None, None, None, *grads.as_tuple())


def controller_generator_scan(enc_gates: torch.Tensor, c0: torch.Tensor, g0: torch.Tensor, noise: torch.Tensor,
                              gen_in_gates: torch.Tensor, mask: torch.Tensor | None, con_clip: float,
                              gen_clip: float, weights: ScanWeights) -> ScanPath:
    """:class:`ControllerGeneratorScan` on its arguments (time first, see there) -> a :class:`ScanPath`."""
    return ScanPath(*ControllerGeneratorScan.apply(enc_gates, c0, g0, noise, gen_in_gates, mask, con_clip, gen_clip,
                                                   *weights.as_tuple()))


def _unbound(*tensors) -> list[tuple[torch.Tensor, ...]]:
    """Each tensor (T, ...) as its T views of one bin (a tuple of views passes as it is)."""
    return [x if isinstance(x, tuple) else x.unbind(0) for x in tensors]
