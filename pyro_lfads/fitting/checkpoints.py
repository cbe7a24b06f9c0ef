"""Checkpoints: what a fit saves after each epoch, written atomically and read without running code.

A checkpoint is a dict of plain values (tensors, numbers, strings, lists, tuples, dicts, None):

    model, guide   state dicts
    optim          the Adam state of every parameter (``pyro.optim``'s ``get_state``)
    trainer        the ``TrainerState`` as a dict
    epoch          the epoch it was saved after
    rng            generator states (:func:`rng_states`)

It is read with ``torch.load(weights_only=True)``, whose unpickler builds these types and nothing else:
a file that asks for any other object (a crafted pickle) is refused before anything in it runs.
"""

from __future__ import annotations

import io
import pickle
import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from pyro_lfads.data.atomic_files import write_atomically
from pyro_lfads.errors import InputError

#: The keys of every checkpoint :func:`save_checkpoint` writes.
CHECKPOINT_KEYS = ("model", "guide", "optim", "trainer", "epoch", "rng")


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # serialised in memory: a full disk then fails as a plain OSError, not torch's
    torch.save(state, buffer)
    write_atomically(path, buffer.getbuffer())


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; refuse anything else, running nothing."""
    try:
        with warnings.catch_warnings():  # torch's notes on a file's pickle protocol: the verdict is below
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no checkpoint here; has this run been fitted?") from None
    except pickle.UnpicklingError as exc:  # weights_only refused an object, or the pickle is garbled
        asked = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"it asks to build {asked.group(1)}" if asked else "it holds what a checkpoint never does"
        raise InputError(f"{path}: not a pyro-lfads checkpoint ({what}; nothing in it was run); "
                         "the file is corrupt, truncated, written by another program or by an earlier pyro-lfads: fit the run again") from None
    except Exception as exc:  # torch raises many kinds for corrupt files
        raise InputError(f"{path}: not a readable checkpoint ({type(exc).__name__}); the file is corrupt or truncated") from None
    if not (isinstance(state, dict) and set(CHECKPOINT_KEYS) <= set(state)
            and all(_is_state_dict(state[name]) for name in ("model", "guide"))):
        raise InputError(f"{path}: not a pyro-lfads checkpoint")
    return state


def _is_state_dict(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def load_weights(model, guide, state: dict, path: Path) -> None:
    """Load a checkpoint's model and guide weights; refuse, naming the first differing tensor, a checkpoint
    of another config or data shape."""
    for name, module in (("model", model), ("guide", guide)):
        mine, theirs = module.state_dict(), state[name]
        problem = next((f"{key}: missing" for key in mine if key not in theirs), None)
        problem = problem or next((f"{key}: not in this model" for key in theirs if key not in mine), None)
        problem = problem or next((f"{key}: shape {tuple(theirs[key].shape)} in the checkpoint, {tuple(value.shape)} "
                                   f"here" for key, value in mine.items() if value.shape != theirs[key].shape), None)
        if problem is not None:
            raise InputError(f"{path}: checkpoint does not match this run's config and data ({name} {problem})")
        module.load_state_dict(theirs)


def rng_states(generators: dict[str, torch.Generator]) -> dict:
    """The states of torch's, Python's and numpy's global generators (numpy's as plain values, so that
    nothing but tensors and numbers is pickled), of ``generators`` by name, and of CUDA's (None without)."""
    kind, key, position, has_gauss, cached_gaussian = np.random.get_state()
    return {"torch": torch.get_rng_state(), "random": random.getstate(),
            "numpy": [str(kind), torch.from_numpy(key.astype(np.int64)), int(position), int(has_gauss),
                      float(cached_gaussian)],
            **{name: generator.get_state() for name, generator in generators.items()},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_states(states: dict, generators: dict[str, torch.Generator]) -> None:
    """Restore what :func:`rng_states` saved."""
    torch.set_rng_state(states["torch"].cpu())  # .cpu(): a checkpoint may be loaded onto another device
    kind, key, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, key.cpu().numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    random.setstate(states["random"])
    for name, generator in generators.items():
        generator.set_state(states[name].cpu())
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])
