"""A run directory: what was fitted, on what, and its checkpoints.

Layout of RUN_DIR:
    config.yaml            the LFADSConfig
    run.json               data source and checksum, data shapes, package versions
    checkpoints/last.pt    the latest complete epoch (resume from here)
    checkpoints/best.pt    the epoch with the lowest validation loss
    training_curve.jsonl   one JSON object per epoch
    posterior.h5           posterior averages (written by ``posterior``)
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyro
import torch

from pyro_lfads.version import __version__
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split, as_sessions, load_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.data.atomic_files import atomic_path

CONFIG_FILE, INFO_FILE, CURVE_FILE = "config.yaml", "run.json", "training_curve.jsonl"
LAST, BEST = "checkpoints/last.pt", "checkpoints/best.pt"


@dataclass
class RunInfo:
    """What a run was fitted on: enough to rebuild its model and guide.

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
        return cls(dataset.source, dataset_sha256(dataset), train.n_neurons, int(train.encod_data.shape[2]),
                   ext, n_time, versions)

    def session_infos(self) -> list["RunInfo"]:
        """One RunInfo per session: ``[self]`` for a single-session run."""
        return [self] if self.sessions is None else [RunInfo(**session) for session in self.sessions]

    def session_info(self, session: int, run_dir: str | Path) -> "RunInfo":
        """Session ``session``'s RunInfo; refuses one the run does not have."""
        sessions = self.session_infos()
        if not 0 <= session < len(sessions):
            raise InputError(f"--session: {run_dir} has sessions 0 to {len(sessions) - 1}, got {session}")
        return sessions[session]


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
    """A fresh (model, guide) pair for data of the shapes in ``info``."""
    from pyro_lfads.guides.lfads import LFADSGuide
    from pyro_lfads.models.lfads import LFADSModel

    sessions = info.session_infos()
    if len(sessions) == 1:
        model = LFADSModel(config, info.n_neurons, info.n_ext_inputs)
        return model, LFADSGuide(model, info.n_encod_neurons)
    model = LFADSModel(config, [s.n_neurons for s in sessions], info.n_ext_inputs)
    return model, LFADSGuide(model, [s.n_encod_neurons for s in sessions])


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; refuse anything else."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no checkpoint here; has this run been fitted?") from None
    except Exception as exc:  # torch raises many kinds for corrupt files
        raise InputError(f"{path}: not a readable checkpoint ({type(exc).__name__}); the file is corrupt or truncated") from None
    if not isinstance(state, dict) or not {"model", "guide", "epoch"} <= set(state):
        raise InputError(f"{path}: not a pyro-lfads checkpoint")
    return state


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


def write_run_files(run_dir: Path, config: LFADSConfig, info: RunInfo) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / CONFIG_FILE) as tmp:
        config.to_yaml(tmp)
    with atomic_path(run_dir / INFO_FILE) as tmp:
        tmp.write_text(json.dumps(asdict(info), indent=2))


def read_run(run_dir: str | Path) -> tuple[LFADSConfig, RunInfo]:
    """The config and RunInfo of an existing run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / INFO_FILE).is_file():
        raise InputError(f"{run_dir}: not a pyro-lfads run directory (no {INFO_FILE}); run 'pyro-lfads fit' first")
    config = LFADSConfig.from_yaml(run_dir / CONFIG_FILE)
    try:
        info = RunInfo(**json.loads((run_dir / INFO_FILE).read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise InputError(f"{run_dir / INFO_FILE}: unreadable run description ({exc})") from None
    return config, info


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


def same_run(run_dir: Path, config: LFADSConfig, info: RunInfo) -> bool | None:
    """None when ``run_dir`` holds no run; else whether it holds this config on this data.

    ``max_epochs`` does not count: raising it extends a run rather than making another.
    """
    if not (run_dir / INFO_FILE).is_file():
        return None
    old_config, old_info = read_run(run_dir)
    return (old_config.replace(max_epochs=config.max_epochs) == config
            and old_info.data_sha256 == info.data_sha256)


def load_fitted(run_dir: str | Path, which: str = "best", device: str = "cpu"):
    """(config, info, model, guide) of a fitted run, in eval mode on ``device``."""
    run_dir = Path(run_dir)
    config, info = read_run(run_dir)
    model, guide = build_model_and_guide(config, info)
    path = run_dir / (BEST if which == "best" else LAST)
    load_weights(model, guide, load_checkpoint(path), path)
    model.to(device).eval()
    guide.to(device).eval()
    return config, info, model, guide


def run_dataset(run_dir: str | Path, session: int = 0) -> LFADSDataset:
    """The data set (of session ``session``) a run was fitted on, read again from its file and checked unchanged."""
    info = read_run(run_dir)[1].session_info(session, run_dir)
    if info.data_source.startswith("<"):
        raise InputError(f"{run_dir}: was fitted on in-memory arrays; pass the data set to the Python API")
    dataset = load_dataset(info.data_source, support="real")
    if dataset_sha256(dataset) != info.data_sha256:
        raise InputError(f"{info.data_source}: data changed since {run_dir} was fitted (checksum differs)")
    return dataset


def session_file(run_dir: str | Path, name: str, session: int = 0) -> Path:
    """RUN_DIR/name for a single-session run; RUN_DIR/{stem}_session{k}{suffix} for session k of a stitched one."""
    run_dir, name = Path(run_dir), Path(name)
    info = read_run(run_dir)[1]
    info.session_info(session, run_dir)
    return run_dir / (name if info.sessions is None else f"{name.stem}_session{session}{name.suffix}")


def require_single_session(run_dir: str | Path, what: str) -> None:
    """Refuse a stitched run in a command that covers single-session runs only."""
    _, info = read_run(run_dir)
    if info.sessions is not None:
        raise InputError(f"{run_dir}: is a stitched run of {len(info.sessions)} sessions; '{what}' covers "
                         "single-session runs (use 'posterior' and 'evaluate --session K' for each session)")


def run_sessions(run_dir: str | Path) -> list[LFADSDataset]:
    """Every session's data set of a run (one for a single-session run), read again and checked."""
    _, info = read_run(run_dir)
    return [run_dataset(run_dir, session) for session in range(len(info.session_infos()))]


def run_bins(run_dir: str | Path, dataset: LFADSDataset | None = None, session: int = 0) -> LFADSDataset:
    """What a run is scored on: ``dataset`` (default: session ``session``'s, read again by
    :func:`run_dataset`) cut to the run's bins."""
    _, info = read_run(run_dir)
    return first_bins(dataset if dataset is not None else run_dataset(run_dir, session), info.n_time)


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
    return LFADSDataset(cut(dataset.train), cut(dataset.valid), dataset.conversion_factor, dataset.source, extras)
