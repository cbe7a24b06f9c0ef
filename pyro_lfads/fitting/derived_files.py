"""The files a run directory holds besides its fit, made from its best checkpoint (posterior.h5,
decoding.h5, diagnostics.json, inference_data.nc, report/), and :class:`Source`, the record each of
them keeps of what it was made from.

A derived file made from another checkpoint or other data than its run's is stale: the commands that
read one compare its Source with the run's (:meth:`pyro_lfads.fitting.run.Run.check_source`) and
refuse a stale one, naming the command that makes it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from pyro_lfads.data.atomic_files import check_inside_run

POSTERIOR_FILE, DECODING_FILE = "posterior.h5", "decoding.h5"
INFERENCE_DATA_FILE, DIAGNOSTICS_FILE, REPORT_DIR = "inference_data.nc", "diagnostics.json", "report"
#: ``analyze``'s folder and what it writes there (:mod:`pyro_lfads.analysis.run_analysis`).
ANALYSIS_DIR, ANALYSIS_FILES = "analysis", ("analysis.json", "jpca.png", "inputs_embedding.png")
#: The report's figures of the whole run, and those it draws once per session (for session k of a stitched run
#: ``session{k}_{name}``); :data:`pyro_lfads.diagnostics.report_page.CAPTIONS` says what each shows.
RUN_FIGURES = ("training.png", "sessions.png")
SESSION_FIGURES = ("raster.png", "rates.png", "rate_scatter.png", "rate_r2_by_bin.png",
                   "factors.png", "inputs.png", "inputs_embedding.png", "ppc.png", "khat.png")
#: What ``report`` writes into its folder: the page and its figures.
REPORT_FILES = ("index.html", *RUN_FIGURES, *SESSION_FIGURES)
#: The derived files of a run directory, as patterns (a stitched run's are ``{stem}_session{k}{suffix}``).
DERIVED_PATTERNS = ("posterior.h5", "posterior_session*.h5", "decoding.h5", "decoding_session*.h5",
                    DIAGNOSTICS_FILE, "diagnostics_session*.json", INFERENCE_DATA_FILE, "inference_data_session*.nc",
                    *(f"{REPORT_DIR}/{name}" for name in REPORT_FILES),
                    *(f"{REPORT_DIR}/session*_{name}" for name in SESSION_FIGURES),
                    *(f"{ANALYSIS_DIR}/{name}" for name in ANALYSIS_FILES))
SOURCE_PREFIX = "source_"


@dataclass(frozen=True)
class Source:
    """What a derived file was made from: the sha256 of the checkpoint file, the checksum of the data
    (:func:`pyro_lfads.fitting.run.dataset_sha256`) and the checkpoint's epoch."""

    checkpoint_sha256: str
    data_sha256: str
    epoch: int

    def as_attrs(self) -> dict:
        """The record as flat attributes (HDF5, NetCDF): ``source_checkpoint_sha256``, ..."""
        return {f"{SOURCE_PREFIX}{key}": value for key, value in asdict(self).items()}

    @classmethod
    def from_attrs(cls, attrs) -> "Source | None":
        """The record kept by :meth:`as_attrs` in ``attrs``; None when it keeps none."""
        try:
            return cls(str(attrs[f"{SOURCE_PREFIX}checkpoint_sha256"]), str(attrs[f"{SOURCE_PREFIX}data_sha256"]),
                       int(attrs[f"{SOURCE_PREFIX}epoch"]))
        except (KeyError, TypeError, ValueError):
            return None

    def described(self) -> str:
        """One line for a page: the epoch and the start of each digest."""
        return (f"checkpoint of epoch {self.epoch} (sha256 {self.checkpoint_sha256[:12]}), "
                f"data sha256 {self.data_sha256[:12]}")


def file_sha256(path: Path) -> str:
    """The sha256 of the file at ``path``, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def derived_paths(directory: Path) -> list[Path]:
    """The derived files in ``directory`` (files only; never what a symlink points to)."""
    return sorted({path for pattern in DERIVED_PATTERNS for path in directory.glob(pattern)
                   if path.is_symlink() or path.is_file()})


def remove_derived_files(directory: Path) -> None:
    """Remove ``directory``'s derived files, and its report and analysis folders when they are empty after."""
    for path in derived_paths(directory):
        check_inside_run(path)  # never delete through a link out of the run
        path.unlink(missing_ok=True)
    for folder in (REPORT_DIR, ANALYSIS_DIR):
        try:
            (directory / folder).rmdir()
        except OSError:  # absent, or holding files the report or analyze did not write
            pass
