"""Bad input on the command line: every case exits with status 2 and one line on stderr, never a traceback.

``CASES`` is the table quoted in the issue notes: a name, and a function that
prepares files in a folder and returns the ``pyro-lfads`` arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

try:
    import resource
except ImportError:  # not POSIX
    resource = None

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pyro_lfads.cli import main
from pyro_lfads.data import dataset_from_arrays, save_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

TINY = "gen_dim: 8\nfac_dim: 2\nic_enc_dim: 4\nco_dim: 0\nbatch_size: 8\nmax_epochs: 1\n"


def _good(folder: Path) -> Path:
    path = folder / "good.h5"
    save_dataset(make_lorenz_dataset(seed=0, n_conditions=4, trials_per_condition=5, n_neurons=6, n_time=12), path)
    return path


def _with(folder: Path, **changes) -> Path:
    """The good file with some keys replaced (None deletes the key)."""
    path = folder / "bad.h5"
    with h5py.File(_good(folder), "r") as src, h5py.File(path, "w") as dst:
        for key in src:
            if key in changes:
                continue
            dst.create_dataset(key, data=src[key][()])
        for key, value in changes.items():
            if value is not None:
                dst.create_dataset(key, data=value)
    return path


def _fitted(folder: Path) -> Path:
    (folder / "tiny.yaml").write_text(TINY)
    assert main(["fit", str(_good(folder)), "--out", str(folder / "run"), "--config", str(folder / "tiny.yaml"),
                 "--quiet"]) == 0
    return folder / "run"


def _spikes(folder: Path) -> np.ndarray:
    with h5py.File(_good(folder), "r") as h5:
        return h5["train_encod_data"][()]


CASES = {
    "missing file": lambda d: ["fit", str(d / "none.h5"), "--out", str(d / "r")],
    "not an HDF5 file": lambda d: ["fit", str(_write(d / "x.h5", b"hello")), "--out", str(d / "r")],
    "unknown suffix": lambda d: ["fit", str(_write(d / "x.csv", b"1,2")), "--out", str(d / "r")],
    "truncated file": lambda d: ["fit", str(_truncate(_good(d))), "--out", str(d / "r")],
    "missing key": lambda d: ["fit", str(_with(d, valid_encod_data=None, valid_recon_data=None)), "--out",
                              str(d / "r")],
    "NaN in counts": lambda d: ["fit", str(_with(d, train_encod_data=_set(_spikes(d), np.nan))), "--out", str(d / "r")],
    "Inf in counts": lambda d: ["fit", str(_with(d, train_encod_data=_set(_spikes(d), np.inf))), "--out", str(d / "r")],
    "negative counts": lambda d: ["fit", str(_with(d, train_encod_data=_set(_spikes(d), -1.0))), "--out",
                                  str(d / "r")],
    "fractional counts": lambda d: ["fit", str(_with(d, train_encod_data=_set(_spikes(d), 0.5))), "--out",
                                    str(d / "r")],
    "huge counts": lambda d: ["fit", str(_with(d, train_encod_data=_set(_spikes(d), 1e40))), "--out", str(d / "r")],
    "text instead of numbers": lambda d: ["fit", str(_with(d, train_encod_data=np.array([b"a", b"b"]))), "--out",
                                          str(d / "r")],
    "2-D spikes": lambda d: ["fit", str(_with(d, train_encod_data=_spikes(d)[0])), "--out", str(d / "r")],
    "empty trials": lambda d: ["fit", str(_with(d, train_encod_data=_spikes(d)[:0], train_recon_data=_spikes(d)[:0])),
                               "--out", str(d / "r")],
    "neurons differ between splits": lambda d: ["fit", str(_with(d, valid_encod_data=np.zeros((4, 12, 5)),
                                                                 valid_recon_data=np.zeros((4, 12, 5)))),
                                                "--out", str(d / "r")],
    "unknown config key": lambda d: ["fit", str(_good(d)), "--out", str(d / "r"), "--config",
                                     str(_write(d / "c.yaml", b"gen_size: 3\n"))],
    "impossible config size": lambda d: ["fit", str(_good(d)), "--out", str(d / "r"), "--config",
                                         str(_write(d / "c.yaml", b"gen_dim: -4\n"))],
    "config not YAML": lambda d: ["fit", str(_good(d)), "--out", str(d / "r"), "--config",
                                  str(_write(d / "c.yaml", b"gen_dim: [\n"))],
    "unknown likelihood": lambda d: ["fit", str(_good(d)), "--out", str(d / "r"), "--likelihood", "cauchy"],
    "device without CUDA": lambda d: ["fit", str(_good(d)), "--out", str(d / "r"), "--device", "cuda:3"],
    "unknown device": lambda d: ["fit", str(_good(d)), "--out", str(d / "r"), "--device", "tpu"],
    "glob matching nothing": lambda d: ["fit", str(d / "none_*.h5"), "--out", str(d / "r")],
    "another run in --out": lambda d: ["fit", str(_good(d)), "--out", str(_fitted(d)), "--max-epochs", "1"],
    "resume a folder that is no run": lambda d: ["fit", "--resume", str(d)],
    "corrupt checkpoint": lambda d: ["fit", "--resume", str(_corrupt(_fitted(d), "checkpoints/last.pt")),
                                     "--max-epochs", "2"],
    "truncated best checkpoint": lambda d: ["posterior", str(_truncate_in(_fitted(d), "checkpoints/best.pt"))],
    "data changed since the fit": lambda d: ["posterior", str(_change_data(_fitted(d)))],
    "checkpoint of another config": lambda d: ["posterior", str(_foreign_checkpoint(_fitted(d)))],
    "evaluate before posterior": lambda d: ["evaluate", str(_fitted(d))],
    "session out of range": lambda d: ["evaluate", str(_fitted(d)), "--session", "4"],
    "samples below 1": lambda d: ["posterior", str(_fitted(d)), "--samples", "0"],
    "learning rate 1000": lambda d: _fit_with(d, "learning_rate: 1000\n"),
    "learning rate 10": lambda d: _fit_with(d, "learning_rate: 10\n"),
    "learning rate .inf": lambda d: _fit_with(d, "learning_rate: .inf\n"),
    "learning rate 1.0e+300": lambda d: _fit_with(d, "learning_rate: 1.0e+300\n"),
    "ic_prior_var 1.0e-300": lambda d: _fit_with(d, "ic_prior_var: 1.0e-300\n"),
    "seed 2**64": lambda d: _fit_with(d, f"seed: {2**64}\n"),
    "lr_min at learning_rate": lambda d: _fit_with(d, "lr_min: 0.01\n"),
    "--out an existing file": lambda d: ["fit", str(_good(d)), "--out", str(_write(d / "file", b"x"))],
    "1-D train_behavior": lambda d: ["fit", str(_with(d, train_behavior=np.zeros(20))), "--out", str(d / "r")],
    "train_conditions of the wrong length": lambda d: ["fit", str(_with(d, train_conditions=np.arange(3))), "--out",
                                                       str(d / "r")],
    "npz holding an object array": lambda d: ["fit", str(_object_npz(d)), "--out", str(d / "r")],
}


def _fit_with(folder: Path, config_lines: str) -> list[str]:
    (folder / "c.yaml").write_text(TINY + config_lines)
    return ["fit", str(_good(folder)), "--out", str(folder / "r"), "--config", str(folder / "c.yaml")]


def _object_npz(folder: Path) -> Path:
    with h5py.File(_good(folder), "r") as h5:
        arrays = {key: h5[key][()] for key in h5}
    arrays["train_encod_data"] = np.array([1, "a", None], dtype=object)
    np.savez(folder / "objects.npz", **arrays)
    return folder / "objects.npz"


def _write(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    return path


def _set(array: np.ndarray, value: float) -> np.ndarray:
    array = array.astype(np.float64)
    array[0, 0, 0] = value
    return array


def _truncate(path: Path) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])
    return path


def _truncate_in(run: Path, name: str) -> Path:
    _truncate(run / name)
    return run


def _corrupt(run: Path, name: str) -> Path:
    (run / name).write_bytes(b"not a checkpoint")
    return run


def _foreign_checkpoint(run: Path) -> Path:
    """The run with the best checkpoint of a fit with another generator size."""
    other = run.parent / "other"
    (run.parent / "other.yaml").write_text(TINY.replace("gen_dim: 8", "gen_dim: 12"))
    assert main(["fit", str(run.parent / "good.h5"), "--out", str(other), "--config", str(run.parent / "other.yaml"),
                 "--quiet"]) == 0
    (run / "checkpoints" / "best.pt").write_bytes((other / "checkpoints" / "best.pt").read_bytes())
    return run


def _change_data(run: Path) -> Path:
    path = run.parent / "good.h5"
    with h5py.File(path, "r+") as h5:
        data = h5["train_encod_data"]
        data[0, 0, 0] = data[0, 0, 0] + 1
    return run


def run_cli(argv: list[str]) -> int:
    """main(argv)'s exit status; argparse's own flag errors exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_line_and_status_2(name, tmp_path, capsys):
    argv = CASES[name](tmp_path)
    capsys.readouterr()
    assert run_cli(argv) == 2, name
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and lines[0].startswith("pyro-lfads") and ": error: " in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing written


