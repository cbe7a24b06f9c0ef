"""Causal, real-time inference: a causal LFADS run one time bin at a time, for one stream or many.

A causal model (``causal: true`` in the config) has forward-only encoders, so
its outputs at bin t depend on bins 1..t alone, and the guide's controller
never reads a later bin. :class:`StreamingLFADS` runs such a model online on
the posterior-mean path (g0 and every u_t at the mean of their posterior):

- **the initial condition**: q(g0) reads the first K = ``config.ic_window`` bins.
  While a trial is inside that window (bins 1..t, t < K), g0 is re-estimated
  from the bins seen so far, and the controller and generator rerun from bin 1
  with it, so the rates returned at bin t are the causal model's rates for a
  trial that ends at t. From bin K on g0 is fixed and each bin costs one step
  of the controller-input encoder, the controller and the generator.
- **what it returns**: the rates (S, N) and factors (S, F) of the current bin,
  equal to :func:`mean_path` of the batch model on the data up to that bin.

Per bin past the window nothing is allocated except the view of the counts:
every product writes into buffers made once (``torch.addmm(..., out=...)``
and the in-place gate arithmetic of :class:`~pyro_lfads.blocks.networks.InPlaceGRUStep`, on
the model's and the guide's own weights). Shapes: S streams, N_in neurons the encoders
read (held-in), N neurons with rates, F factors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from pyro_lfads.blocks.networks import InPlaceGRUStep
from pyro_lfads.fitting.batch import Batch, trial_chunks
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.run import Run


class StepOutput(NamedTuple):
    """The current bin's estimates, (S, N) rates and (S, F) factors.

    They are views of the streamer's buffers, overwritten by the next step: copy to keep.
    """

    rates: torch.Tensor
    factors: torch.Tensor


@torch.no_grad()
def mean_path(model, guide, batch: Batch) -> dict[str, torch.Tensor]:
    """The posterior-mean path of a batch, all bins at once: g0 at the mean of q(g0), each u_t at the
    mean of q(u_t | u_<t, g0, x). Returns ``g0`` (B, G), ``u`` (B, T, U) or None, ``factors``
    (B, T, F) and ``rates`` (B, T, N). Put model and guide in eval mode first (dropout off)."""
    x = guide.encoder_input(batch)
    g0, _ = guide.initial_condition(x)
    if model.config.co_dim:
        run = guide.controller_and_generator(x, g0, batch, sample=False)[2]
        u, factors = run.inputs, run.factors
    else:
        u, factors = None, model.generator.factors(model.generator.run(g0, None, batch.ext_input, batch.n_time))
    rates = model.likelihoods[batch.session](factors).rates
    return {"g0": g0, "u": u, "factors": factors, "rates": rates}


class StreamingLFADS:
    """Online inference with a fitted causal LFADS: ``step(counts)`` once per time bin.

    Args:
        model, guide: a causal model/guide pair (``config.causal``), e.g. from
            :meth:`pyro_lfads.fitting.run.Run.fitted`; they are put in eval mode.
        streams: S, the concurrent streams (trials running at once, each with its own state).
        session: the recording session of a stitched model whose neurons the streams carry.

    ``reset()`` starts a new trial on every stream (``reset([i, j])`` on some);
    each stream starts in that state.
    """

    def __init__(self, model, guide, streams: int = 1, session: int = 0):
        config = model.config
        if not config.causal:
            raise InputError("streaming needs a causal model: fit with 'causal: true' in the config")
        if not isinstance(streams, int) or isinstance(streams, bool) or streams < 1:
            raise InputError(f"streams: must be an integer >= 1, got {streams!r}")
        if not 0 <= session < len(model.likelihoods):
            raise InputError(f"session: {session} is not one of the model's {len(model.likelihoods)} sessions")
        model.eval()
        guide.eval()
        self.model, self.guide, self.config, self.session = model, guide, config, session
        self.streams, self.window = streams, config.ic_window
        self.n_in = guide.ic_encoder.gru.input_size if guide.read_ins is None else guide.read_ins[session].weight.shape[1]
        self.n_ext = model.n_ext_inputs
        likelihood = model.likelihoods[session]
        self.n_neurons = likelihood.readout.out_features
        with torch.no_grad():
            self._build(model, guide, likelihood, streams)
        self.reset()

    @classmethod
    def from_run(cls, run: Run | str | Path, streams: int = 1, *, which: str = "best", device: str = "cpu",
                 session: int = 0) -> "StreamingLFADS":
        """A streamer for the fitted causal model of ``run`` (a :class:`~pyro_lfads.fitting.run.Run` or its
        directory), checkpoint ``which``."""
        model, guide = Run.open(run).fitted(which, device)
        return cls(model, guide, streams, session)

    def _build(self, model, guide, likelihood, streams: int) -> None:
        """Weights laid out for ``addmm`` (transposed, contiguous) and every per-bin buffer."""
        cfg = self.config
        new = guide.ic_posterior.weight.new_zeros
        self._read_in_t = None if guide.read_ins is None else guide.read_ins[self.session].weight.t().contiguous()
        self.counts = new(streams, self.n_in)
        self._x = new(streams, cfg.fac_dim) if self._read_in_t is not None else self.counts
        # initial-condition encoder: used in the window only
        self._ic_gru = InPlaceGRUStep(guide.ic_encoder.gru, streams)
        self._ic_h0 = guide.ic_encoder.h0[0, 0]
        self._ic_h = new(streams, cfg.ic_enc_dim)
        generator = model.generator
        loc_weight, loc_bias = guide.ic_posterior.weight[: cfg.gen_dim], guide.ic_posterior.bias[: cfg.gen_dim]
        if generator.initial_map is not None:  # the generator's first state W_0 g0 + b_0, folded in
            loc_weight = generator.initial_map.weight @ loc_weight
            loc_bias = generator.initial_map.weight @ loc_bias + generator.initial_map.bias
        self._ic_loc_t, self._ic_loc_b = loc_weight.t().contiguous(), loc_bias
        self._gen_gru = InPlaceGRUStep(generator.cell, streams)  # the model's GRU step and factor readout
        self._fac_t = generator.readout.normalized_weight().t().contiguous()
        self._live = _PathState(new, streams, cfg, self.n_ext)  # the streams' current state
        self._scratch = _PathState(new, streams, cfg, self.n_ext)  # reruns inside the window
        self._enc_gates = self._enc_gates_seen = None
        if cfg.co_dim:
            self._ci_gru = InPlaceGRUStep(guide.ci_encoder.gru, streams)
            self._ci_h0 = guide.ci_encoder.h0[0, 0]
            self._ci_h = new(streams, cfg.ci_enc_dim)
            self._ci_past = new(cfg.ci_lag, streams, cfg.ci_enc_dim)  # states after the last ci_lag bins, a ring
            self._ci_slot = 0  # the ring's oldest entry: the state after bin t - ci_lag
            w_enc, w_fac = guide.controller.weight_ih.split([cfg.ci_enc_dim, cfg.fac_dim], dim=1)
            self._con_enc_t, self._con_fac_t = w_enc.t().contiguous(), w_fac.t().contiguous()
            self._con_gru = InPlaceGRUStep(guide.controller, streams)
            self._con_h0 = guide.controller_h0
            self._enc_gates = new(streams, 3 * cfg.con_dim)  # W_enc E_con_t + b_ih
            self._co_loc_t = guide.co_posterior.weight[: cfg.co_dim].t().contiguous()
            self._co_loc_b = guide.co_posterior.bias[: cfg.co_dim]
            self._enc_gates_seen = new(streams, self.window, 3 * cfg.con_dim)  # for reruns inside the window
        self._ext_seen = new(streams, self.window, self.n_ext)
        self.rates = new(streams, self.n_neurons)
        self._readout_t = likelihood.readout.weight.t().contiguous()
        self._readout_b = likelihood.readout.bias
        self._link = likelihood.link  # "log", "identity", or None: the rates come from the likelihood itself
        self._likelihood = likelihood
        self._bin = np.zeros(streams, dtype=np.int64)  # each stream's bin within its trial
        self._streams_in_window = 0

    # --- public --------------------------------------------------------------------------
    @torch.no_grad()
    def reset(self, streams: Sequence[int] | None = None) -> None:
        """Start a new trial on the given streams (all by default)."""
        index = list(range(self.streams)) if streams is None else list(streams)
        bad = [s for s in index if not 0 <= s < self.streams]
        if bad:
            raise InputError(f"reset: stream {bad[0]} is not one of 0..{self.streams - 1}")
        self._bin[index] = 0
        self._streams_in_window = int(np.count_nonzero(self._bin < self.window))
        self._ic_h[index] = self._ic_h0
        if self.config.co_dim:
            self._ci_h[index] = self._ci_h0
            self._ci_past[:, index] = self._ci_h0

    @torch.no_grad()
    def step(self, counts, ext_input=None) -> StepOutput:
        """Take one bin of counts (S, N_in) (and external inputs (S, E) if the model has them),
        return this bin's rates (S, N) and factors (S, F) for every stream."""
        self._take(counts, ext_input)
        if self._read_in_t is not None:
            torch.mm(self.counts, self._read_in_t, out=self._x)
        window = np.flatnonzero(self._bin < self.window) if self._streams_in_window else None
        if self.config.co_dim:
            self._encode_for_controller()
        if window is not None:
            self._window_step(window)
        self._advance(self._live, self._enc_gates if self.config.co_dim else None)
        if window is not None:
            self._rerun(window)
        self._bin += 1
        if window is not None:
            self._streams_in_window = int(np.count_nonzero(self._bin < self.window))
        return StepOutput(self._rates(), self._live.factors)

    # --- per bin -------------------------------------------------------------------------
    def _take(self, counts, ext_input) -> None:
        counts = torch.as_tensor(counts)
        if counts.shape != (self.streams, self.n_in):
            raise InputError(f"counts: expected shape ({self.streams}, {self.n_in}) (streams, neurons), "
                             f"got {tuple(counts.shape)}")
        self.counts.copy_(counts)
        if self.n_ext:
            if ext_input is None:
                raise InputError(f"ext_input: the model reads {self.n_ext} external inputs per bin; pass (S, E)")
            ext_input = torch.as_tensor(ext_input)
            if ext_input.shape != (self.streams, self.n_ext):
                raise InputError(f"ext_input: expected shape ({self.streams}, {self.n_ext}), got "
                                 f"{tuple(ext_input.shape)}")
            self._live.ext.copy_(ext_input)

    def _encode_for_controller(self) -> None:
        """Advance the controller-input encoder by this bin and set ``_enc_gates`` from its state after
        bin t - ci_lag (the initial state while t < ci_lag), as the guide's lagged encoder does."""
        self._ci_gru.project(self._x)
        self._ci_gru.update(self._ci_h)
        if not self.config.ci_lag:
            torch.addmm(self._con_gru.bias_ih, self._ci_h, self._con_enc_t, out=self._enc_gates)
            return
        oldest = self._ci_past[self._ci_slot]
        torch.addmm(self._con_gru.bias_ih, oldest, self._con_enc_t, out=self._enc_gates)
        oldest.copy_(self._ci_h)
        self._ci_slot = (self._ci_slot + 1) % self.config.ci_lag

    def _advance(self, path: "_PathState", enc_gates: torch.Tensor | None) -> None:
        """Controller, inferred input, generator and factors of every stream of ``path``, one bin on;
        ``enc_gates`` (S, 3 con_dim) is W_enc E_con_t + b_ih, ``path.ext`` holds a_t."""
        if self.config.co_dim:
            torch.addmm(enc_gates, path.factors, self._con_fac_t, out=self._con_gru.x_gates)
            self._con_gru.update(path.c)
            torch.addmm(self._co_loc_b, path.c, self._co_loc_t, out=path.u)
        self._gen_gru.project(path.gen_in)
        self._gen_gru.update(path.g)
        torch.mm(path.g, self._fac_t, out=path.factors)

    def _rates(self) -> torch.Tensor:
        if self._link is None:
            self.rates.copy_(self._likelihood(self._live.factors[:, None]).rates[:, 0])
        else:
            torch.addmm(self._readout_b, self._live.factors, self._readout_t, out=self.rates)
            if self._link == "log":
                self.rates.exp_()
        return self.rates

    # --- inside the initial-condition window ---------------------------------------------
    def _window_step(self, index: np.ndarray) -> None:
        """Advance the IC encoder and keep this bin's controller-encoder gates and external inputs."""
        self._ic_gru.project(self._x)
        h = self._ic_h.clone()
        self._ic_gru.update(h)
        self._ic_h[index] = h[index]
        bins = torch.as_tensor(self._bin[index])
        rows = torch.as_tensor(index)
        if self.config.co_dim:
            self._enc_gates_seen[rows, bins] = self._enc_gates[rows]
        self._ext_seen[rows, bins] = self._live.ext[rows]

    def _rerun(self, index: np.ndarray) -> None:
        """Streams inside the window: g0 from the bins so far, controller and generator rerun from bin 1
        (all streams at once, in the scratch state; each window stream's rows are kept at its bin)."""
        scratch, seen = self._scratch, self._bin[index]  # _bin not yet advanced: bins 0..seen read
        torch.addmm(self._ic_loc_b, self._ic_h, self._ic_loc_t, out=scratch.g)  # from g0 at the mean of q(g0)
        torch.mm(scratch.g, self._fac_t, out=scratch.factors)
        if self.config.co_dim:
            scratch.c.copy_(self._con_h0.expand_as(scratch.c))
        for t in range(int(seen.max()) + 1):
            scratch.ext.copy_(self._ext_seen[:, t])
            self._advance(scratch, self._enc_gates_seen[:, t] if self.config.co_dim else None)
            rows = index[seen == t]
            if rows.size:
                self._live.take_rows(scratch, torch.as_tensor(rows))


