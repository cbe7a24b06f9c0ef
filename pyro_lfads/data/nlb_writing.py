"""LFADS data sets -> Neural Latents Benchmark (NLB) tensor files, the inverse of :mod:`pyro_lfads.data.nlb`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from pyro_lfads.data.atomic_files import atomic_hdf5
from pyro_lfads.data.containers import LFADSDataset
from pyro_lfads.data.nlb import NLB_SPLITS
from pyro_lfads.data.validation import ensure_valid, one_line
from pyro_lfads.errors import InputError


def save_nlb_tensors(dataset: LFADSDataset, path: str | os.PathLike[str], n_heldin: int) -> None:
    """Write ``dataset`` to ``path`` in the NLB tensor layout, atomically.

    The inverse of ``load_nlb_tensors``: ``n_heldin`` is the number of
    encoder neurons and T the number of encoder bins; recon neurons after
    the first ``n_heldin`` are held out, recon bins after the first T are
    forward bins. Writes spikes, truth, ``conversion_factor`` and ``bin_width_s``, and the
    extras ``*_behavior`` and ``*_conditions``; ext_input, inds and other
    extras are not part of the NLB layout and are left out with a warning.

    Raises:
        InputError: a data set not in the NLB layout (encoder neurons other
            than ``n_heldin``, encoder data that is not the first T bins and
            ``n_heldin`` neurons of recon data, forward bins in one split
            only), data that are not counts, a missing directory or a failed
            write.
    """
    path = Path(path)
    target = str(path)
    source = str(dataset.source)
    ensure_valid(dataset, support="counts")
    if isinstance(n_heldin, bool) or not isinstance(n_heldin, (int, np.integer)) or n_heldin < 1:
        raise InputError(f"{target}: n_heldin: must be a positive integer, got {n_heldin!r}")
    arrays: dict[str, np.ndarray] = {}
    forward = []
    for split, nlb in NLB_SPLITS.items():
        part = getattr(dataset, split)
        encod, recon = part.encod_data, part.recon_data
        n_time = encod.shape[1]
        if encod.shape[2] != n_heldin or recon.shape[2] < n_heldin:
            raise InputError(
                f"{source}: {split}_encod_data: has {encod.shape[2]} neurons and {split}_recon_data "
                f"{recon.shape[2]}, but n_heldin={n_heldin}; the encoder reads the held-in neurons"
            )
        if not np.array_equal(recon[:, :n_time, :n_heldin], encod):
            raise InputError(
                f"{source}: {split}_recon_data: its first {n_time} bins and {n_heldin} neurons differ from "
                f"{split}_encod_data; in the NLB layout they are the same held-in spikes"
            )
        forward.append(recon.shape[1] > n_time)
        arrays[f"{nlb}_spikes_heldin"] = encod
        arrays[f"{nlb}_spikes_heldout"] = recon[:, :n_time, n_heldin:]
        if forward[-1]:
            arrays[f"{nlb}_spikes_heldin_forward"] = recon[:, n_time:, :n_heldin]
            arrays[f"{nlb}_spikes_heldout_forward"] = recon[:, n_time:, n_heldin:]
        if part.truth is not None:
            arrays[f"{nlb}_truth"] = part.truth
        for name, nlb_name in (("behavior", "behavior"), ("conditions", "condition")):
            if f"{split}_{name}" in dataset.extras:
                arrays[f"{nlb}_{nlb_name}"] = dataset.extras[f"{split}_{name}"]
    if forward[0] != forward[1]:
        raise InputError(
            f"{source}: {'valid' if forward[0] else 'train'}_recon_data: has no forward bins but the other "
            "split has; NLB forward-prediction spikes need both splits or neither"
        )
    if dataset.conversion_factor is not None and any(key.endswith("_truth") for key in arrays):
        arrays["conversion_factor"] = np.asarray(float(dataset.conversion_factor), dtype=np.float64)
    if dataset.bin_width_s is not None:
        arrays["bin_width_s"] = np.asarray(float(dataset.bin_width_s), dtype=np.float64)
    left_out = [f"{split}_{name}" for split in NLB_SPLITS for name in ("ext_input", "inds")
                if getattr(getattr(dataset, split), name) is not None]
    left_out += [key for key in dataset.extras if not key.endswith(("_behavior", "_conditions"))]
    if left_out:
        warnings.warn(f"{target}: not written (not part of the NLB layout): {', '.join(left_out)}", stacklevel=2)
    if not path.parent.is_dir():
        raise InputError(f"{target}: directory {str(path.parent)!r} does not exist")
    try:
        with atomic_hdf5(path) as handle:
            for key, array in arrays.items():
                handle.create_dataset(key, data=array)
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {one_line(exc)}") from None
