"""Which device a command computes on: ``auto`` (CUDA when torch sees a CUDA device, else the CPU), ``cpu``,
``cuda`` or ``cuda:N``, refused in one line when this machine does not have it."""

from __future__ import annotations

import torch

from pyro_lfads.errors import InputError


def resolve_device(device: str) -> str:
    """``device`` checked (:func:`check_device`), with "auto" made "cuda" when torch sees a CUDA device, else "cpu"."""
    check_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_device(device: str) -> None:
    """Refuse a device that this machine does not have, in one line ("auto" is always accepted)."""
    if device in ("auto", "cpu"):
        return
    if isinstance(device, str) and device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device: {device!r} requested but CUDA is not available on this machine; "
                             "use cpu, or auto to take CUDA only where there is one")
        return
    raise InputError(f"device: {device!r} is not one of auto, cpu, cuda, cuda:N")
