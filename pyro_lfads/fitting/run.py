"""A run directory: what was fitted, on what, and its checkpoints; :class:`Run`, the handle every
command opens it with, once.

Layout of RUN_DIR:
    config.yaml            the LFADSConfig
    run.json               data source (absolute, and relative to RUN_DIR) and checksum, data shapes, the bin
                           width, package versions
    checkpoints/last.pt    the latest complete epoch (resume from here)
    checkpoints/best.pt    the epoch with the lowest validation loss
    training_curve.jsonl   one JSON object per epoch
    events.out.tfevents.*  its numbers for TensorBoard, when installed (:mod:`pyro_lfads.fitting.tensorboard_log`)
    posterior.h5           posterior averages (written by ``posterior``); decoding.h5, diagnostics.json,
                           inference_data.nc, report/ likewise: the derived files, each recording
                           the checkpoint and data it was made from (:mod:`pyro_lfads.fitting.derived_files`)
    .pyro-lfads.lock       held by the command writing here (:mod:`pyro_lfads.fitting.run_lock`)

A stitched run's per-session files are named ``{stem}_session{k}{suffix}`` (:meth:`Run.session_file`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyro
import torch

from pyro_lfads.version import __version__
from pyro_lfads.config import BEFORE_THE_KEY, LFADSConfig
from pyro_lfads.data import LFADSDataset, Split, as_sessions, load_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.data.atomic_files import atomic_path, check_inside_run, remove_leftover_temporaries
from pyro_lfads.fitting.behavior_data import behavior_dims
from pyro_lfads.fitting.checkpoints import load_checkpoint, load_weights
from pyro_lfads.fitting.derived_files import Source, file_sha256, remove_derived_files
from pyro_lfads.fitting.run_lock import LOCK_FILE
from pyro_lfads.fitting.tensorboard_log import EVENT_FILES
from pyro_lfads.guides.lfads import LFADSGuide
from pyro_lfads.models.behavior import BehaviorModel
from pyro_lfads.models.lfads import LFADSModel
from pyro_lfads.models.likelihoods import data_support

CONFIG_FILE, INFO_FILE, CURVE_FILE = "config.yaml", "run.json", "training_curve.jsonl"
LAST, BEST = "checkpoints/last.pt", "checkpoints/best.pt"


@dataclass
class RunInfo:
    """What a run was fitted on: enough to rebuild its model and guide.

    ``data_source`` is the data file's resolved absolute path (or the description of data made in
    memory), ``data_relative`` the same file's path relative to the run directory: tried second, it
    finds the data of a project folder moved as a whole. ``bin_width_s`` is the data's bin width in
    seconds, None when the data did not record one; ``n_encod_time`` the bins its encoders read (None in
    a run.json written before it was recorded); ``n_behavior`` the dimensions of the behaviour a behaviour
    model observes (None for LFADS).

    A stitched run (several sessions) lists every session's own RunInfo in
    ``sessions``; its top-level fields are session 0's but ``data_sha256``,
    which covers all sessions.
    """

    data_source: str
    data_sha256: str
    n_neurons: int
    n_encod_neurons: int
    n_ext_inputs: int
    n_time: int
    versions: dict
    sessions: list | None = None
    data_relative: str | None = None
    bin_width_s: float | None = None
    n_encod_time: int | None = None
    n_behavior: int | None = None

    @classmethod
    def describe(cls, data: LFADSDataset | Sequence[LFADSDataset], config: LFADSConfig) -> "RunInfo":
        """The RunInfo of a fit of ``data``: one data set, or a list of sessions to stitch."""
        sessions = as_sessions(data)
        if len(sessions) > 1:
            parts = [cls.describe(dataset, config) for dataset in sessions]
            digest = hashlib.sha256("".join(p.data_sha256 for p in parts).encode()).hexdigest()
            return replace(parts[0], data_sha256=digest, sessions=[asdict(p) for p in parts])
        dataset = sessions[0]
        train = dataset.train
        n_time = train.n_time if config.time_bins is None else config.time_bins
        ext = 0 if train.ext_input is None else int(train.ext_input.shape[2])
        versions = {"pyro_lfads": __version__, "pyro": pyro.__version__, "torch": torch.__version__,
                    "numpy": np.__version__, "python": platform.python_version()}
        source = str(Path(dataset.source).resolve()) if Path(dataset.source).is_file() else dataset.source
        width = None if dataset.bin_width_s is None else float(dataset.bin_width_s)
        n_behavior = behavior_dims(dataset) if config.model == "behavior" else None
        return cls(source, dataset_sha256(dataset), train.n_neurons, int(train.encod_data.shape[2]),
                   ext, n_time, versions, bin_width_s=width, n_encod_time=int(train.encod_data.shape[1]),
                   n_behavior=n_behavior)

    def session_infos(self) -> list["RunInfo"]:
        """One RunInfo per session: ``[self]`` for a single-session run."""
        return [self] if self.sessions is None else [RunInfo(**session) for session in self.sessions]

    def located(self, directory: Path) -> "RunInfo":
        """This RunInfo with ``data_relative`` (of every session) set for a run in ``directory``."""
        relative = (os.path.relpath(self.data_source, Path(directory).resolve()) if os.path.isabs(self.data_source)
                    else None)
        sessions = None if self.sessions is None else [asdict(part.located(directory)) for part in self.session_infos()]
        return replace(self, data_relative=relative, sessions=sessions)

    def data_path(self, directory: Path) -> Path:
        """Where the data file is now: ``data_source``, else ``data_relative`` from the run ``directory``
        when that file is there."""
        path = Path(self.data_source)
        if self.data_relative is None or path.exists():
            return path
        moved = Path(os.path.normpath(Path(directory).resolve() / self.data_relative))
        if not moved.exists():
            raise InputError(f"{path}: the data this run was fitted on is gone (nor at {moved}, its place relative "
                             f"to {directory}); put the file back")
        return moved


def dataset_sha256(dataset: LFADSDataset) -> str:
    """A checksum of the arrays of a data set (independent of the file format)."""
    digest = hashlib.sha256()
    for split in (dataset.train, dataset.valid):
        for array in (split.encod_data, split.recon_data, split.ext_input):
            if array is not None:
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def build_model_and_guide(config: LFADSConfig, info: RunInfo):
    """A fresh (model, guide) pair for data of the shapes in ``info``: ``config.model``'s program
    (LFADS, or LFADS with behaviour: :class:`~pyro_lfads.models.behavior.BehaviorModel`)."""
    sessions = info.session_infos()
    if config.model == "behavior":
        if len(sessions) > 1:
            raise InputError("model: behavior fits one session; stitching sessions takes model: lfads")
        model = BehaviorModel(config, info.n_neurons, info.n_ext_inputs, n_behavior=info.n_behavior)
        return model, LFADSGuide(model, info.n_encod_neurons)
    if len(sessions) == 1:
        model = LFADSModel(config, info.n_neurons, info.n_ext_inputs)
        return model, LFADSGuide(model, info.n_encod_neurons)
    model = LFADSModel(config, [s.n_neurons for s in sessions], info.n_ext_inputs)
    return model, LFADSGuide(model, [s.n_encod_neurons for s in sessions])


def read_training_curve(run_dir: str | Path) -> list[dict]:
    """The records of RUN_DIR/training_curve.jsonl, one dict per epoch; refuses a run with none."""
    path = Path(run_dir) / CURVE_FILE
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        records = []
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable training curve ({exc})") from None
    if not records:
        raise InputError(f"{run_dir}: no completed epoch yet; run 'pyro-lfads fit' first")
    return records


@dataclass
class TrainerState:
    """Where a fit stands (saved in every checkpoint): everything besides weights and optimiser that a
    resumed fit needs. ``stopped`` says why it ended ("plateau", "lr_min", "max_epochs",
    "non-finite"; empty while it goes on)."""

    epoch: int = 0
    step: int = 0
    lr: float = 0.0
    best_valid: float = math.inf
    best_epoch: int = -1
    progress_valid: float = math.inf
    progress_epoch: int = 0
    last_decay_epoch: int = 0
    stopped: str = ""
    faults: int = 0
    faults_in_a_row: int = 0


class Run:
    """A run directory opened once: its config, its record (:class:`RunInfo`) and its paths; the data
    set(s) and the fitted model and guide are loaded on demand, once each.

    Open one with :meth:`Run.open` (which takes a ``Run`` or a path, so every command accepts either);
    :func:`pyro_lfads.fit` returns one, with ``training`` (the :class:`TrainerState` the fit ended in).
    """

    def __init__(self, directory: str | Path, config: LFADSConfig, info: RunInfo):
        self.directory, self.config, self.info = Path(directory), config, info
        self.training: TrainerState | None = None
        self._datasets: dict[int, LFADSDataset] = {}
        self._fitted: dict[tuple[str, str], tuple] = {}
        self._loaded: dict[str, tuple[str, int]] = {}  # checkpoint -> (sha256, epoch) of what fitted() loaded
        self._best_sha256: tuple[tuple, str] | None = None  # (the file's identity, its sha256)

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r})"

    # --- opening, creating --------------------------------------------------------------
    @classmethod
    def open(cls, run: "Run | str | Path") -> "Run":
        """``run`` itself if it is a Run, else the run directory at that path, its files read once (and the
        temporary files of killed writes in it, its checkpoints/ and report/, removed)."""
        if isinstance(run, Run):
            return run
        directory = Path(run)
        if not (directory / INFO_FILE).is_file():
            raise InputError(f"{directory}: not a pyro-lfads run directory (no {INFO_FILE}); run 'pyro-lfads fit' first")
        config = LFADSConfig.from_yaml(directory / CONFIG_FILE, missing=BEFORE_THE_KEY)
        try:
            info = RunInfo(**json.loads((directory / INFO_FILE).read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise InputError(f"{directory / INFO_FILE}: unreadable run description ({exc})") from None
        for folder in (directory, directory / "checkpoints", directory / "report"):
            remove_leftover_temporaries(folder)
        return cls(directory, config, info)

    @classmethod
    def create(cls, directory: str | Path, config: LFADSConfig, info: RunInfo) -> "Run":
        """Write ``config`` and ``info`` into ``directory`` (made if needed); the Run of it."""
        run = cls(directory, config, info.located(directory))
        run.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(run.directory / CONFIG_FILE) as tmp:
            config.to_yaml(tmp)
        with atomic_path(run.directory / INFO_FILE) as tmp:
            tmp.write_text(json.dumps(asdict(run.info), indent=2))
        return run

    @classmethod
    def begin_fit(cls, target: "Run | str | Path", config: LFADSConfig, info: RunInfo, *,
                  overwrite: bool = False) -> tuple["Run", bool]:
        """The policy of a fit of ``config`` on data described by ``info`` into ``target``: returns the Run
        to train into and whether training resumes from its last checkpoint.

        A directory that holds this very run (same config but for ``max_epochs``, whose raising extends a
        run; same data checksum) resumes from its last checkpoint when it has one. A different run there
        is refused unless ``overwrite``, which starts afresh; so is a folder that is not empty and holds no
        run. Starting afresh deletes the old checkpoints, curve, TensorBoard event files and derived files, never
        other files; either way the config and record are (re)written. The caller holds the directory's lock.
        """
        previous = target if isinstance(target, Run) else None
        directory = Path(target.directory if previous is not None else target)
        if previous is None and (directory / INFO_FILE).is_file():
            previous = cls.open(directory)
        if previous is None and not overwrite and any(p.name != LOCK_FILE for p in _entries(directory)):
            raise InputError(f"{directory}: is not empty and holds no pyro-lfads run (no {INFO_FILE}); choose "
                             "another directory or pass overwrite=True (which removes only the files a run writes)")
        same = previous is not None and previous.holds(config, info)
        if previous is not None and not same and not overwrite:
            raise InputError(f"{directory}: already holds a different run (other config or data); "
                             "choose another directory or pass overwrite=True")
        resume = same and (directory / LAST).exists() and not overwrite
        if not resume:
            for path in (directory / LAST, directory / BEST, directory / CURVE_FILE, *directory.glob(EVENT_FILES)):
                check_inside_run(path)  # never delete through a link out of the run
                path.unlink(missing_ok=True)
            remove_derived_files(directory)
            try:
                (directory / LAST).parent.rmdir()
            except OSError:  # absent, or holding files a run does not write
                pass
        return cls.create(directory, config, info), resume

    def holds(self, config: LFADSConfig, info: RunInfo) -> bool:
        """Whether this run is a fit of ``config`` (``max_epochs`` aside) on the data ``info`` describes."""
        return (self.config.replace(max_epochs=config.max_epochs) == config
                and self.info.data_sha256 == info.data_sha256)

    # --- paths ----------------------------------------------------------------------------
    def checkpoint_path(self, which: str = "best") -> Path:
        """RUN_DIR/checkpoints/best.pt (``which="best"``) or last.pt (``"last"``)."""
        return self.directory / (BEST if which == "best" else LAST)

    def session_file(self, name: str, session: int = 0) -> Path:
        """RUN_DIR/name for a single-session run; RUN_DIR/{stem}_session{k}{suffix} for session k of a
        stitched one."""
        self.session_info(session)
        name = Path(name)
        return self.directory / (name if self.info.sessions is None else f"{name.stem}_session{session}{name.suffix}")

    # --- sessions -------------------------------------------------------------------------
    @property
    def n_sessions(self) -> int:
        return len(self.info.session_infos())

    def session_info(self, session: int) -> RunInfo:
        """Session ``session``'s RunInfo; refuses one the run does not have."""
        sessions = self.info.session_infos()
        if not 0 <= session < len(sessions):
            raise InputError(f"session: {self.directory} has sessions 0 to {len(sessions) - 1}, got {session}")
        return sessions[session]

    # --- data -----------------------------------------------------------------------------
    def dataset(self, session: int = 0) -> LFADSDataset:
        """The data set (of session ``session``) the run was fitted on, read again from its file and checked
        unchanged (checksum) the first time, kept after."""
        if session not in self._datasets:
            info = self.session_info(session)
            if info.data_source.startswith("<"):
                raise InputError(f"{self.directory}: was fitted on in-memory arrays; pass the data set to the Python API")
            path = info.data_path(self.directory)
            dataset = load_dataset(path, support=data_support(self.config.likelihood))
            if dataset_sha256(dataset) != info.data_sha256:
                raise InputError(f"{path}: data changed since {self.directory} was fitted (checksum differs)")
            self._datasets[session] = dataset
        return self._datasets[session]

    def bin_ms(self, given: float | None = None, session: int = 0) -> float | None:
        """The bin width in ms for time axes and spikes/s: ``given`` where it is given, else the width
        run.json records for session ``session`` (from its data file); None when neither says. A
        ``given`` width that contradicts the recorded one is refused."""
        if given is not None and not (isinstance(given, (int, float)) and math.isfinite(given) and given > 0):
            raise InputError(f"bin_ms: must be a positive number of milliseconds, got {given!r}")
        recorded = self.session_info(session).bin_width_s
        recorded_ms = None if recorded is None else recorded * 1000.0
        if given is None or recorded_ms is None:
            return recorded_ms if given is None else float(given)
        if not math.isclose(given, recorded_ms, rel_tol=1e-6):
            raise InputError(f"bin_ms: {given:g} ms contradicts the bin width of {recorded_ms:g} ms recorded for "
                             f"{self.directory} (from its data file); leave bin_ms out to use the recorded width")
        return recorded_ms

    def sessions(self) -> list[LFADSDataset]:
        """Every session's data set (one for a single-session run), as :meth:`dataset` gives them."""
        return [self.dataset(session) for session in range(self.n_sessions)]

    def scored_data(self, dataset: LFADSDataset | None = None, session: int = 0) -> LFADSDataset:
        """What the run is scored on: ``dataset`` (default: session ``session``'s, :meth:`dataset`) cut to
        the run's bins."""
        return first_bins(dataset if dataset is not None else self.dataset(session), self.info.n_time)

    # --- checkpoints ----------------------------------------------------------------------
    def fitted(self, which: str = "best", device: str = "cpu"):
        """(model, guide) of checkpoint ``which`` ("best" or "last") in eval mode on ``device``, loaded
        the first time they are asked for."""
        key = which, str(device)
        if key not in self._fitted:
            model, guide = build_model_and_guide(self.config, self.info)
            path = self.checkpoint_path(which)
            state = load_checkpoint(path)
            load_weights(model, guide, state, path)
            self._loaded.setdefault(which, (file_sha256(path), int(state["epoch"])))
            self._fitted[key] = model.to(device).eval(), guide.to(device).eval()
        return self._fitted[key]

    # --- what derived files are made from --------------------------------------------------
    def source(self, data_sha256: str | None = None, session: int = 0) -> Source:
        """The record of a file made from the best checkpoint, as :meth:`fitted` loaded it, and the data of
        checksum ``data_sha256`` (default: session ``session``'s own)."""
        if "best" not in self._loaded:
            self.fitted("best")
        checkpoint_sha256, epoch = self._loaded["best"]
        return Source(checkpoint_sha256, self.session_info(session).data_sha256 if data_sha256 is None
                      else data_sha256, epoch)

    def best_sha256(self) -> str:
        """The sha256 of the best checkpoint file as it is now (computed again only when the file changed)."""
        path = self.checkpoint_path("best")
        try:
            status = path.stat()
        except FileNotFoundError:
            raise InputError(f"{path}: no checkpoint here; has this run been fitted?") from None
        identity = status.st_ino, status.st_size, status.st_mtime_ns
        if self._best_sha256 is None or self._best_sha256[0] != identity:
            self._best_sha256 = identity, file_sha256(path)
        return self._best_sha256[1]

    def is_current(self, source: Source | None, data_sha256: str | None = None, session: int = 0) -> bool:
        """Whether a derived file recording ``source`` was made from the run's best checkpoint as it is now
        and from the data of checksum ``data_sha256`` (default: session ``session``'s own)."""
        return source is not None and self.stale_reason(source, data_sha256, session) is None

    def check_source(self, path: Path, source: Source | None, rerun: str, data_sha256: str | None = None,
                     session: int = 0) -> None:
        """Refuse the derived file at ``path`` unless its record ``source`` is current (:meth:`is_current`);
        the message names ``rerun``, the call that makes the file again."""
        reason = ("records no checkpoint it was made from (an earlier pyro-lfads wrote it)" if source is None
                  else self.stale_reason(source, data_sha256, session))
        if reason is not None:
            raise InputError(f"{path}: {reason}; rerun {rerun} on {self.directory}")

    def stale_reason(self, source: Source, data_sha256: str | None = None, session: int = 0) -> str | None:
        """Why a file recording ``source`` is out of date, in words; None when it is current."""
        if source.checkpoint_sha256 != self.best_sha256():
            return f"was made from another checkpoint (epoch {source.epoch}) than the run's best"
        if source.data_sha256 != (self.session_info(session).data_sha256 if data_sha256 is None else data_sha256):
            return "was made from other data than the data scored here (checksum differs)"
        return None

    def training_curve(self) -> list[dict]:
        """The training curve's records, one dict per epoch (:func:`read_training_curve`)."""
        return read_training_curve(self.directory)