@pytest.mark.parametrize("name", ["NaN in counts", "corrupt checkpoint", "unknown config key"])
@pytest.mark.slow
def test_the_installed_command_prints_no_traceback(name, tmp_path):
    argv = CASES[name](tmp_path)
    result = subprocess.run([sys.executable, "-m", "pyro_lfads.cli", *argv], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.startswith("pyro-lfads: error: ")


_VALUES = st.sampled_from([0.0, 1.0, 3.0, 0.5, -1.0, np.nan, np.inf, 1e40])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=arrays(np.float64, st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 3)), elements=_VALUES),
       valid=arrays(np.float64, st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 3)), elements=_VALUES),
       ndim=st.sampled_from([3, 3, 3, 2, 4]), dtype=st.sampled_from(["float64", "float32", "int64", "bool", "complex"]))
def test_arrays_given_to_the_api_are_accepted_valid_or_refused_in_one_line(train, valid, ndim, dtype):
    if ndim != 3:
        train = (train[..., None] if ndim > 3 else
                 train.reshape(train.shape[0], train.shape[1] * train.shape[2]))
    with np.errstate(invalid="ignore", over="ignore"):
        train = train.astype(dtype)
    try:
        dataset = dataset_from_arrays(train, valid)
    except InputError as error:
        assert "\n" not in str(error) and str(error)
        return
    for split in (dataset.train, dataset.valid):
        assert split.encod_data.ndim == 3 and split.n_trials > 0 and split.n_time > 0 and split.n_neurons > 0
        assert np.isfinite(split.encod_data).all() and (split.encod_data >= 0).all()
        assert np.array_equal(split.encod_data, np.round(split.encod_data))


