"""LFADS data sets: containers, validation, and the file formats (LFADS HDF5 / .npz, NLB tensors, NWB).

Arrays are numpy, float32 for data, with shapes ``(trials, time, neurons)``
for spikes and rates and ``(trials, time, inputs)`` for external inputs.

- :mod:`~pyro_lfads.data.containers`: ``Split`` and ``LFADSDataset``.
- :mod:`~pyro_lfads.data.validation`: every check of a data set, and the record that it passed.
- :mod:`~pyro_lfads.data.from_arrays`: ``dataset_from_arrays``.
- :mod:`~pyro_lfads.data.lfads_files`: the LFADS HDF5 / ``.npz`` formats, ``save_dataset``.
- :mod:`~pyro_lfads.data.loading`: ``load_dataset``, one way in for every file format.
- :mod:`~pyro_lfads.data.nlb`, :mod:`~pyro_lfads.data.nlb_writing`, :mod:`~pyro_lfads.data.nwb`,
  :mod:`~pyro_lfads.data.binning`: Neural Latents Benchmark tensors (read, written), NWB files, and the
  binning of spike times.
"""

from pyro_lfads.data.containers import LFADSDataset, Split, as_sessions
from pyro_lfads.data.from_arrays import dataset_from_arrays
from pyro_lfads.data.lfads_files import save_dataset
from pyro_lfads.data.loading import load_dataset
from pyro_lfads.data.validation import ensure_valid, validate_dataset

__all__ = ["LFADSDataset", "Split", "as_sessions", "dataset_from_arrays", "load_dataset", "save_dataset",
           "validate_dataset", "ensure_valid"]