def _entries(directory: Path) -> list[Path]:
    """What ``directory`` holds; nothing when it does not exist."""
    try:
        return list(directory.iterdir())
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise InputError(f"{directory}: exists and is not a directory; choose another directory") from None


def load_fitted(run: Run | str | Path, which: str = "best", device: str = "cpu"):
    """(config, info, model, guide) of a fitted run, model and guide in eval mode on ``device``."""
    run = Run.open(run)
    return (run.config, run.info, *run.fitted(which, device))


def first_bins(dataset: LFADSDataset, n_time: int) -> LFADSDataset:
    """The data set cut to its first ``n_time`` bins (a run's ``time_bins``); itself when already so."""
    if dataset.valid.n_time == n_time:
        return dataset

    def cut(split: Split) -> Split:
        keep = slice(None), slice(0, n_time)
        return Split(split.encod_data[keep], split.recon_data[keep],
                     None if split.ext_input is None else split.ext_input[keep],
                     None if split.truth is None else split.truth[keep], split.inds)

    extras = {key: value[:, :n_time] if key.endswith(("_behavior", "_latents", "_inputs", "_target")) else value
              for key, value in dataset.extras.items()}
    return LFADSDataset(cut(dataset.train), cut(dataset.valid), dataset.conversion_factor, dataset.source, extras,
                        dataset.bin_width_s)
