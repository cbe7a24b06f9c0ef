"""``fit --likelihood package.module:ClassName``: recorded in config.yaml, imported again by every later command
in a new process; a spec that cannot be imported is one line and exit 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pyro_lfads.cli import main
from pyro_lfads.data import save_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

REPOSITORY = Path(__file__).resolve().parents[1]
SPEC = "examples.custom_likelihood:StudentTLikelihood"
TINY_YAML = ("gen_dim: 8\nfac_dim: 3\nic_enc_dim: 8\nco_dim: 0\nbatch_size: 8\nkl_ramp_steps: 4\n"
             "posterior_samples: 3\n")


def command() -> list[str]:
    """The installed ``pyro-lfads`` script (which does not put the working directory on sys.path itself)."""
    script = Path(sys.executable).with_name("pyro-lfads")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pyro_lfads.cli"]


def run_cli(*args, cwd: Path):
    result = subprocess.run(command() + [str(arg) for arg in args], capture_output=True, text=True, cwd=cwd)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.slow
def test_a_run_fitted_with_a_class_of_ones_own_is_read_by_new_processes(tmp_path):
    data, config, run = tmp_path / "real.h5", tmp_path / "tiny.yaml", tmp_path / "run"
    save_dataset(make_lorenz_dataset(seed=1, n_conditions=6, trials_per_condition=5, n_neurons=8, n_time=20,
                                     likelihood="gaussian"), data)
    config.write_text(TINY_YAML)
    code, out, err = run_cli("fit", data, "--out", run, "--config", config, "--likelihood", SPEC,
                             "--max-epochs", "2", "--quiet", cwd=REPOSITORY)
    assert code == 0, err
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert [line for line in out.splitlines() if line.startswith("device:")] == \
        [f"device: {device}" + ("" if device == "cuda" else " (--device auto, no CUDA device found)")]
    assert yaml.safe_load((run / "config.yaml").read_text())["likelihood"] == SPEC
    for args in (["posterior", run, "--quiet"], ["report", run, "--quiet"]):
        code, _, err = run_cli(*args, cwd=REPOSITORY)
        assert code == 0, (args[0], err)
    code, out, err = run_cli("evaluate", run, "--json", cwd=REPOSITORY)
    assert code == 0, err
    figures = json.loads(out)["lfads"]
    assert figures["likelihood"] == SPEC and math.isfinite(figures["rate_r2"])
    assert (run / "report" / "index.html").is_file() and (run / "diagnostics.json").is_file()
    # where the module cannot be imported, the run is refused in one line that names it
    code, _, err = run_cli("evaluate", run, cwd=tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "config.yaml: likelihood: cannot import module 'examples.custom_likelihood'" in err


@pytest.mark.parametrize("spec,words", [
    ("no_such_module_for_lfads:Noise", "--likelihood: cannot import module 'no_such_module_for_lfads'"),
    ("pyro_lfads.models.likelihoods:NoSuchLikelihood", "has no class 'NoSuchLikelihood'"),
    ("pyro_lfads.models.likelihoods:Observation", "Observation needs a 'support'"),
    ("no spaces.allowed:Noise", "is not of the form package.module:ClassName"),
    ("studentish", "nor a class of your own as package.module:ClassName"),
])
def test_a_bad_likelihood_is_one_line_and_exit_2(spec, words, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(tmp_path / "data.h5"), "--out", str(out), "--likelihood", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyro-lfads: error: --likelihood: ") and len(err.strip().splitlines()) == 1, err
    assert words in err and not out.exists()


def test_a_module_that_fails_to_import_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_noise_model.py").write_text("raise RuntimeError('half-written\\nmodule')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["fit", str(tmp_path / "data.h5"), "--out", str(tmp_path / "run"),
                 "--likelihood", "broken_noise_model:Noise"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "(RuntimeError: half-written module)" in err, err