@pytest.mark.parametrize("name,words", [
    ("learning rate 10", "learning_rate: must be at most 1.0"),
    ("ic_prior_var 1.0e-300", "ic_prior_var: 1e-300 is outside the range of float32"),
    ("lr_min at learning_rate", "lr_min: must be below learning_rate"),
    ("--out an existing file", "is a file, not a folder"),
    ("1-D train_behavior", "bad.h5: train_behavior: must be 3-D"),
    ("train_conditions of the wrong length", "bad.h5: train_conditions: must be 1-D with one condition label"),
    ("npz holding an object array", "objects.npz: train_encod_data: holds an object array"),
])
def test_the_line_says_what_is_wrong(name, words, tmp_path, capsys):
    assert run_cli(CASES[name](tmp_path)) == 2
    assert words in capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pyro-lfads: error: ") and "Traceback" not in err, err
    return lines[0]


def test_a_write_refused_by_the_system_is_one_line_and_leaves_no_file(tmp_path, capsys, monkeypatch):
    """Works as root too: the refusal is injected where every whole-file write goes through."""
    from contextlib import contextmanager

    from pyro_lfads.data import atomic_files

    run = _fitted(tmp_path)
    capsys.readouterr()

    @contextmanager
    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))
        yield
    monkeypatch.setattr(atomic_files, "atomic_path", refused)
    assert main(["posterior", str(run), "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "posterior.h5: Permission denied; check the permissions" in line
    assert not (run / "posterior.h5").exists() and not list(run.glob(".*.tmp"))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores file permissions, so a read-only folder cannot be made for root")
@pytest.mark.parametrize("argv", [["posterior"], ["fit", "--resume", "--max-epochs", "2"]])
def test_a_read_only_run_directory_is_one_line(argv, tmp_path, capsys):
    run = _fitted(tmp_path)
    capsys.readouterr()
    run.chmod(0o555)
    try:
        assert main([*argv[:2 if argv[0] == "fit" else 1], str(run), *argv[2:], "--quiet"]) == 2
    finally:
        run.chmod(0o755)
    assert "Permission denied" in _one_error_line(capsys.readouterr().err)


def _with_file_size_limit(limit_bytes: int):
    def lower():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return lower


@pytest.mark.slow
@pytest.mark.skipif(resource is None, reason="needs the resource module (POSIX)")
@pytest.mark.parametrize("command", ["fit", "posterior", "diagnose"])
def test_a_full_disk_is_one_line_exit_2_and_nothing_half_written(command, tmp_path):
    """The disk fills: a file-size limit makes writes fail with EFBIG (Python ignores SIGXFSZ)."""
    run = _fitted(tmp_path) if command != "fit" else tmp_path / "full"
    argv = {"posterior": ["posterior", str(run)],
            "diagnose": ["diagnose", str(run), "--samples", "2", "--importance-samples", "40"],
            "fit": ["fit", str(_good(tmp_path)), "--out", str(run), "--config", str(tmp_path / "tiny.yaml")]}[command]
    (tmp_path / "tiny.yaml").write_text(TINY)
    result = subprocess.run([sys.executable, "-m", "pyro_lfads.cli", *argv, "--quiet"], capture_output=True,
                            text=True, preexec_fn=_with_file_size_limit(20_000))
    assert result.returncode == 2, result.stderr  # not a crash (a signal gives a negative status)
    # the tiny model's predictive checks may warn first (NaN slices); the fault itself is one line
    errors = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("pyro-lfads: warning:"))
    assert "File too large" in _one_error_line(errors)
    assert not list(run.rglob(".*.tmp")) and not (run / "posterior.h5").exists()
    assert not (run / "inference_data.nc").exists()
    if command == "fit":
        assert not (run / "checkpoints" / "last.pt").exists()
        assert all(line.endswith("}") for line in (run / "training_curve.jsonl").read_text().splitlines())


def test_warnings_are_one_line_without_the_source_file(tmp_path, capsys):
    path = _with(tmp_path)
    with h5py.File(path, "r+") as h5:
        h5.create_group("train_labels")  # an extra that is not an array: skipped with a warning
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert main(["fit", str(path), "--out", str(tmp_path / "r"), "--config", str(tmp_path / "tiny.yaml"),
                 "--quiet"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [f"pyro-lfads: warning: {path}: train_labels: skipped: is an HDF5 Group, not an array"]


def test_evaluate_skips_a_baseline_that_cannot_run_with_a_note(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "one_neuron.h5"
    save_dataset(dataset_from_arrays(rng.poisson(0.5, (8, 10, 1)).astype(float),
                                     rng.poisson(0.5, (4, 10, 1)).astype(float)), path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = str(tmp_path / "r")
    assert main(["fit", str(path), "--out", run, "--config", str(tmp_path / "tiny.yaml"), "--quiet"]) == 0
    assert main(["posterior", run, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", run, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "heldin_bps" in result["smoothing"]
    assert result["gpfa"] == {"skipped": "GPFA's smallest latent dimension, 2, needs at least 2 held-in neurons, "
                                         "the data have 1"}