class _PathState:
    """The recurrent state of S streams along the posterior-mean path: controller c (S, con_dim),
    generator g (S, G), factors (S, F) and the generator's input [u_t, a_t] (S, U + E)."""

    def __init__(self, new, streams: int, config, n_ext: int):
        self.c = new(streams, config.con_dim) if config.co_dim else None
        self.g = new(streams, config.gen_dim)
        self.factors = new(streams, config.fac_dim)
        self.gen_in = new(streams, config.co_dim + n_ext)
        self.u, self.ext = self.gen_in[:, : config.co_dim], self.gen_in[:, config.co_dim:]

    def take_rows(self, other: "_PathState", rows: torch.Tensor) -> None:
        """Copy the state of streams ``rows`` from ``other``."""
        for name in ("c", "g", "factors", "gen_in"):
            if getattr(self, name) is not None:
                getattr(self, name)[rows] = getattr(other, name)[rows]


@torch.no_grad()
def split_mean_path(model, guide, split, *, session: int = 0, time_bins: int | None = None,
                    chunk: int = 256) -> dict[str, np.ndarray]:
    """:func:`mean_path` over every trial of a :class:`~pyro_lfads.data.Split`, in chunks of trials:
    ``rates`` (trials, T, N) and ``factors`` (trials, T, F) as float64 arrays."""
    model.eval()
    guide.eval()
    device = next(model.parameters()).device
    parts: dict[str, list] = {"rates": [], "factors": []}
    for _, batch in trial_chunks(split, max_rows=chunk, device=device, time_bins=time_bins, session=session):
        path = mean_path(model, guide, batch)
        for name, values in parts.items():
            values.append(path[name].double().cpu().numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


@torch.no_grad()
def replay_split(model, guide, split, *, session: int = 0) -> dict[str, np.ndarray]:
    """What a streamer returns for every trial of a split, all trials as concurrent streams, bin by
    bin: ``rates`` (trials, T, N) and ``factors`` (trials, T, F), float64.

    Bins the encoders read (``split.encod_data``) are streamed; the forward bins after them (NLB's
    forward prediction, no counts to stream) are the causal model's predictions from the whole
    observed trial, which is what a streamer knows at its last bin.
    """
    streamer = StreamingLFADS(model, guide, streams=split.n_trials, session=session)
    device = streamer.counts.device
    counts = torch.as_tensor(split.encod_data, dtype=torch.float32, device=device)
    path = split_mean_path(model, guide, split, session=session)
    for t in range(counts.shape[1]):
        out = streamer.step(counts[:, t])
        path["rates"][:, t] = out.rates.double().cpu().numpy()
        path["factors"][:, t] = out.factors.double().cpu().numpy()
    return path
