"""How long a fit runs and how its weights change over it: batch size, the KL/L2 ramp, the
learning-rate decay and the stop on a plateau of the validation objective.

Lengths are counted in epochs, so that one configuration serves a recording of 50 trials
and a data set of thousands alike: a fixed count of optimiser steps (the paper's 2000-step
ramp) is 1000 epochs of a small recording and 200 of a large one.

- Batches: at most ``batch_size`` trials, and at least ``MIN_STEPS_PER_EPOCH`` steps an
  epoch, so a small data set is not fitted one step per epoch.
- Ramp: the KL weight rises linearly over ``kl_ramp_epochs`` epochs (or ``kl_ramp_steps``
  steps when that is set) to 1; the L2 penalty follows it.
- Plateau: once the ramp is over, an epoch whose validation objective (the quantity that
  chooses the best checkpoint) beats the reference by ``min_improvement`` (relative) is
  progress. ``lr_patience`` epochs without progress (and since the last decay) multiply the
  learning rate by ``lr_decay``; ``patience`` epochs without progress stop the fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyro_lfads.config import LFADSConfig

#: The fewest optimiser steps an epoch takes; smaller data sets get smaller batches.
MIN_STEPS_PER_EPOCH = 4


def epoch_batch_size(n_trials: int, batch_size: int) -> int:
    """Trials per step for ``n_trials`` training trials: ``batch_size``, or fewer so that an epoch
    takes at least ``MIN_STEPS_PER_EPOCH`` steps (never below 1)."""
    return max(1, min(batch_size, math.ceil(n_trials / MIN_STEPS_PER_EPOCH)))


def steps_per_epoch(session_trials: Sequence[int], batch_size: int) -> int:
    """Optimiser steps in one epoch over sessions of these training-trial counts, each batched
    separately in batches of ``batch_size``."""
    return sum(math.ceil(n / batch_size) for n in session_trials)


def ramp_steps(config: LFADSConfig, n_steps_per_epoch: int) -> int:
    """Length of the KL/L2 ramp in optimiser steps: ``kl_ramp_steps`` when set, else
    ``kl_ramp_epochs`` epochs of ``n_steps_per_epoch`` steps."""
    return config.kl_ramp_steps or config.kl_ramp_epochs * n_steps_per_epoch


def ramp_weight(step: int, n_ramp_steps: int) -> float:
    """Linear ramp from 1/n_ramp_steps at step 0 to 1 at step n_ramp_steps - 1 (always > 0)."""
    return min(1.0, (step + 1) / n_ramp_steps)


@dataclass(frozen=True)
class PlateauRule:
    """When to decay the learning rate and when to stop, from the epochs since the last progress.

    Epochs are counted from 1; ``ramp_end_epoch`` is the first epoch at which the KL weight is 1.
    Nothing is counted before it: while the ramp runs the objective the optimiser sees changes
    every step, and a plateau of the validation objective means little.
    """

    patience: int
    lr_patience: int
    min_improvement: float
    ramp_end_epoch: int

    @classmethod
    def for_run(cls, config: LFADSConfig, n_steps_per_epoch: int) -> "PlateauRule":
        end = math.ceil(ramp_steps(config, n_steps_per_epoch) / n_steps_per_epoch)
        return cls(config.patience, config.lr_patience, config.min_improvement, end)

    def is_progress(self, score: float, reference: float) -> bool:
        """Whether ``score`` beats ``reference`` (inf before the first epoch) by the relative margin
        (lower is better)."""
        if not math.isfinite(reference):
            return score < reference
        return score < reference - self.min_improvement * abs(reference)

    def action(self, epoch: int, progress_epoch: int, last_decay_epoch: int) -> str:
        """"stop", "decay" or "" after ``epoch``, given the epoch of the last progress and of the last
        learning-rate decay (0 for none)."""
        quiet_since = max(progress_epoch, self.ramp_end_epoch)
        if self.patience and epoch - quiet_since >= self.patience:
            return "stop"
        if epoch - max(quiet_since, last_decay_epoch) >= self.lr_patience:
            return "decay"
        return ""
