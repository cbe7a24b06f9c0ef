"""The examples run end to end on tiny settings."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
def test_fit_lorenz_example_runs(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "fit_lorenz.py"), "--out", str(tmp_path),
                             "--max-epochs", "2", "--conditions", "4", "--samples", "2"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    figures = json.loads(text[text.index("{"): text.rindex("}") + 1])
    assert {"rate_r2", "bits_per_spike"} <= set(figures["lfads"]) and "rate_r2" in figures["smoothing"]
    assert (tmp_path / "rates.png").stat().st_size > 10_000


@pytest.mark.slow
def test_custom_likelihood_example_runs(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "custom_likelihood.py"), "--out", str(tmp_path),
                             "--max-epochs", "2", "--conditions", "4", "--compare", "--cli"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    figures = json.loads(text[text.index("{"): text.rindex("}") + 1])
    assert figures["studentt"]["lfads"]["likelihood"] == "studentt" and "rate_r2" in figures["studentt"]["lfads"]
    assert (tmp_path / "studentt" / "posterior.h5").is_file()
    # the same model through the command line, named where it lives
    assert figures["studentt_cli"]["lfads"]["likelihood"] == "examples.custom_likelihood:StudentTLikelihood"
    assert (tmp_path / "studentt_cli" / "run" / "posterior.h5").is_file()


@pytest.mark.slow
def test_inferred_inputs_example_runs(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "inferred_inputs.py"), "--out", str(tmp_path),
                             "--epochs", "2", "--conditions", "4", "--samples", "2"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    # a smoke test: 2 epochs fix no range for these figures (test_metrics checks input_r2 by hand)
    assert figures["pulse_median_abs_error_ms"] >= 0 and math.isfinite(figures["input_r2"])
    for name in ("pulses.png", "integrate_to_bound.png"):
        assert (tmp_path / name).stat().st_size > 10_000


@pytest.mark.slow
def test_streaming_replay_example_runs(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "streaming_replay.py"), "--out", str(tmp_path),
                             "--epochs", "2", "--kl-ramp-steps", "10", "--conditions", "4", "--trials", "3"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["trials"] == 3 and 0 < figures["median_ms"] <= figures["p99_ms"]
    assert math.isfinite(figures["online_rate_r2"]) and math.isfinite(figures["offline_rate_r2"])  # smoke test
    assert (tmp_path / "replay.png").stat().st_size > 10_000
