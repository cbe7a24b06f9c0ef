"""The behaviour a behaviour model observes (``model: behavior``, :mod:`pyro_lfads.models.behavior`): the data
file's ``{split}_behavior`` extras (trials, time, dims), checked and attached to the training views."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.errors import InputError


def behavior_dims(dataset: LFADSDataset) -> int:
    """D, the dimensions of the data set's behaviour, checked present, finite and one row per trial and bin."""
    for name in ("train", "valid"):
        split: Split = getattr(dataset, name)
        behavior = dataset.extras.get(f"{name}_behavior")
        if behavior is None:
            raise InputError(f"{dataset.source}: {name}_behavior: missing; model: behavior needs the behaviour "
                             "(trials, time, dims) of both splits")
        behavior = np.asarray(behavior)
        if behavior.ndim != 3 or behavior.shape[0] != split.n_trials or not np.issubdtype(behavior.dtype, np.number):
            raise InputError(f"{dataset.source}: {name}_behavior: expected numbers of shape ({split.n_trials}, time, "
                             f"dims), one row per trial and bin, got {behavior.shape}")
        if not np.isfinite(behavior).all():
            raise InputError(f"{dataset.source}: {name}_behavior: holds NaN or infinite values; model: behavior "
                             "scores every bin of it")
    return int(dataset.extras["train_behavior"].shape[2])


def with_behavior(split: Split, dataset: LFADSDataset, name: str) -> Split:
    """``split`` (the view of split ``name`` of ``dataset``) carrying the data set's ``{name}_behavior``."""
    behavior = np.asarray(dataset.extras[f"{name}_behavior"], dtype=np.float32)
    return replace(split, behavior=behavior)
