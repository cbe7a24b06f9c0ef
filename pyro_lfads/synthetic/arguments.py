"""Argument checks shared by the synthetic-data generators: one-line InputErrors."""

from __future__ import annotations

import math
import numbers

from pyro_lfads.errors import InputError


def check_int(name: str, value: object, minimum: int) -> None:
    """Refuse a non-integer (bools included) or one below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name}: must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{name}: must be >= {minimum}, got {value}")


def check_float(name: str, value: object, allow_zero: bool = False) -> None:
    """Refuse a non-finite or negative number, and zero unless ``allow_zero``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"{name}: must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def train_count(train_fraction: object, trials_per_condition: int) -> int:
    """Trials of each condition that go to train; refuses a fraction leaving either split empty."""
    check_float("train_fraction", train_fraction)
    n_train = round(train_fraction * trials_per_condition)
    if train_fraction >= 1 or not 0 < n_train < trials_per_condition:
        raise InputError(f"train_fraction: {train_fraction} of {trials_per_condition} trials per condition "
                         "leaves the train or valid split empty")
    return n_train
