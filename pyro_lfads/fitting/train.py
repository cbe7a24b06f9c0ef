"""Training: SVI on the ELBO with KL annealing, the L2 penalty, Adam, learning-rate
decay on plateau, validation, checkpoints and resume (Methods 1.5, 1.9).

The objective of one step, per trial of the batch:

    loss = -ELBO_w / B + w * L2,   w = min(1, (step + 1) / ramp_steps)

where ELBO_w is Pyro's ``Trace_ELBO`` (``TraceMeanField_ELBO`` with ``elbo: meanfield``; with ``elbo: iwae``
``RenyiELBO(alpha=0)``, the importance-weighted bound of ``iwae_particles`` vectorised draws per trial), run on
a :class:`~pyro_lfads.fitting.objective.TracedPair` that keeps the draw for the report, with the latent sites' log
densities scaled by w (``poutine.scale`` inside the model and guide, so the KL term is w * KL) and
L2 is the penalty on the recurrent weights. From step ``ramp_steps`` on
(``kl_ramp_epochs`` epochs), w = 1 and the ELBO is the true one. Batch size,
ramp, learning-rate decay and the stop on a plateau follow :mod:`pyro_lfads.fitting.schedule`.

With coordinated dropout (``coordinated_dropout_rate`` > 0) the training ELBO scores only the
held-in entries the encoder did not see; with sample validation
(``sv_rate`` > 0) a fixed subset of entries is never seen nor scored, and
their cost on the validation trials picks the best checkpoint (see
:mod:`pyro_lfads.fitting.masking`). The validation ELBO never uses coordinated dropout.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pyro
import pyro.optim
import torch
from pyro.infer import SVI, RenyiELBO
from tqdm.auto import tqdm

from pyro_lfads.fitting.batch import iterate_batches, iterate_session_batches
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split, as_sessions, ensure_valid
from pyro_lfads.data.atomic_files import atomic_path, check_inside_run
from pyro_lfads.errors import InputError, TrainingDiverged
from pyro_lfads.fitting.masking import TrainingSplits, check_heldin_layout, coordinated_dropout
from pyro_lfads.fitting.checkpoints import load_checkpoint, load_weights, rng_states, save_checkpoint, set_rng_states
from pyro_lfads.fitting.devices import resolve_device
from pyro_lfads.fitting.run import BEST, CURVE_FILE, LAST, Run, RunInfo, TrainerState, build_model_and_guide
from pyro_lfads.fitting.schedule import PlateauRule, epoch_batch_size, ramp_steps, ramp_weight, steps_per_epoch
from pyro_lfads.extensions.stitching import check_sessions, initialise_sessions
from pyro_lfads.fitting.objective import TracedPair, elbo_terms, guide_and_model_traces, iwae_bound, make_elbo
from pyro_lfads.fitting.run_lock import writes_into
from pyro_lfads.fitting.tensorboard_log import tensorboard_log
from pyro_lfads.models.likelihoods import data_support


#: Steps in a row with a non-finite loss or gradient after which training stops.
MAX_FAULTS_IN_A_ROW = 5


def is_invalid_parameter(exc: ValueError) -> bool:
    """Whether ``exc`` is a distribution refusing its parameters (torch's "Expected parameter ... but found
    invalid values"): what NaN or infinite weights cause before any loss is computed."""
    message = str(exc)
    return "Expected parameter" in message and "found invalid values" in message


def l2_penalty(model, guide, config: LFADSConfig) -> torch.Tensor:
    """0.5 * scale * sum(w^2) / numel(w) over the hidden-to-hidden weights of generator and controller."""
    def term(weight, scale):
        return 0.5 * scale * weight.pow(2).sum() / weight.numel()

    penalty = term(model.generator.cell.weight_hh, config.l2_gen_scale)
    if config.co_dim:
        penalty = penalty + term(guide.controller.weight_hh, config.l2_con_scale)
    return penalty


@torch.no_grad()
def evaluate_elbo(model, guide, split: Split, config: LFADSConfig, device, session: int = 0) -> dict:
    """Per-trial mean of the full (unannealed) negative ELBO (with ``elbo: iwae``, the negative IWAE bound of
    ``iwae_particles`` draws, the objective it trains), reconstruction and KL on ``split`` (of session
    ``session``). Dropout is off; one sample of (g0, u) per trial for the ELBO and its terms.
    """
    was_training = model.training
    model.eval()
    guide.eval()
    recon = kl = bound = 0.0
    for batch in iterate_batches(split, config.batch_size, None, device, config.time_bins, session):
        r, k = elbo_terms(*guide_and_model_traces(model, guide, batch))
        recon, kl = recon + r, kl + k
        if config.elbo == "iwae":
            bound += iwae_bound(model, guide, batch, config.iwae_particles)
    model.train(was_training)
    guide.train(was_training)
    n = split.n_trials
    return {"loss": -bound / n if config.elbo == "iwae" else (recon + kl) / n, "recon": recon / n, "kl": kl / n}


def validation_metric(valid: dict, config: LFADSConfig) -> str:
    """Which of :meth:`Trainer.validate`'s terms ``valid`` chooses the best checkpoint: ``sv_recon`` with
    sample validation, else ``recon`` or ``loss`` (the -ELBO) as ``config.checkpoint_metric`` says."""
    if "sv_recon" in valid:
        return "sv_recon"
    return "recon" if config.checkpoint_metric == "recon" else "loss"


def validation_score(valid: dict, config: LFADSConfig) -> float:
    """The quantity that chooses the best checkpoint (lower is better): the term :func:`validation_metric` names."""
    return valid[validation_metric(valid, config)]


class Trainer:
    """Fits a model/guide pair on a data set (or on several sessions, stitched), writing into a run directory.

    Any pair with the signature ``model(batch, kl_scale)`` / ``guide(batch, kl_scale)``
    whose model has ``generator.cell.weight_hh`` can be trained. With several
    sessions each step sees one session's batch (:func:`iterate_session_batches`);
    losses are per trial over all sessions.
    """

    def __init__(self, model, guide, data: LFADSDataset | Sequence[LFADSDataset], config: LFADSConfig,
                 run_dir: Path, device: str = "cpu", progress: bool = True):
        self.model, self.guide = model.to(device), guide.to(device)
        self.sessions = as_sessions(data)
        self.config, self.run_dir = config, Path(run_dir)
        self.device, self.progress = device, progress
        self.params = [p for m in (self.model, self.guide) for p in m.parameters()]
        self.elbo = make_elbo(config)
        self.traced = TracedPair(self.model, self.guide)  # keeps each step's draw, for the reported terms
        self.last_terms = (0.0, 0.0)  # (reconstruction, KL) of the last step's draw, nats, unscaled
        self.optim = pyro.optim.Adam({"lr": config.learning_rate, "betas": (config.adam_beta1, config.adam_beta2),
                                      "eps": config.adam_eps})
        self.svi = SVI(self.traced.model, self.traced.guide, self.optim, loss=self._loss,
                       loss_and_grads=self._loss_and_grads)
        self.state = TrainerState(lr=config.learning_rate)
        self.batch_order = torch.Generator().manual_seed(config.seed)
        self.dropout_masks = torch.Generator().manual_seed(config.seed + 1)
        self.splits = [TrainingSplits(dataset, config) for dataset in self.sessions]
        train_trials = [splits.train.n_trials for splits in self.splits]
        self.batch_size = epoch_batch_size(sum(train_trials), config.batch_size)
        self.steps_per_epoch = steps_per_epoch(train_trials, self.batch_size)
        self.ramp_steps = ramp_steps(config, self.steps_per_epoch)
        self.plateau = PlateauRule.for_run(config, self.steps_per_epoch)

    # --- the objective -------------------------------------------------------------------
    def _loss(self, model, guide, batch, kl_scale):
        """Per-trial -ELBO (KL scaled by kl_scale) plus the ramped L2 penalty; keeps the draw's
        unscaled terms in ``last_terms`` (read before the step moves the parameters)."""
        elbo_loss = self.elbo.differentiable_loss(model, guide, batch, kl_scale) / batch.n_trials
        self._keep_terms()
        return elbo_loss + kl_scale * l2_penalty(self.model, self.guide, self.config)

    def _iwae_loss_and_grads(self, model, guide, batch, kl_scale) -> torch.Tensor:
        """Per-trial -IWAE_K plus the ramped L2 penalty, its gradients accumulated: ``RenyiELBO`` has no
        differentiable loss, so its own ``loss_and_grads`` runs the backward of the bound summed over the
        batch, whose gradients are then divided by the trials."""
        bound = self.elbo.loss_and_grads(model, guide, batch, kl_scale) / batch.n_trials
        for param in self.params:
            if param.grad is not None:
                param.grad /= batch.n_trials
        self._keep_terms()
        penalty = kl_scale * l2_penalty(self.model, self.guide, self.config)
        penalty.backward()
        return torch.as_tensor(bound) + penalty.detach()

    @torch.no_grad()
    def _keep_terms(self) -> None:
        """``last_terms``: the reconstruction and KL of the last draw, per draw of each trial."""
        particles = self.elbo.num_particles if isinstance(self.elbo, RenyiELBO) else 1
        self.last_terms = tuple(term / particles for term in elbo_terms(*self.traced.traces()))

    def _loss_and_grads(self, model, guide, batch, kl_scale):
        """The loss and its clipped gradients; when either is not finite, or a distribution met invalid
        parameters (NaN or infinite, which Pyro refuses before any loss exists), a NaN loss and no gradient
        at all, so that the optimiser moves nothing (Adam skips parameters without a gradient)."""
        try:
            if isinstance(self.elbo, RenyiELBO):
                loss = self._iwae_loss_and_grads(model, guide, batch, kl_scale)
            else:
                loss = self._loss(model, guide, batch, kl_scale)
                loss.backward()
        except ValueError as exc:
            if not is_invalid_parameter(exc):
                raise
            self._drop_gradients()
            return torch.tensor(float("nan"))
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip_norm)
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            self._drop_gradients()
        return loss

    def _drop_gradients(self) -> None:
        for param in self.params:
            param.grad = None

    def step(self, batch, kl_scale: float) -> float | None:
        """One ``SVI.step``; returns its loss, or None when the loss or a gradient was not finite or a
        distribution's parameters were invalid: then nothing moved and the learning rate decays by
        ``lr_decay``."""
        loss = self.svi.step(batch, kl_scale)
        if math.isfinite(loss):
            self.state.faults_in_a_row = 0
            return loss
        self.state.faults += 1
        self.state.faults_in_a_row += 1
        self._set_lr(self.state.lr * self.config.lr_decay)
        return None

    def _set_lr(self, lr: float) -> None:
        self.state.lr = lr
        for optimizer in self.optim.optim_objs.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        self.optim.pt_optim_args["lr"] = lr

    # --- epochs --------------------------------------------------------------------------
    def train_epoch(self) -> dict:
        """One pass over the training trials; returns per-trial means of loss, recon, KL."""
        self.model.train()
        self.guide.train()
        totals = np.zeros(3)
        n = 0
        for batch in iterate_session_batches([s.train for s in self.splits], self.batch_size,
                                             self.batch_order, self.device, self.config.time_bins):
            if self.config.coordinated_dropout_rate > 0:
                batch = coordinated_dropout(batch, self.config.coordinated_dropout_rate, self.dropout_masks)
            weight = ramp_weight(self.state.step, self.ramp_steps)
            loss = self.step(batch, weight)
            self.state.step += 1
            if loss is None:
                if self.state.faults_in_a_row >= MAX_FAULTS_IN_A_ROW:
                    break
                continue
            totals += (loss * batch.n_trials, *self.last_terms)
            n += batch.n_trials
        return dict(zip(("loss", "recon", "kl"), totals / max(n, 1)))

    def _after_epoch(self, score: float) -> None:
        """Book this epoch's validation score: the best epoch, progress, a learning-rate decay on a
        plateau, and why the fit stops (``state.stopped``; empty while it goes on)."""
        cfg, st = self.config, self.state
        if score < st.best_valid:
            st.best_valid, st.best_epoch = score, st.epoch
        if self.plateau.is_progress(score, st.progress_valid):
            st.progress_valid, st.progress_epoch = score, st.epoch
        action = self.plateau.action(st.epoch, st.progress_epoch, st.last_decay_epoch)
        if action == "decay":
            self._set_lr(st.lr * cfg.lr_decay)
            st.last_decay_epoch = st.epoch
        st.stopped = ("plateau" if action == "stop" else "lr_min" if st.lr <= cfg.lr_min else
                      "max_epochs" if st.epoch >= cfg.max_epochs else "")

    def fit(self) -> TrainerState:
        """Train until the validation objective stops improving (see :mod:`pyro_lfads.fitting.schedule`), the
        learning rate reaches lr_min, or max_epochs; returns the final state. Each epoch's record goes to
        ``training_curve.jsonl`` and to TensorBoard (:mod:`pyro_lfads.fitting.tensorboard_log`)."""
        cfg, st = self.config, self.state
        bar = tqdm(total=cfg.max_epochs, initial=st.epoch, desc="fit", unit="epoch",
                   disable=not self.progress, dynamic_ncols=True)
        with tensorboard_log(self.run_dir, st.epoch) as log_epoch:
            while st.epoch < cfg.max_epochs and st.lr > cfg.lr_min and st.stopped != "plateau":
                start = time.perf_counter()
                train = self.train_epoch()
                if st.faults_in_a_row >= MAX_FAULTS_IN_A_ROW:
                    bar.close()
                    st.stopped = "non-finite"
                    raise TrainingDiverged(self._divergence_message(
                        f"at step {st.step}: the loss or its gradient was not finite in {MAX_FAULTS_IN_A_ROW} steps in "
                        f"a row (each undone, the learning rate decayed to {st.lr:.2e})"))
                try:
                    valid = self.validate()
                except ValueError as exc:
                    if not is_invalid_parameter(exc):
                        raise
                    bar.close()
                    st.stopped = "non-finite"
                    raise TrainingDiverged(self._divergence_message(
                        f"in epoch {st.epoch + 1}: on the validation trials the model's distributions met parameters "
                        "that are not finite")) from None
                st.epoch += 1
                best_before = st.best_valid
                self._after_epoch(validation_score(valid, cfg))
                record = {"epoch": st.epoch, "step": st.step, "lr": st.lr, "batch_size": self.batch_size,
                          "kl_weight": ramp_weight(st.step - 1, self.ramp_steps),
                          **{f"train_{k}": v for k, v in train.items()},
                          **{f"valid_{k}": v for k, v in valid.items()},
                          "seconds": time.perf_counter() - start, "stop_reason": st.stopped}
                self._append_curve(record)
                log_epoch(record)
                self.save(self.run_dir / LAST)
                if st.best_valid < best_before:
                    self.save(self.run_dir / BEST)
                bar.update(1)
                bar.set_postfix(loss=f"{train['loss']:.1f}", recon=f"{train['recon']:.1f}", kl=f"{train['kl']:.1f}",
                                valid=f"{valid['loss']:.1f}", lr=f"{st.lr:.2e}")
        bar.close()
        return st

    def _divergence_message(self, what: str) -> str:
        """Why training stopped (``what`` happened where), its likely causes and what is kept."""
        st = self.state
        best = (f"the best checkpoint (epoch {st.best_epoch}) is kept in {self.run_dir / BEST}" if st.best_epoch > 0
                else "no epoch completed, so there is no checkpoint to keep")
        return (f"training stopped {what}; likely causes: a learning rate too high for these data, extreme values "
                f"in the data, or a likelihood that does not suit them; {best}")

    def validate(self) -> dict:
        """Validation ELBO terms per trial (over all sessions); with sample validation also ``sv_recon``,
        the reconstruction cost per hidden entry (nats), which chooses the best checkpoint."""
        totals = dict.fromkeys(("loss", "recon", "kl"), 0.0)
        held_recon, n_held = 0.0, 0
        for session, splits in enumerate(self.splits):
            valid = evaluate_elbo(self.model, self.guide, splits.valid, self.config, self.device, session)
            for key in totals:
                totals[key] += valid[key] * splits.valid.n_trials
            if splits.valid_held is not None:
                held = evaluate_elbo(self.model, self.guide, splits.valid_held, self.config, self.device, session)
                held_recon += held["recon"] * splits.valid_held.n_trials
                n_held += splits.n_held
        n_trials = sum(splits.valid.n_trials for splits in self.splits)
        result = {key: value / n_trials for key, value in totals.items()}
        if self.splits[0].valid_held is not None:
            result["sv_recon"] = held_recon / max(n_held, 1)
        return result

    # --- checkpoints ---------------------------------------------------------------------
    def _append_curve(self, record: dict) -> None:
        """Append one line; a write that fails (a full disk) leaves the curve as it was, with no partial line."""
        path = self.run_dir / CURVE_FILE
        check_inside_run(path)
        line = memoryview((json.dumps(record) + "\n").encode())
        with open(path, "ab", buffering=0) as handle:
            start = handle.seek(0, os.SEEK_END)
            try:
                while line:
                    line = line[handle.write(line):]
            except OSError:
                handle.truncate(start)
                raise

    def save(self, path: Path) -> None:
        save_checkpoint(path, {
            "model": self.model.state_dict(), "guide": self.guide.state_dict(),
            "optim": self.optim.get_state(), "trainer": asdict(self.state), "epoch": self.state.epoch,
            "rng": rng_states(self._generators()),
        })

    def _generators(self) -> dict[str, torch.Generator]:
        """The trainer's own generators, by their names in a checkpoint."""
        return {"batch_order": self.batch_order, "dropout_masks": self.dropout_masks}

    def resume(self, path: Path) -> None:
        """Continue exactly where the checkpoint at ``path`` left off."""
        state = load_checkpoint(path, map_location=self.device)
        load_weights(self.model, self.guide, state, path)
        known = {f.name for f in fields(TrainerState)}
        self.state = TrainerState(**{k: v for k, v in state["trainer"].items() if k in known})
        self.optim.set_state(state["optim"])
        self._set_lr(self.state.lr)
        set_rng_states(state["rng"], self._generators())
        _truncate_curve(self.run_dir / CURVE_FILE, self.state.epoch)


