"""The checks the analyses make of their array arguments, in one place, each failing with a one-line InputError."""

from __future__ import annotations

import numpy as np

from pyro_lfads.errors import InputError


def real_array(name: str, value: object, axes: tuple[str, ...]) -> np.ndarray:
    """``value`` as a float64 array of shape ``axes`` (named, e.g. ("conditions", "time", "dims")), all finite.

    Raises:
        InputError: not numeric, the wrong number of axes, an empty axis, or NaN/inf entries.
    """
    layout = ", ".join(axes)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: must be a numeric array ({layout}), got {type(value).__name__}") from None
    if array.ndim != len(axes):
        raise InputError(f"{name}: must have {len(axes)} axes ({layout}), got shape {array.shape}")
    if 0 in array.shape:
        raise InputError(f"{name}: has an empty axis, shape {array.shape} ({layout})")
    bad = ~np.isfinite(array)
    if bad.any():
        raise InputError(f"{name}: holds {int(bad.sum())} NaN or infinite value(s) of {array.size}")
    return array


def whole_number(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (no upper bound when None); bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name}: must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise InputError(f"{name}: must be {bound}, got {value}")
    return int(value)


def positive_number(name: str, value: object) -> float:
    """``value`` as a finite float > 0; bools and non-numbers are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise InputError(f"{name}: must be a finite number > 0, got {value!r}")
    return float(value)
