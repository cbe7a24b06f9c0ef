"""All hyperparameters of an LFADS run in one dataclass, with YAML in and out.

The model's defaults follow the paper's Methods 1.9 (kappa = 0.1, AR(1) tau =
10 bins and variance 0.1, Adam lr 0.01 / betas (0.9, 0.999), gradient clipping
at 200). The training was chosen by measurement on data this project did not
fit before (``benchmarks/defaults.py``, see :mod:`pyro_lfads.fitting.schedule`): ramps
in epochs rather than the paper's 2000 steps, a stop on a plateau of the
validation objective, Adam's eps 1e-8 rather than 0.1, KL weights of 0.1 and no
dropout (coordinated dropout alone). The controller reads the data one bin late
(``ci_lag`` 1), as the original LFADS code and lfads-torch do.
Network sizes are a small default that trains in minutes on a laptop CPU.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import yaml

from pyro_lfads.errors import InputError
from pyro_lfads.models.likelihood_spec import SPEC_FORM, import_likelihood, is_spec

#: The names ``likelihood`` may take: the keys of the observation-model registry
#: (``pyro_lfads.models.likelihoods.LIKELIHOODS``), whose ``register_likelihood`` appends here. A list of
#: names, so that the config need not import the models.
LIKELIHOOD_NAMES = ["poisson", "gaussian", "negbinom", "gamma", "zig", "calcium"]
ELBOS = ("trace", "meanfield", "iwae")
#: The generative programs ``model`` may name: LFADS, and LFADS with a behaviour site (pyro_lfads.models.behavior).
MODELS = ("lfads", "behavior")
CHECKPOINT_METRICS = ("elbo", "recon")
DEFAULT_CD_RATE = 0.3
#: Bins a causal model's initial-condition encoder reads when ``ic_enc_seq_len`` is None.
CAUSAL_IC_BINS = 5
#: The largest learning rate accepted: Adam moves every weight by about the learning rate per step.
MAX_LEARNING_RATE = 1.0
#: The largest seed: numpy's generators take seeds below 2**32, and ``seed + 1`` seeds a second one.
MAX_SEED = 2**32 - 2
#: Keys whose default changed what a model is, with the value that a run's config.yaml written before the key
#: existed means: such a run is read as it was fitted.
BEFORE_THE_KEY = {"g0_map": False}
#: The smallest positive number the model's float32 arithmetic holds at full precision.
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class LFADSConfig:
    """Hyperparameters of one LFADS model and its training.

    Sizes:
        gen_dim: generator GRU units (also the dimension of g0).
        fac_dim: latent factors.
        ic_enc_dim: units per direction of the initial-condition encoder.
        ci_enc_dim: units per direction of the controller-input encoder.
        con_dim: controller GRU units.
        co_dim: inferred inputs u_t; 0 means no controller, and the guide has
            only the initial-condition encoder.
        ci_lag: bins by which the controller's view of the data lags: at bin t
            it reads the forward encoder's state after bin t - ci_lag and the
            backward encoder's after bin t + ci_lag (the encoders' initial
            states beyond the ends), so the input u_t never reads x_t, the
            bin whose rates it sets. 1, as in the original LFADS
            (``controller_input_lag``) and lfads-torch (``ci_lag``); 0 lets
            the controller read x_t.
        ic_enc_seq_len: bins the initial-condition encoder reads from the start
            of each trial; None reads them all. A short window (original LFADS's
            ``num_steps_for_gen_ic``) keeps g0 from encoding what happens later in
            the trial, which the inferred inputs must then explain.
        time_bins: bins per trial the model uses (the first ``time_bins`` of
            each trial); None uses all bins; data with fewer bins is refused.
        causal: a causal variant for streaming, closed-loop use (see
            :mod:`pyro_lfads.extensions.streaming`): both encoders run forward in time only,
            so the controller's input at bin t has seen bins 1..t and never a
            later one, and g0 is inferred from the first ``ic_enc_seq_len``
            bins (``CAUSAL_IC_BINS`` when that is None).
        g0_map: start the generator from a learned affine map of the initial
            condition, W_0 g0 + b_0 (the identity at first; lfads-torch's
            ``ic_to_g0``), instead of from g0 itself: the prior on the
            generator's first state is then a learned Gaussian rather than
            N(mu, kappa I). On by default: measured on benchmarks/defaults.py
            (one fit each), rate R2 0.950 -> 0.965 on lorenz_low_rate and
            0.959 -> 0.973 on lorenz_50x20ms, 0.975 either way on
            lorenz_100x10ms, 0.936 -> 0.927 on lorenz_high_rate (within the
            +-0.015 of single fits there), M1 velocity R2 0.692 -> 0.664.
        ic_posterior_rank: r, the rank of q(g0)'s covariance beyond its
            diagonal: 0 (the paper's diagonal Normal) or r >= 1 for
            N(mu, diag(sigma^2) + V V^T) with a G x r factor V read from the
            same encoding, so that q(g0) can follow the posterior's
            correlations (see the README's diagnostics section).
        fused_recurrence: run the recurrences (encoders, controller and
            generator) as whole-trial autograd nodes with hand-written
            backwards (:mod:`pyro_lfads.blocks.fused_gru`,
            :mod:`pyro_lfads.blocks.fused_controller`), the fast path; false runs
            autograd through every bin of the readable reference code. The same
            values and gradients either way (float32 rounding aside).
    Stitching (several sessions, Methods 1.8):
        train_read_in: train the sessions' read-in matrices after their
            principal-components initialisation (True, the paper's), or keep
            them fixed there (False).
    Model:
        model: "lfads" (the paper's) or "behavior" (:mod:`pyro_lfads.models.behavior`: behaviour
            ``{split}_behavior`` observed through the first ``behavior_factors`` factors as well).
        behavior_factors: the behaviourally relevant factors, the first ones, that the behaviour model's
            read-out of behaviour sees (1 to fac_dim); the others explain the spikes only.
        behavior_weight: weight of the behaviour term in the objective, 1 being the ELBO. The spikes of
            one bin are N counts and its behaviour a few numbers, so with the weight 1 the factors may
            explain behaviour no better than plain LFADS's do; a larger weight trades spike likelihood for
            behaviour (TNDM weighs its behaviour term likewise).
        likelihood: observation model of the ``obs`` site: poisson, gaussian,
            negbinom, gamma, zig (zero-inflated Gamma) or calcium, a name
            given to ``register_likelihood``, or a class of your own as
            ``package.module:ClassName``, imported wherever the config is read.
        calcium_tau_init: initial indicator decay time of the calcium model, bins.
        ic_prior_var: kappa, the variance of the g0 prior.
        ic_post_var_min: floor on the variance of q(g0).
        ar_tau_init: initial AR(1) autocorrelation time of the input prior, bins.
        ar_var_init: initial AR(1) process variance of the input prior.
        cell_clip: hidden states of generator and controller are clipped to
            [-cell_clip, cell_clip].
        dropout: dropout probability on encoder inputs, controller inputs and
            the generator state before the factor readout. 0 by default:
            measured on benchmarks/defaults.py, the paper's keep probability
            of 0.95 (dropout 0.05) cost 0.014-0.015 of rate R2 on two Lorenz
            variants and 0.04 of the M1 recording's velocity R2, and 0.2 cost
            0.05; coordinated dropout (cd_rate) already guards the inputs.
        cd_rate: coordinated dropout: the fraction of encoder input entries
            zeroed at each training step, the likelihood then scoring only
            those (and every held-out neuron and forward bin); 0 turns it off.
            Stops the identity overfit (spikes copied through the controller).
            None (the default) means 0.3 with inferred inputs (co_dim > 0),
            where that overfit happens, and 0 without, where it only costs
            data (see :attr:`coordinated_dropout_rate`).
        sv_rate: sample validation: the fixed fraction of held-in entries
            hidden from the encoder and from training; their reconstruction
            cost on the validation trials (``valid_sv_recon``) then chooses
            the best checkpoint. 0 turns it off.
        checkpoint_metric: the validation quantity that chooses the best
            checkpoint (lower is better): "elbo", the -ELBO per trial, or
            "recon", its reconstruction term alone (lfads-torch's AutoLFADS
            objective; it rewards a controller that fits noise, see
            :mod:`pyro_lfads.extensions.tune`). Sample validation (sv_rate > 0) chooses
            by ``valid_sv_recon`` instead.
    Training (see :mod:`pyro_lfads.fitting.schedule` for the rules and why these lengths):
        batch_size: trials per SVI step at most; data sets of fewer than
            ``MIN_STEPS_PER_EPOCH`` batches get smaller batches, so that every
            epoch takes at least that many steps.
        learning_rate, adam_beta1, adam_beta2, adam_eps: Adam settings; eps
            is Adam's usual 1e-8, not the paper's 0.1, which slowed the
            parameters of small gradients (measured: a 96-trial Lorenz set sat
            at the mean rates for 80 epochs; the M1 recording's velocity R2
            0.38 against 0.65).
        lr_decay, lr_patience, lr_min: decay on a plateau of the validation
            objective (the quantity that chooses the best checkpoint): once
            the KL ramp is over, multiply the learning rate by lr_decay when
            it has not improved for lr_patience epochs (and lr_patience
            epochs have passed since the last decay); stop at lr_min.
        patience: stop when the validation objective has not improved by
            ``min_improvement`` (relative) for this many epochs after the KL
            ramp; 0 never stops early.
        min_improvement: the relative fall of the validation objective that
            counts as progress for ``patience`` and ``lr_patience`` (any fall
            still updates the best checkpoint).
        max_epochs: stop after this many epochs at most, a ceiling.
        grad_clip_norm: global gradient-norm clip.
        kl_ramp_epochs: epochs of the linear KL ramp (weight 1 from then on);
            the L2 penalty follows the same ramp.
        kl_ramp_steps: the ramp's length in optimiser steps instead (the
            paper's unit, 2000 there); None (the default) uses kl_ramp_epochs.
        kl_ic_scale, kl_co_scale: constant weights on the KL terms of g0 and
            of the inferred inputs u; 1 is the true ELBO. 0.1 by default: on
            a real M1 recording the weight 1 left the latents nearly empty
            (velocity R2 0.44, the smoothing baseline's 0.43) and 0.1 gave
            0.65 (benchmarks/defaults.py). AutoLFADS tunes them. Both apply
            on top of the ramp.
        l2_gen_scale, l2_con_scale: L2 on the hidden-to-hidden weights of the
            generator and controller, 0.5 * scale * sum(w^2) / numel(w), in
            nats per trial.
        elbo: "trace" (Trace_ELBO), "meanfield" (TraceMeanField_ELBO,
            analytic KL for g0) or "iwae" (RenyiELBO with alpha 0: the
            importance-weighted bound of iwae_particles draws per trial, the
            particles vectorised, aimed at a guide that covers the posterior;
            the validation objective, valid_loss, is then the -IWAE bound of
            the same K; see the README's diagnostics section).
        iwae_particles: K, the draws per trial of elbo "iwae" (1 is the ELBO).
        seed: seed for initialisation, batching and sampling.
        posterior_samples: samples of (g0, u) per trial for posterior averages.
    """

    gen_dim: int = 64
    fac_dim: int = 16
    ic_enc_dim: int = 64
    ci_enc_dim: int = 32
    con_dim: int = 32
    co_dim: int = 1
    ci_lag: int = 1
    ic_enc_seq_len: int | None = None
    time_bins: int | None = None
    causal: bool = False
    fused_recurrence: bool = True
    g0_map: bool = True
    ic_posterior_rank: int = 0
    train_read_in: bool = True

    model: str = "lfads"
    behavior_factors: int = 4
    behavior_weight: float = 1.0
    likelihood: str = "poisson"
    calcium_tau_init: float = 10.0
    ic_prior_var: float = 0.1
    ic_post_var_min: float = 1e-4
    ar_tau_init: float = 10.0
    ar_var_init: float = 0.1
    cell_clip: float = 5.0
    dropout: float = 0.0
    cd_rate: float | None = None
    sv_rate: float = 0.0
    checkpoint_metric: str = "elbo"

    batch_size: int = 128
    learning_rate: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    lr_decay: float = 0.5
    lr_patience: int = 5
    lr_min: float = 1e-5
    patience: int = 15
    min_improvement: float = 1e-4
    max_epochs: int = 500
    grad_clip_norm: float = 200.0
    kl_ramp_epochs: int = 30
    kl_ramp_steps: int | None = None
    kl_ic_scale: float = 0.1
    kl_co_scale: float = 0.1
    l2_gen_scale: float = 2000.0
    l2_con_scale: float = 0.0
    elbo: str = "trace"
    iwae_particles: int = 5
    seed: int = 0
    posterior_samples: int = 50

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, source: str = "config") -> None:
        """Raise InputError naming the first field whose value is impossible."""
        positive_ints = ("gen_dim", "fac_dim", "ic_enc_dim", "batch_size",
                         "lr_patience", "max_epochs", "kl_ramp_epochs", "posterior_samples",
                         "iwae_particles")
        for name in positive_ints:
            _check(source, name, getattr(self, name), int, lambda v: v >= 1, "must be an integer >= 1")
        for name in ("co_dim", "ci_lag", "patience", "ic_posterior_rank"):
            _check(source, name, getattr(self, name), int, lambda v: v >= 0, "must be an integer >= 0")
        _check(source, "seed", self.seed, int, lambda v: 0 <= v <= MAX_SEED,
               f"must be an integer from 0 to {MAX_SEED} (2**32 - 2: numpy's generators take seeds below 2**32)")
        if self.co_dim > 0:
            for name in ("ci_enc_dim", "con_dim"):
                _check(source, name, getattr(self, name), int, lambda v: v >= 1,
                       "must be an integer >= 1 when co_dim > 0")
        if self.ic_enc_seq_len is not None:
            _check(source, "ic_enc_seq_len", self.ic_enc_seq_len, int, lambda v: v >= 1,
                   "must be an integer >= 1 or null")
        if self.kl_ramp_steps is not None:
            _check(source, "kl_ramp_steps", self.kl_ramp_steps, int, lambda v: v >= 1,
                   "must be an integer >= 1 or null")
        if self.time_bins is not None:
            _check(source, "time_bins", self.time_bins, int, lambda v: v >= 1, "must be an integer >= 1 or null")
        positive_floats = ("calcium_tau_init", "ic_prior_var", "ic_post_var_min", "ar_tau_init", "ar_var_init", "cell_clip",
                           "learning_rate", "adam_eps", "lr_min", "grad_clip_norm", "kl_ic_scale", "kl_co_scale")
        for name in positive_floats:
            _check(source, name, getattr(self, name), float, lambda v: v > 0, "must be a number > 0")
        for name in ("l2_gen_scale", "l2_con_scale"):
            _check(source, name, getattr(self, name), float, lambda v: v >= 0, "must be a number >= 0")
        if self.cd_rate is not None:
            _check(source, "cd_rate", self.cd_rate, float, lambda v: 0 <= v < 1, "must be in [0, 1) or null")
        for name in ("dropout", "sv_rate", "adam_beta1", "adam_beta2", "min_improvement"):
            _check(source, name, getattr(self, name), float, lambda v: 0 <= v < 1, "must be in [0, 1)")
        for name in ("train_read_in", "causal", "fused_recurrence", "g0_map"):
            _check(source, name, getattr(self, name), bool, lambda v: True, "must be true or false")
        _check(source, "lr_decay", self.lr_decay, float, lambda v: 0 < v < 1, "must be in (0, 1)")
        self._check_learning_rates(source)
        self._check_likelihood(source)
        if self.checkpoint_metric not in CHECKPOINT_METRICS:
            raise InputError(f"{source}: checkpoint_metric: {self.checkpoint_metric!r} is not one of "
                             f"{', '.join(CHECKPOINT_METRICS)}")
        if self.elbo not in ELBOS:
            raise InputError(f"{source}: elbo: {self.elbo!r} is not one of {', '.join(ELBOS)}")
        self._check_behavior(source)

    def _check_behavior(self, source: str) -> None:
        """A known ``model``; for the behaviour model, relevant factors among the factors and a weight > 0
        (plain LFADS ignores both keys)."""
        if self.model not in MODELS:
            raise InputError(f"{source}: model: {self.model!r} is not one of {', '.join(MODELS)}")
        if self.model == "behavior":
            _check(source, "behavior_weight", self.behavior_weight, float, lambda v: v > 0, "must be a number > 0")
            _check(source, "behavior_factors", self.behavior_factors, int, lambda v: 1 <= v <= self.fac_dim,
                   f"must be an integer from 1 to fac_dim ({self.fac_dim})")

    def _check_likelihood(self, source: str) -> None:
        """A registered name, or a ``package.module:ClassName`` whose module imports and holds the class."""
        if self.likelihood in LIKELIHOOD_NAMES:
            return
        if not is_spec(self.likelihood):
            raise InputError(f"{source}: likelihood: {self.likelihood!r} is not one of {', '.join(LIKELIHOOD_NAMES)}, "
                             f"nor a class of your own as {SPEC_FORM}")
        try:
            import_likelihood(self.likelihood)
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None

    def _check_learning_rates(self, source: str) -> None:
        """A learning rate the fit can use: at most ``MAX_LEARNING_RATE``, and above ``lr_min``."""
        if self.learning_rate > MAX_LEARNING_RATE:
            raise InputError(f"{source}: learning_rate: must be at most {MAX_LEARNING_RATE}, got {self.learning_rate!r}; "
                             "Adam moves every weight by about the learning rate at each step, so a larger one makes "
                             "the fit diverge (LFADS uses 0.001 to 0.01)")
        if self.lr_min >= self.learning_rate:
            raise InputError(f"{source}: lr_min: must be below learning_rate ({self.learning_rate!r}), got "
                             f"{self.lr_min!r}; the fit stops when the learning rate reaches lr_min, so it would "
                             "train no epoch")

    @property
    def ic_window(self) -> int | None:
        """Bins the initial-condition encoder reads: ``ic_enc_seq_len``, or ``CAUSAL_IC_BINS``
        in a causal model when that is None, or None (all bins)."""
        if self.ic_enc_seq_len is None and self.causal:
            return CAUSAL_IC_BINS
        return self.ic_enc_seq_len

    @property
    def coordinated_dropout_rate(self) -> float:
        """The coordinated dropout rate in force: ``cd_rate``, or its default when None."""
        if self.cd_rate is not None:
            return self.cd_rate
        return DEFAULT_CD_RATE if self.co_dim > 0 else 0.0

    def replace(self, **changes) -> "LFADSConfig":
        """A copy with some fields changed (validated)."""
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise InputError(f"config: unknown keys {unknown}; valid keys: {', '.join(field_names())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "LFADSConfig":
        """Build from a mapping; unknown keys are refused with the list of valid ones."""
        if not isinstance(values, dict):
            raise InputError(f"{source}: expected a mapping of config keys, got {type(values).__name__}")
        unknown = sorted(set(values) - set(field_names()))
        if unknown:
            raise InputError(f"{source}: unknown keys {unknown}; valid keys: {', '.join(field_names())}")
        config = cls.__new__(cls)
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            setattr(config, f.name, values.get(f.name, default))
        config.validate(source)
        return config

    @classmethod
    def from_yaml(cls, path: str | Path, missing: dict | None = None) -> "LFADSConfig":
        """Read a YAML file of config keys; ``missing`` gives the value of a key the file lacks where it is not
        the default (a run directory written before the key existed: :data:`BEFORE_THE_KEY`)."""
        path = Path(path)
        try:
            values = yaml.load(path.read_text(), Loader=_ConfigLoader)
        except OSError as exc:
            raise InputError(f"{path}: cannot read config: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if missing and isinstance(values, dict):
            values = {**missing, **values}
        return cls.from_dict(values or {}, source=str(path))


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader that also reads ``1e-3`` as a number (YAML 1.2; YAML 1.1 wants ``1.0e-3``)."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"),
)


def field_names() -> list[str]:
    return [f.name for f in fields(LFADSConfig)]


def _check(source, name, value, kind, ok, problem) -> None:
    """Type- and range-check one config value (bools are not numbers here; numbers are finite and within
    the range of the model's float32 arithmetic)."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        well_typed = isinstance(value, int) and not isinstance(value, bool)
    elif kind is bool:
        well_typed = isinstance(value, bool)
    else:
        well_typed = numeric
    if well_typed and kind is float and not math.isfinite(value):
        raise InputError(f"{source}: {name}: must be a finite number, got {value!r}")
    if not well_typed or not ok(value):
        text = " (YAML read it as text; write a plain number such as 0.001 or 1e-3, without quotes)" if isinstance(value, str) else ""
        raise InputError(f"{source}: {name}: {problem}, got {value!r}{text}")
    if kind is float and (0 < abs(value) < _FLOAT32_TINY or abs(value) > _FLOAT32_MAX):
        raise InputError(f"{source}: {name}: {value!r} is outside the range of float32, the precision the model "
                         f"computes in, and would become 0 or infinite there (so would its square root or logarithm); "
                         f"choose a value from {_FLOAT32_TINY:.2g} to {_FLOAT32_MAX:.2g}")