def _truncate_curve(path: Path, n_epochs: int) -> None:
    """Keep the first n_epochs lines (the ones the checkpoint has seen)."""
    if path.exists():
        lines = path.read_text().splitlines(keepends=True)[:n_epochs]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(lines))


@writes_into("run_dir")
def fit(data: LFADSDataset | Sequence[LFADSDataset], config: LFADSConfig, run_dir: str | Path | Run, *,
        device: str = "cpu", overwrite: bool = False, progress: bool = True) -> Run:
    """Fit LFADS to ``data``, writing into ``run_dir``; returns the :class:`~pyro_lfads.fitting.run.Run`,
    whose ``training`` is the state the fit ended in.

    ``data`` is one data set, or a list of sessions (each its own neurons, the
    same bins) to stitch into one model (Methods 1.8): each session gets a
    read-in and a read-out, initialised by principal-components regression
    (:mod:`pyro_lfads.extensions.stitching`); everything else is shared.

    If ``run_dir`` already holds this very run (same config and data), training
    continues from its last checkpoint. A different run there is refused unless
    ``overwrite``, which starts afresh (:meth:`Run.begin_fit`). ``device`` "auto" trains on CUDA when
    torch sees it (:func:`resolve_device`).
    """
    device = resolve_device(device)
    sessions = checked_sessions(data, config)
    run, resume = Run.begin_fit(run_dir, config, RunInfo.describe(sessions, config), overwrite=overwrite)
    return _train(run, sessions, resume, device, progress)


