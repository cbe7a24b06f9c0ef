"""The pyro-lfads command: the whole path on tiny data, and one-line errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pytest

from pyro_lfads.cli import main
from pyro_lfads.data import save_dataset


def run_cli(*args):
    """Run the installed command in a fresh process, outside the repository; (exit code, stdout, stderr)."""
    result = subprocess.run([sys.executable, "-m", "pyro_lfads.cli", *map(str, args)],
                            capture_output=True, text=True, cwd=tempfile.gettempdir())
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def tiny_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("gen_dim: 16\nfac_dim: 4\nic_enc_dim: 8\nci_enc_dim: 8\ncon_dim: 8\nco_dim: 1\n"
                    "batch_size: 32\nkl_ramp_steps: 10\nposterior_samples: 3\n")
    return path


@pytest.mark.slow
def test_fit_posterior_evaluate_on_tiny_data(tiny_lorenz, tiny_yaml, tmp_path, capsys):
    data = tmp_path / "tiny.h5"
    save_dataset(tiny_lorenz, data)
    run = tmp_path / "run"
    assert main(["fit", str(data), "--out", str(run), "--config", str(tiny_yaml), "--max-epochs", "2",
                 "--quiet"]) == 0
    assert main(["posterior", str(run), "--samples", "3", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--baselines", "smoothing"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"lfads", "smoothing", "in_sample"}
    assert result["in_sample"] == ["elbo_per_trial", "bits_per_spike", "poisson_nll_per_trial", "heldin_bps"]
    for key in ("rate_r2", "rate_r2_per_neuron", "bits_per_spike", "psth_r2"):
        assert np.isfinite(result["lfads"][key]), key
    assert np.isfinite(result["smoothing"]["rate_r2"])
    with h5py.File(run / "posterior.h5") as h5:
        n_valid, n_time, n_neurons = tiny_lorenz.valid.recon_data.shape
        assert h5["valid_output_params"].shape == (n_valid, n_time, n_neurons)
        assert h5["train_factors"].shape == (tiny_lorenz.train.n_trials, n_time, 4)
        assert h5["valid_co_means"].shape == h5["valid_co_stds"].shape == (n_valid, n_time, 1)
        assert h5["valid_ic_mean"].shape == h5["valid_ic_std"].shape == (n_valid, 16)
        assert h5["valid_gen_states"].shape == (n_valid, n_time, 16)
        assert (h5["valid_output_params"][()] > 0).all() and (h5["valid_co_stds"][()] >= 0).all()


def test_synth_lorenz_writes_the_paper_sized_set(tmp_path):
    out = tmp_path / "lorenz.h5"
    assert main(["synth", "lorenz", "--out", str(out), "--seed", "4"]) == 0
    with h5py.File(out) as h5:
        assert h5["train_recon_data"].shape == (1040, 100, 30)
        assert h5["valid_truth"].shape == (260, 100, 30)


def _edited_copy(source, target, edits):
    """Copy an HDF5 file, passing the keys in ``edits`` through their function (None drops the key)."""
    with h5py.File(source) as src, h5py.File(target, "w") as dst:
        for key in src:
            if key not in edits:
                dst[key] = src[key][()]
            elif edits[key] is not None:
                dst[key] = edits[key](src[key][()])


def _bad_files(tmp_path, tiny_lorenz):
    good = tmp_path / "good.h5"
    save_dataset(tiny_lorenz, good)
    cases = {}
    missing = tmp_path / "missing_key.h5"
    with h5py.File(missing, "w") as h5:
        h5["train_encod_data"] = tiny_lorenz.train.encod_data
    cases["missing key"] = (missing, "valid")
    for name, edit in {
        "nan": lambda x: np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x),
        "negative": lambda x: x - 5,
        "fractional": lambda x: x + 0.5,
    }.items():
        path = tmp_path / f"{name}.h5"
        _edited_copy(good, path, {"train_recon_data": edit})
        cases[name] = (path, "train_recon_data")
    mismatched = tmp_path / "mismatch.h5"
    first_five = lambda x: x[:, :, :5]  # noqa: E731
    _edited_copy(good, mismatched, {"valid_recon_data": first_five, "valid_encod_data": first_five,
                                    "valid_truth": None})
    cases["neuron counts differ"] = (mismatched, "neurons")
    empty = tmp_path / "empty.h5"
    with h5py.File(good) as src, h5py.File(empty, "w") as dst:
        for key in ("train_encod_data", "train_recon_data"):
            dst[key] = src[key][()]
        dst["valid_encod_data"] = np.zeros((0, 40, 20), "f4")
        dst["valid_recon_data"] = np.zeros((0, 40, 20), "f4")
    cases["empty split"] = (empty, "empty")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    cases["not hdf5"] = (text, "HDF5")
    return cases


@pytest.mark.slow
def test_bad_data_files_give_one_line_errors_and_write_nothing(tmp_path, tiny_lorenz):
    for problem, (path, expected) in _bad_files(tmp_path, tiny_lorenz).items():
        out = tmp_path / f"run_{problem.replace(' ', '_')}"
        code, stdout, stderr = run_cli("fit", path, "--out", out, "--quiet")
        assert code == 2, (problem, stderr)
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, (problem, stderr)
        assert str(path.name) in stderr and expected in stderr, (problem, stderr)
        assert not out.exists(), problem


@pytest.fixture
def lorenz_file(tmp_path, tiny_lorenz):
    path = tmp_path / "d.h5"
    save_dataset(tiny_lorenz, path)
    return path


def fit_with_config(data, tmp_path, yaml_text):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    return run_cli("fit", data, "--out", tmp_path / "run", "--config", config)


@pytest.mark.slow
def test_too_few_time_bins_for_the_config(tmp_path, lorenz_file):
    code, _, stderr = fit_with_config(lorenz_file, tmp_path, "time_bins: 500\n")
    assert code == 2 and "fewer" in stderr and "500" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_bad_config_and_flags(tmp_path, lorenz_file):
    data = lorenz_file
    code, _, stderr = fit_with_config(data, tmp_path, "gen_dimm: 3\n")
    assert code == 2 and "gen_dimm" in stderr and "valid keys" in stderr
    code, _, stderr = run_cli("fit", data, "--out", tmp_path / "run", "--max-epochs", "0")
    assert code == 2 and "max-epochs" in stderr
    code, _, stderr = run_cli("fit", data, "--out", tmp_path / "run", "--device", "cuda:7")
    assert code == 2 and "device" in stderr and "Traceback" not in stderr
    code, _, stderr = run_cli("posterior", tmp_path / "nowhere")
    assert code == 2 and "not a pyro-lfads run directory" in stderr


@pytest.mark.slow
def test_a_different_run_in_out_is_refused_without_overwrite(tmp_path, lorenz_file, tiny_yaml):
    data = lorenz_file
    run = tmp_path / "run"
    assert run_cli("fit", data, "--out", run, "--config", tiny_yaml, "--max-epochs", "1", "--quiet")[0] == 0
    code, _, stderr = run_cli("fit", data, "--out", run, "--max-epochs", "1", "--quiet")
    assert code == 2 and "different run" in stderr and "--overwrite" in stderr


@pytest.mark.slow
def test_help_documents_every_command():
    code, stdout, _ = run_cli("--help")
    assert code == 0
    for command in ("synth", "from-nwb", "fit", "posterior", "evaluate", "nlb-submission", "decode", "demo"):
        assert command in stdout
    code, stdout, _ = run_cli("fit", "--help")
    for flag in ("--out", "--config", "--max-epochs", "--device", "--seed", "--overwrite"):
        assert flag in stdout


def test_library_errors_are_worded_as_the_commands_flags():
    from pyro_lfads.cli.commands import in_flags

    assert in_flags("source: 'spikes' is not one of rates, factors", "decode") == \
        "--from: 'spikes' is not one of rates, factors"
    assert in_flags("samples: must be >= 1, got 0", "posterior") == "--samples: must be >= 1, got 0"
    assert in_flags("device: 'tpu' is not one of auto, cpu, cuda, cuda:N", "report").startswith("--device: 'tpu'")
    assert in_flags("run: already holds a different run; choose another directory or pass overwrite=True",
                    "fit").endswith("pass --overwrite")
    assert in_flags("objective 'elbo': the config turns on sample validation; set sv_rate: 0 or use objective 'sv'",
                    "tune") == "--objective elbo: the config turns on sample validation; set sv_rate: 0 or use --objective sv"
    assert in_flags("epochs_per_generation: must be >= 1, got 0", "tune") == "--epochs-per-generation: must be >= 1, got 0"
    # only where the command has the flag, and only the argument's own words
    assert in_flags("session: run has sessions 0 to 1, got 2", "diagnose") == "session: run has sessions 0 to 1, got 2"
    assert in_flags("bin_ms: 5 ms contradicts the bin width of 10 ms recorded for run; leave bin_ms out to use the "
                    "recorded width", "report") == ("--bin-ms: 5 ms contradicts the bin width of 10 ms recorded for "
                                                    "run; leave --bin-ms out to use the recorded width")
    assert in_flags("data.h5: train_session: missing", "evaluate") == "data.h5: train_session: missing"


def test_device_auto_is_the_default_and_takes_cuda_only_where_there_is_one(monkeypatch):
    import torch

    from pyro_lfads.cli.parser import build_parser
    from pyro_lfads.fitting.devices import resolve_device

    parser = build_parser()
    for argv in (["fit", "d.h5", "--out", "r"], ["posterior", "r"], ["diagnose", "r"], ["report", "r"], ["demo"]):
        assert parser.parse_args(argv).device == "auto", argv[0]
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")  # cpu on a CPU machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"


def test_the_device_line_says_why():
    from pyro_lfads.cli.commands import device_line

    assert device_line("auto", "cpu") == "device: cpu (--device auto, no CUDA device found)"
    assert device_line("cpu", "cpu") == "device: cpu"


@pytest.mark.parametrize("command", ["fit", "posterior", "report", "demo"])
def test_an_explicit_cuda_without_cuda_is_one_line(command, monkeypatch, tmp_path, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = {"fit": ["fit", str(tmp_path / "d.h5"), "--out", str(tmp_path / "run")], "demo": ["demo", "--out",
            str(tmp_path / "demo")]}.get(command, [command, str(tmp_path / "run")])
    assert main(argv + ["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("pyro-lfads: error: --device: 'cuda' requested but CUDA is not available on this "
                           "machine; use cpu, or auto to take CUDA only where there is one")
    assert not any(tmp_path.iterdir())
