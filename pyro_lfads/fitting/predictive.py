"""``pyro.infer.Predictive`` over a fitted model and guide: the public posterior API.

    predictive = pyro_lfads.predictive(run, num_samples=50)    # a Run, its directory, or (model, guide)
    draws = predictive(dataset.valid)                           # a Split (all its trials) or a Batch
    draws["rates"].mean(0)                                      # (B, T, N) posterior mean rates, counts per bin

Each returned site is (S, B, ...) for S samples of B trials, as ``Predictive`` returns them: ``g0``
(S, B, G), ``u`` (S, B, T, U; models with inferred inputs), ``factors`` (S, B, T, F) and ``rates``
(S, B, T, N) by default; ``return_sites`` may add ``gen_states`` (S, B, T, G), ``obs_mean`` (calcium:
the predicted fluorescence) and ``obs``, posterior predictive observations (S, B, T, N) that the model
then simulates instead of scoring the data.

Two ways to draw, the same posterior (``tests/test_predictive.py`` checks their means agree):

- ``parallel=False`` (the default): :meth:`PosteriorPredictive.forward` draws all S samples in one pass.
  The batch holds each trial S times in a row (its encoders read it once), the guide is traced once
  and the model replayed on that trace (:func:`~pyro_lfads.fitting.objective.guide_and_model_traces`),
  so the model takes the generator run the guide made. :func:`~pyro_lfads.fitting.posterior.write_posterior`
  (the ``posterior`` command) runs this pass.
- ``parallel=True``: Pyro's own ``Predictive.forward``. Guide and model each run once to learn plate
  nesting, once to learn site shapes, then once under a plate of S samples left of ``trials``: three runs
  of each. The model is conditioned on the guide's g0 and u (no hand-off) and runs the generator again.
  This needs a model, a guide and an observation model that take latents with dimensions left of the
  trials: ``LFADSModel`` and ``LFADSGuide`` (one session or stitched, with or without external inputs) and
  the built-in observation models do; a custom observation model must take factors (..., B, T, F).

Plain ``pyro.infer.Predictive(model, guide=guide, num_samples=S)`` (sequential) runs each program S + 2
times; ``benchmarks/posterior.py`` times it next to the one pass.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from pyro.infer import Predictive

from pyro_lfads.data import Split
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.batch import Batch, split_batch, trial_noise
from pyro_lfads.fitting.objective import guide_and_model_traces, log_importance_weights, sampled_values
from pyro_lfads.fitting.run import Run, RunInfo
from pyro_lfads.fitting.devices import resolve_device

#: The sites returned unless ``return_sites`` says otherwise (``u`` where the model has it).
DEFAULT_SITES = ("g0", "u", "factors", "rates")


class PosteriorPredictive(Predictive):
    """``Predictive(model, guide=guide, num_samples=S, return_sites=..., parallel=...)`` whose forward, with
    ``parallel=False``, draws the S samples in one pass (module docstring). Build it with :func:`predictive`.

    Call it as the model is called, ``predictive(batch, kl_scale)``, or on a Split (all its trials, one
    Batch on the model's device); ``kl_scale`` scales log densities only and leaves the draws alone.

    ``seed`` (one pass only; needs a model with a ``config``, as ``LFADSModel``): each trial's draws are made
    of noise seeded by ``seed`` and the trial itself (:func:`~pyro_lfads.fitting.batch.trial_noise`), so a
    trial gets the same draws whichever trials share its batch; None draws from torch's generator.
    """

    def __init__(self, model, guide, num_samples: int, return_sites=None, parallel: bool = False, *,
                 info: RunInfo | None = None, time_bins: int | None = None, seed: int | None = None):
        super().__init__(model, guide=guide, num_samples=num_samples,
                         return_sites=list(DEFAULT_SITES if return_sites is None else return_sites), parallel=parallel)
        self.requested = None if return_sites is None else list(return_sites)  # refused when missing
        self.info, self.time_bins, self.seed = info, time_bins, seed

    def forward(self, data: Batch | Split, kl_scale: float = 1.0) -> dict[str, torch.Tensor]:
        """{site: (S, B, ...)} for the trials of ``data``."""
        batch = self.batch(data)
        draws = super().forward(batch, kl_scale) if self.parallel else self.draw(batch, kl_scale)[0]
        missing = [site for site in self.requested or () if site not in draws]
        if missing:
            raise InputError(f"return_sites: the model has no site {', '.join(map(repr, missing))}")
        return draws

    @torch.no_grad()
    def draw(self, batch: Batch, kl_scale: float = 1.0, *, log_weights: bool = False):
        """(draws, guide trace) of the one pass: draws {site: (S, B, ...)}; the guide's trace of the batch
        with each trial S times in a row (rows trial-major, B * S: row b * S + s is sample s of trial b).
        ``log_weights``: draws also holds ``log_weight`` (S, B), log p(x, z) - log q(z | x) of each draw, nats."""
        samples = self.num_samples
        repeated = batch.repeat_trials(samples)
        if self.seed is not None:
            config = self.model.config
            repeated = repeated.replace(noise=trial_noise(batch, samples, self.seed, config.gen_dim + config.ic_posterior_rank,
                                                              config.co_dim))
        with warnings.catch_warnings():  # a simulated obs is a model site the guide does not have, rightly
            warnings.filterwarnings("ignore", "Found vars in model but not guide")
            model_trace, guide_trace = guide_and_model_traces(self.model, self.guide, repeated,
                                                              kl_scale, log_densities=log_weights)
        values = sampled_values(model_trace)
        if log_weights:
            values["log_weight"] = log_importance_weights(model_trace, guide_trace)
        draws = {site: values[site].reshape(batch.n_trials, samples, *values[site].shape[1:]).transpose(0, 1)
                 for site in [*self.return_sites, "log_weight"] if site in values}
        return draws, guide_trace

    def batch(self, data: Batch | Split) -> Batch:
        """``data`` as the model's Batch, checked against the run's shapes; without the observations
        when ``obs`` is asked for (the model then simulates them)."""
        if isinstance(data, Split):
            if self.info is not None and self.info.sessions is not None:
                raise InputError("data: a stitched run takes a Batch that names its session: "
                                 "split_batch(split, slice(None), session=k)")
            data = split_batch(data, slice(None), _device(self.model), self.time_bins)
        elif not isinstance(data, Batch):
            raise InputError(f"data: a Split or a Batch of trials, got {type(data).__name__}")
        if self.info is not None:
            _check_shapes(data, self.info)
        return data.replace(recon_data=None, recon_weight=None) if "obs" in self.return_sites else data


def predictive(run_or_model_and_guide, num_samples: int | None = None, *, return_sites=None,
               parallel: bool = False, which: str = "best", device: str = "cpu",
               seed: int | None = None) -> PosteriorPredictive:
    """A ``pyro.infer.Predictive`` (a :class:`PosteriorPredictive`) over a fitted model and guide.

    Args:
        run_or_model_and_guide: a :class:`~pyro_lfads.fitting.run.Run`, its directory, or a
            (model, guide) pair taking ``(batch, kl_scale)``, in eval mode for posterior draws
            (dropout off, as ``Run.fitted`` gives them).
        num_samples: S, draws per trial; default the run's (or the model's) ``config.posterior_samples``.
        return_sites: the sites to return (default ``g0``, ``u`` where the model has it, ``factors``,
            ``rates``); a named site the model lacks is refused when called.
        parallel: Pyro's plate-vectorised forward instead of the one pass (module docstring).
        which: a run's checkpoint, "best" or "last".
        device: where a run's model and guide are loaded.
        seed: seed each trial's draws by the trial itself and this seed (one pass only; the model needs a
            ``config``): a trial's draws no longer depend on the trials beside it. ``write_posterior`` uses
            the run's ``config.seed``. None: torch's generator.
    """
    info = None
    if isinstance(run_or_model_and_guide, (Run, str, Path)):
        if which not in ("best", "last"):
            raise InputError(f"which: 'best' or 'last', got {which!r}")
        run = Run.open(run_or_model_and_guide)
        model, guide = run.fitted(which, resolve_device(device))
        info = run.info
    elif isinstance(run_or_model_and_guide, (tuple, list)) and len(run_or_model_and_guide) == 2:
        model, guide = run_or_model_and_guide
    else:
        raise InputError("run_or_model_and_guide: a Run, a run directory or a (model, guide) pair, got "
                         f"{type(run_or_model_and_guide).__name__}")
    config = getattr(model, "config", None)
    time_bins = getattr(config, "time_bins", None)
    if num_samples is None:
        if config is None:
            raise InputError("num_samples: give it (the model has no config.posterior_samples)")
        num_samples = config.posterior_samples
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise InputError(f"num_samples: an integer >= 1, got {num_samples!r}")
    if return_sites is not None and (isinstance(return_sites, str) or not return_sites
                                     or not all(isinstance(site, str) for site in return_sites)):
        raise InputError(f"return_sites: a list of one or more site names, got {return_sites!r}")
    if not isinstance(parallel, bool):
        raise InputError(f"parallel: True or False, got {parallel!r}")
    if seed is not None and (parallel or config is None or isinstance(seed, bool) or not isinstance(seed, int)):
        raise InputError(f"seed: an integer for the one pass (parallel=False) of a model with a config, got {seed!r}")
    return PosteriorPredictive(model, guide, num_samples, return_sites, parallel, info=info, time_bins=time_bins,
                               seed=seed)


def _device(model) -> torch.device:
    """Where the model's parameters are (the CPU for a model without any, or a plain function)."""
    parameters = model.parameters() if isinstance(model, torch.nn.Module) else ()
    return next((p.device for p in parameters), torch.device("cpu"))


def _check_shapes(batch: Batch, info: RunInfo) -> None:
    """Refuse a batch whose session, neurons or external inputs are not those the run was fitted on."""
    sessions = info.session_infos()
    if not 0 <= batch.session < len(sessions):
        raise InputError(f"data: session {batch.session}, the run has sessions 0 to {len(sessions) - 1}")
    expected = sessions[batch.session]
    found = {"encoder input neurons": (batch.encod_data.shape[-1], expected.n_encod_neurons),
             "neurons": (None if batch.recon_data is None else batch.recon_data.shape[-1], expected.n_neurons),
             "external inputs": (0 if batch.ext_input is None else batch.ext_input.shape[-1], expected.n_ext_inputs)}
    for what, (got, fitted) in found.items():
        if got is not None and got != fitted:
            raise InputError(f"data: {got} {what}, the run was fitted on {fitted}")