@writes_into("run")
def resume_fit(run: Run | str | Path, *, max_epochs: int | None = None, device: str = "cpu",
               progress: bool = True) -> Run:
    """Continue a fitted run from its last complete checkpoint, on the data and config it records (data
    read again and checked unchanged); ``max_epochs`` raises the config's ceiling."""
    device = resolve_device(device)
    run = Run.open(run)
    config = run.config if max_epochs is None else run.config.replace(max_epochs=max_epochs)
    sessions = checked_sessions(run.sessions(), config)
    run, resume = Run.begin_fit(run, config, run.info)
    return _train(run, sessions, resume, device, progress)


def checked_sessions(data: LFADSDataset | Sequence[LFADSDataset], config: LFADSConfig) -> list[LFADSDataset]:
    """The sessions of ``data``, refused unless ``config`` can fit them (support, bins, held-in layout,
    sessions that stitch)."""
    sessions = as_sessions(data)
    if not sessions:
        raise InputError("data: no data set given")
    for dataset in sessions:
        ensure_valid(dataset, support=data_support(config.likelihood), min_time_bins=config.time_bins)
        if config.coordinated_dropout_rate > 0 or config.sv_rate > 0:
            check_heldin_layout(dataset)
    check_sessions(sessions)
    return sessions


def _train(run: Run, sessions: list[LFADSDataset], resume: bool, device: str, progress: bool) -> Run:
    """Train ``run`` on ``sessions`` (from its last checkpoint when ``resume``); record the final state."""
    trainer = new_trainer(run, sessions, init_seed=run.config.seed, device=device, progress=progress)
    if resume:
        trainer.resume(run.checkpoint_path("last"))
    run.training = trainer.fit()
    return run


def new_trainer(run: Run, sessions: list[LFADSDataset], *, init_seed: int, device: str = "cpu",
                progress: bool = True) -> Trainer:
    """A Trainer of freshly initialised weights (drawn with ``init_seed``; read-outs from the data,
    stitched sessions by PCR) for ``run``'s config, writing into its directory."""
    config, info = run.config, run.info
    pyro.clear_param_store()
    pyro.set_rng_seed(init_seed)
    model, guide = build_model_and_guide(config, info)
    for likelihood, dataset in zip(model.likelihoods, sessions):
        likelihood.init_from_data(torch.as_tensor(dataset.train.recon_data[:, : info.n_time], dtype=torch.float32))
    if len(sessions) > 1:
        initialise_sessions(model, guide, sessions, info.n_time)
    return Trainer(model, guide, sessions, config, run.directory, device=device, progress=progress)
