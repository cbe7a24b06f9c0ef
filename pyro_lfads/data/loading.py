"""One way in for a data set file: ``load_dataset`` tells the formats apart and validates once.

LFADS HDF5 / ``.npz`` files (:mod:`pyro_lfads.data.lfads_files`) and Neural
Latents Benchmark tensor files (:mod:`pyro_lfads.data.nlb`, recognised by their
keys whatever the suffix). NWB files are binned by :func:`pyro_lfads.data.nwb.load_nwb`
with its own options.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

from pyro_lfads.data.containers import SPLITS, LFADSDataset
from pyro_lfads.data.lfads_files import read_lfads_file
from pyro_lfads.data.nlb import has_nlb_layout, nlb_dataset, read_nlb_arrays
from pyro_lfads.data.validation import check_dataset, check_options


def load_dataset(
    path: str | os.PathLike[str],
    support: str = "counts",
    min_time_bins: int | None = None,
) -> LFADSDataset:
    """Read an LFADS data set from an HDF5 (``.h5``, ``.hdf5``) or ``.npz`` file.

    The layout is that of the original LFADS and of lfads-torch. An HDF5
    file of Neural Latents Benchmark tensors (``train_spikes_heldin``, ...)
    is read as :func:`pyro_lfads.data.nlb.load_nlb_tensors` reads it. Required:
    ``train_encod_data``, ``train_recon_data``, ``valid_encod_data`` and
    ``valid_recon_data``, or the older ``train_data`` and ``valid_data`` (then
    encod = recon = that array, one shared object). Shapes:

    - ``*_recon_data``: (trials, time, neurons), what the model reconstructs.
    - ``*_encod_data``: (trials, time_enc, neurons_enc), what the encoders
      read; same trials as recon, ``time_enc <= time`` (forward prediction)
      and ``neurons_enc`` may differ (held-out neurons).
    - ``*_ext_input`` (optional): (trials, time, inputs).
    - ``*_truth`` (optional): (trials, time, neurons), true rates in file units.
    - ``*_inds`` (optional): (trials,), trial indices in the recording.
    - ``conversion_factor`` (optional scalar): truth / conversion_factor =
      expected counts per bin.
    - ``bin_width_s`` (optional scalar): the width of one bin, seconds.

    lfads-torch's ``*_cond_idx`` (one label per trial) is read as ``*_conditions`` where the file has none.

    Every other array whose key starts with ``train_`` or ``valid_`` goes into
    ``extras`` unchanged (variable-length HDF5 strings become numpy ``str``
    arrays; arrays that are not numbers, booleans or text are skipped with a
    warning). Other keys are not read.

    Args:
        path: the file; its suffix picks the format.
        support: what the likelihood needs of ``*_encod_data`` and
            ``*_recon_data``: ``"counts"`` (non-negative integers),
            ``"nonnegative"`` (reals >= 0) or ``"real"`` (finite reals).
        min_time_bins: if given, every split needs at least this many time
            bins in both encod and recon data.

    Returns:
        The data set: data, ext_input and truth as float32, inds as int64,
        ``source`` set to ``str(path)``.

    The file is opened once; the data set is validated once, here, and
    carries the record of it (``validated``), so that ``fit`` does not check
    it again.

    Raises:
        InputError: one line ``<path>: <key>: <problem>`` for any problem with
            the file or its contents (see ``validate_dataset``).
    """
    return _load(path, support, min_time_bins, one_split=False)[0]


def load_trials(path: str | os.PathLike[str], support: str = "counts",
                min_time_bins: int | None = None) -> tuple[LFADSDataset, tuple[str, ...]]:
    """Read trials to put through a fitted model: :func:`load_dataset`, but the file may hold one split
    only (all its keys ``train_*``, or all ``valid_*``).

    Returns:
        (data set, the splits the file holds): for a file of one split, the data set's other split is
        the same trials again (the very arrays), and only the splits named are to be used.
    """
    return _load(path, support, min_time_bins, one_split=True)


def _load(path, support: str, min_time_bins: int | None, one_split: bool) -> tuple[LFADSDataset, tuple[str, ...]]:
    """The data set of the file at ``path``, validated once, and the splits the file holds."""
    source = str(path)
    check_options(source, support, min_time_bins)
    with _open_hdf5(Path(path)) as handle:
        if handle is not None and has_nlb_layout(handle):
            dataset, names, held = nlb_dataset(read_nlb_arrays(handle, source), source), {}, SPLITS
        else:
            dataset, names, held = read_lfads_file(Path(path), source, handle, one_split=one_split)
    check_dataset(dataset, support, min_time_bins, names)
    return dataset, held


@contextmanager
def _open_hdf5(path: Path) -> Iterator[h5py.File | None]:
    """``path`` open as HDF5, or None when it is not a readable HDF5 file (the LFADS reader says why)."""
    try:
        handle = h5py.File(path, "r") if path.is_file() and h5py.is_hdf5(path) else None
    except Exception:  # h5py raises many kinds for damaged files
        handle = None
    if handle is None:
        yield None
        return
    with handle:
        yield handle
