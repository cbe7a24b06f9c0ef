"""Every step of examples/tutorial runs with --tiny, prints its figures and draws its PNGs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "examples" / "tutorial"


def in_unit(value) -> bool:
    return -math.inf < value <= 1


#: step script -> (figure files, {JSON key: check of its value})
STEPS = {
    "01_lorenz_and_smoothing.py": (["smoothing.png"], {
        "smoothing_rate_r2": in_unit, "best_sigma_rate_r2": in_unit, "condition_average_rate_r2": in_unit,
        "sigma_bins": lambda v: v > 0, "mean_rate_hz": lambda v: 0 < v < 200}),
    "02_initial_condition_only.py": (["initial_condition.png"], {
        "tutorial": lambda v: in_unit(v["rate_r2"]) and v["valid_loss"] > 0,
        "full": lambda v: in_unit(v["rate_r2"]) and v["valid_loss"] > 0}),
    "03_controller_and_inputs.py": (["controller.png", "pulses.png"], {
        "rate_r2_with_controller": in_unit, "rate_r2_without_controller": in_unit,
        "pulse_median_abs_error_ms": lambda v: 0 <= v <= 400, "pulse_fraction_within_50ms": lambda v: 0 <= v <= 1,
        "learned_ar_tau_bins": lambda v: v > 0, "learned_ar_var": lambda v: v > 0}),
    "04_kl_annealing.py": (["kl_curves.png", "kl_rates.png"], {
        name: lambda v: (in_unit(v["rate_r2"]) and in_unit(v["rate_r2_last"]) and v["valid_kl"] >= 0
                         and v["best_epoch"] >= 1 and v["g0_mean_spread"] >= 0)
        for name in ("ramp", "no_ramp", "KL_x_100", "KL_x_001", "inputs_KL_u_x_001_no_CD")}),
    "05_likelihoods.py": (["likelihoods.png"], {
        "gaussian_rate_r2": in_unit, "gaussian_data_r2": in_unit, "calcium_model_rate_r2": in_unit,
        "gaussian_model_on_calcium_rate_r2": in_unit}),
    "06_posterior_and_diagnostics.py": (["predictive.png", "khat.png"], {
        "predictive_rate_r2": in_unit, "write_posterior_rate_r2": in_unit,
        # Predictive and write_posterior average different draws of the same posterior
        "mean_abs_difference": lambda v: 0 <= v < 0.2, "band90_covers_truth": lambda v: 0 <= v <= 1,
        "ppc90_covers_data": lambda v: 0.5 <= v <= 1, "g0_posterior_sd": lambda v: v > 0,
        "khat_fraction_below_0_7": lambda v: 0 <= v <= 1}),
    "07_comparing_elbos.py": (["elbos.png"], {
        # before training the KL of g0 dominates the noise, and its exact value removes most of it
        "untrained": lambda v: (v["TraceMeanField_ELBO"]["loss_sd"] < v["Trace_ELBO"]["loss_sd"] and
                                v["TraceMeanField_ELBO"]["relative_gradient_variance"]
                                < v["Trace_ELBO"]["relative_gradient_variance"]),
        "fitted": lambda v: all(r["loss_sd"] >= 0 and r["relative_gradient_variance"] > 0 for r in v.values()),
        "iwae": lambda v: v["10"] >= v["1"]}),
    "08_behavior_in_the_model.py": (["behavior.png"], {
        "behavior_r2": in_unit,
        "lfads": lambda v: in_unit(v["system_A_r2"]) and in_unit(v["system_B_r2"]),
        "behavior_model": lambda v: in_unit(v["system_A_r2"]) and in_unit(v["system_B_r2"])}),
}


def test_every_step_is_tested():
    assert sorted(STEPS) == sorted(p.name for p in TUTORIAL.glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("script", sorted(STEPS))
@pytest.mark.slow
def test_step_runs_tiny(script, tmp_path):
    figures, checks = STEPS[script]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(TUTORIAL / script), "--tiny", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    for key, check in checks.items():
        assert key in printed, f"{script} did not print {key}: {printed}"
        assert check(printed[key]), f"{script}: {key} = {printed[key]}"
    assert sorted(Path(f).name for f in printed["figures"]) == sorted(figures)
    for name in figures:
        assert (tmp_path / name).stat().st_size > 10_000, f"{script}: {name} is nearly empty"
