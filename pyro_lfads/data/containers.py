"""The containers of a data set: two splits of arrays, and the record of their validation.

Arrays are numpy, float32 for data, with shapes
``(trials, time, neurons)`` for spikes and rates and ``(trials, time, inputs)``
for external inputs. ``*_truth`` holds the true rates in the file's own units;
``truth / conversion_factor`` is the expected count per bin (the convention of
the original LFADS synthetic data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "valid")

#: Split fields in file order; the file key of a field is f"{split}_{field}".
FIELDS = ("encod_data", "recon_data", "ext_input", "truth", "inds")


@dataclass(frozen=True)
class Validation:
    """The settings a data set passed validation under, and the objects it held then.

    Attributes:
        support: the ``support`` it was checked for (see ``pyro_lfads.data.validation.SUPPORTS``).
        min_time_bins: the least number of time bins it was checked for, or None.
        contents: the splits, their arrays, the conversion factor and the extras at that time;
            the record holds while the data set holds these very objects.
    """

    support: str
    min_time_bins: int | None
    contents: tuple


@dataclass
class Split:
    """One split (``train`` or ``valid``) of an LFADS data set.

    Attributes:
        encod_data: (trials, time_enc, neurons_enc) what the encoders read.
        recon_data: (trials, time, neurons) what the model reconstructs.
        ext_input: (trials, time, inputs) observed inputs to the generator, or None.
        truth: (trials, time, neurons) true rates in file units, or None.
        inds: (trials,) trial indices in the original recording, or None.
        recon_mask: (trials, time, neurons) bool, the entries of recon_data
            the likelihood scores; None scores all. Never read from or
            written to files: training sets it for sample validation
            (:mod:`pyro_lfads.fitting.masking`).
        behavior: (trials, time, dims) the behaviour a behaviour model observes, or None. Never read
            from or written to files under this name (the file's ``{split}_behavior`` is an extra):
            training sets it for ``model: behavior`` (:mod:`pyro_lfads.fitting.masking`).
    """

    encod_data: np.ndarray
    recon_data: np.ndarray
    ext_input: np.ndarray | None = None
    truth: np.ndarray | None = None
    inds: np.ndarray | None = None
    recon_mask: np.ndarray | None = None
    behavior: np.ndarray | None = None

    @property
    def n_trials(self) -> int:
        return int(self.recon_data.shape[0])

    @property
    def n_time(self) -> int:
        return int(self.recon_data.shape[1])

    @property
    def n_neurons(self) -> int:
        return int(self.recon_data.shape[2])


@dataclass
class LFADSDataset:
    """A train and a valid split, plus file-level metadata.

    Attributes:
        train, valid: the two splits.
        conversion_factor: truth / conversion_factor = expected counts per bin;
            None when the file has no truth.
        source: where the data came from (a path, or a description), used in
            error messages.
        extras: other arrays stored in the file under their own key names
            (e.g. ``train_conditions``, ``valid_latents``), written and read
            back unchanged.
        bin_width_s: the width of one time bin, seconds (file key ``bin_width_s``); None when
            unknown. It turns counts per bin into spikes/s and bins into time on axes.
        validated: the settings it passed validation under, and what it held
            then; None until validated.
    """

    train: Split
    valid: Split
    conversion_factor: float | None = None
    source: str = "<arrays>"
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    bin_width_s: float | None = None
    #: What the data set was last validated for (:mod:`pyro_lfads.data.validation` sets it); never
    #: copied by ``dataclasses.replace``, and stale once a split, array or extra is replaced.
    validated: Validation | None = field(default=None, init=False, repr=False, compare=False)

    def truth_counts(self, split: str) -> np.ndarray | None:
        """True rates of ``split`` in expected counts per bin, or None."""
        truth = getattr(self, split).truth
        if truth is None:
            return None
        factor = 1.0 if self.conversion_factor is None else self.conversion_factor
        return truth / factor


def as_sessions(data: LFADSDataset | Sequence[LFADSDataset]) -> list[LFADSDataset]:
    """A list of sessions from one data set or a sequence of them (stitching)."""
    return [data] if isinstance(data, LFADSDataset) else list(data)


def contents(dataset: LFADSDataset) -> tuple:
    """The objects a validation of ``dataset`` looked at: splits, their arrays, factor and extras."""
    parts = (dataset.train, dataset.valid)
    arrays = tuple(getattr(part, name, None) for part in parts for name in FIELDS)
    return (*parts, *arrays, dataset.conversion_factor, dataset.bin_width_s, dataset.extras, *dataset.extras,
            *dataset.extras.values())
