"""AutoLFADS (pyro_lfads.extensions.tune): a tiny population end to end on Ray, the exploit step (weights copied,
hyperparameters applied), the explore step (x0.8 / x1.2, clipped, or resampled) and the errors.

Every test but the install hint and the exploit step needs Ray (``pip install ".[tune]"``) and
is skipped without it.
"""

from __future__ import annotations

import csv
import json
import math
import sys

import numpy as np
import yaml
import pytest
import torch

from pyro_lfads.cli import main
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import save_dataset
from pyro_lfads.fitting.run import BEST, CONFIG_FILE, CURVE_FILE, LAST
from pyro_lfads.extensions.tune import (DEFAULT_SV_RATE, MEMBER_FILE, PERTURBATION_FACTORS, SEARCH_SPACE, initial_members,
                             member_config, objective_config, search_space, start_member, train_generation, tune)

TINY_YAML = ("gen_dim: 16\nfac_dim: 4\nic_enc_dim: 8\nci_enc_dim: 8\ncon_dim: 8\nco_dim: 1\n"
             "batch_size: 32\nkl_ramp_steps: 10\nposterior_samples: 3\n")


@pytest.fixture
def needs_ray():
    return pytest.importorskip("ray")


@pytest.fixture
def tiny_files(tiny_lorenz, tmp_path):
    """(data file, config YAML) of the tiny Lorenz set and a tiny model with one inferred input."""
    data, config = tmp_path / "tiny.h5", tmp_path / "tiny.yaml"
    save_dataset(tiny_lorenz, data)
    config.write_text(TINY_YAML)
    return data, config


def test_without_ray_tune_says_how_to_install_it(monkeypatch, tiny_files, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as when it is not installed
    data, config = tiny_files
    code = main(["tune", str(data), "--out", str(tmp_path / "out"), "--population", "2", "--generations", "1",
                 "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == ('pyro-lfads: error: tune needs Ray: pip install "ray[tune]>=2.40" (or pip install ".[tune]" '
                           'in a source checkout)')
    assert not (tmp_path / "out").exists()


def _hyperparameters(config: LFADSConfig) -> dict:
    return {name: getattr(config, name) for name in search_space(config)}


def test_exploit_copies_the_donors_weights_and_applies_the_new_hyperparameters(tiny_lorenz, tmp_path):
    base = LFADSConfig.from_dict({**yaml.safe_load(TINY_YAML), "max_epochs": 2})
    donor_config = member_config(base, {**_hyperparameters(base), "dropout": 0.1, "cd_rate": 0.3})
    donor = start_member(tiny_lorenz, donor_config, tmp_path / "donor", init_seed=0)
    train_generation(donor, 2)
    saved = torch.load(tmp_path / "donor" / LAST, weights_only=False)

    new = {"learning_rate": 0.004, "dropout": 0.45, "cd_rate": 0.5, "kl_ic_scale": 2.0, "kl_co_scale": 0.3,
           "l2_gen_scale": 900.0, "l2_con_scale": 7.0}
    config = member_config(base, new)
    member = start_member(tiny_lorenz, config, tmp_path / "member", init_seed=1, checkpoint_dir=tmp_path / "donor")
    fresh = start_member(tiny_lorenz, config, tmp_path / "fresh", init_seed=1)

    for name in ("model", "guide"):
        mine = getattr(member, name).state_dict()
        assert mine.keys() == saved[name].keys()
        for key, value in mine.items():
            assert torch.equal(value, saved[name][key]), f"{name}.{key} not copied from the donor"
        assert any(not torch.equal(value, mine[key]) for key, value in getattr(fresh, name).state_dict().items())
    assert member.state.epoch == donor.state.epoch == 2 and member.state.best_valid == donor.state.best_valid
    assert member.state.step == donor.state.step and member.state.lr == 0.004
    dropouts = [m.p for module in (member.model, member.guide) for m in module.modules()
                if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(p == 0.45 for p in dropouts)
    assert member.model.config.kl_ic_scale == 2.0 and member.config.coordinated_dropout_rate == 0.5
    assert member.config.l2_gen_scale == 900.0 and member.config.l2_con_scale == 7.0
    written = LFADSConfig.from_yaml(tmp_path / "member" / CONFIG_FILE)
    assert _hyperparameters(written) == new
    # it trains on from the donor's epoch, its curve the donor's so far
    assert (tmp_path / "member" / CURVE_FILE).read_text() == (tmp_path / "donor" / CURVE_FILE).read_text()
    # one more epoch: Adam went on from the donor's state (its step count), at the member's learning rate
    steps = member.state.step
    train_generation(member, 1)
    assert member.state.epoch == 3
    adam = member.optim.get_state()
    assert adam.keys() == saved["optim"].keys()
    for name, state in adam.items():
        assert state["state"][0]["step"] == saved["optim"][name]["state"][0]["step"] + member.state.step - steps
        assert [group["lr"] for group in state["param_groups"]] == [0.004]
    # resuming a member's own checkpoint under its own config keeps its (possibly decayed) learning rate
    donor.state.lr = 0.0042
    donor.save(tmp_path / "donor" / LAST)
    again = start_member(tiny_lorenz, donor_config, tmp_path / "again", init_seed=0, checkpoint_dir=tmp_path / "donor")
    assert again.state.lr == 0.0042


def test_explore_multiplies_by_0_8_or_1_2_clips_or_resamples(needs_ray):
    from ray import tune as ray_tune
    from ray.tune.schedulers.pbt import _explore

    from pyro_lfads.extensions.tune import make_scheduler

    space = search_space(LFADSConfig())
    domains = {name: (ray_tune.loguniform if r.log else ray_tune.uniform)(r.low, r.high) for name, r in space.items()}
    scheduler = make_scheduler(space, domains)
    rng = np.random.default_rng(0)
    seen = set()
    for draw in range(300):
        # donors anywhere in the space, a third of them at an end of it
        old = {name: [r.low, r.high, rng.uniform(r.low, r.high)][draw % 3] for name, r in space.items()}
        new, operations = _explore(old, scheduler._hyperparam_mutations, scheduler._resample_probability,
                                   scheduler._perturbation_factors, scheduler._custom_explore_fn)
        for name, r in space.items():
            assert r.low <= new[name] <= r.high, name
            if operations[name] == "resample":
                seen.add("resample")
                continue
            factor = float(operations[name].removeprefix("* "))
            assert factor in PERTURBATION_FACTORS
            assert new[name] == pytest.approx(r.clip(old[name] * factor), rel=1e-12)
            seen.add(factor if r.low < old[name] * factor < r.high else "clipped")
    assert seen == {0.8, 1.2, "clipped", "resample"}
    assert set(PERTURBATION_FACTORS) == {0.8, 1.2}


def test_search_space_brackets_the_defaults_and_drops_the_controller_without_inputs():
    default = LFADSConfig()
    for name, r in SEARCH_SPACE.items():
        if name != "l2_con_scale":  # default 0: the range reaches down to about nothing instead
            assert r.low <= getattr(default, name if name != "cd_rate" else "coordinated_dropout_rate") <= r.high
    assert SEARCH_SPACE["l2_con_scale"].low <= 1.0
    assert set(search_space(default.replace(co_dim=0))) == set(SEARCH_SPACE) - {"kl_co_scale", "l2_con_scale"}


def test_member_0_starts_from_the_configuration_and_the_others_are_drawn_in_the_ranges():
    base = LFADSConfig(dropout=0.2, l2_gen_scale=1e6)  # l2_gen_scale above its range: clipped
    space = search_space(base)
    members = initial_members(base, space, population=6, seed=3)
    assert [m["init_seed"] for m in members] == [3, 4, 5, 6, 7, 8]
    assert members[0] == {"init_seed": 3, **{name: getattr(base, name) for name in space
                                            if name not in ("cd_rate", "l2_gen_scale", "l2_con_scale")},
                          "cd_rate": base.coordinated_dropout_rate, "l2_gen_scale": SEARCH_SPACE["l2_gen_scale"].high,
                          "l2_con_scale": SEARCH_SPACE["l2_con_scale"].low}
    for member in members[1:]:
        assert all(r.low <= member[name] <= r.high for name, r in space.items())
    assert len({m["learning_rate"] for m in members}) == 6  # drawn, not copied
    assert initial_members(base, space, 6, seed=3) == members  # the seed fixes the draws
    assert initial_members(base, space, 6, seed=4)[1] != members[1]


def test_the_objective_sets_the_metric_each_member_reports_and_checkpoints_by():
    base = LFADSConfig()
    assert objective_config(base, "sv") == base.replace(sv_rate=DEFAULT_SV_RATE)
    assert objective_config(base.replace(sv_rate=0.2), "sv").sv_rate == 0.2  # the config's own fraction
    for objective in ("recon", "elbo"):
        assert objective_config(base, objective) == base.replace(checkpoint_metric=objective)


def test_bad_requests_get_one_line_before_ray_starts(needs_ray, tiny_lorenz, tiny_files, tmp_path, capsys):
    import ray

    data, config = tiny_files
    with pytest.raises(SystemExit) as stop:
        main(["tune", str(data), "--out", str(tmp_path / "o"), "--population", "1", "--generations", "1"])
    assert stop.value.code == 2 and "--population: must be >= 2" in capsys.readouterr().err
    assert main(["tune", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "o"), "--population", "2",
                 "--generations", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.h5: file does not exist" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    for kwargs, problem in (({"population": 1}, "population: needs at least 2"),
                            ({"generations": 0}, "generations: must be >= 1"),
                            ({"epochs_per_generation": 0}, "epochs_per_generation: must be >= 1"),
                            ({"cpus_per_trial": 0}, "cpus_per_trial: must be > 0"),
                            ({"out": tmp_path / "full"}, "is not an empty directory"),
                            ({"objective": "bits"}, "objective: 'bits' is not one of sv, recon, elbo"),
                            ({"objective": "elbo", "config": LFADSConfig(sv_rate=0.2)},
                             "objective 'elbo': the config turns on sample validation")):
        with pytest.raises(Exception, match=problem) as error:
            tune(tiny_lorenz, **{"out": tmp_path / "o", "population": 2, "generations": 1, **kwargs})
        assert type(error.value).__name__ == "InputError"
    assert not ray.is_initialized() and not (tmp_path / "o").exists()


def _checkpoints(out) -> dict:
    """{(member id, generation): checkpoint directory} of every checkpoint Ray kept."""
    found = {}
    for record in (out / "ray").glob(f"pbt/*/checkpoint_*/{MEMBER_FILE}"):
        saved = json.loads(record.read_text())
        found[saved["member"], saved["generation"]] = record.parent
    return found


@pytest.mark.slow
def test_a_tiny_population_end_to_end(needs_ray, tiny_files, tmp_path, capsys):
    data, config = tiny_files
    out = tmp_path / "out"
    assert main(["tune", str(data), "--out", str(out), "--population", "2", "--generations", "2",
                 "--epochs-per-generation", "1", "--config", str(config), "--cpus-per-trial", "1"]) == 0
    captured = capsys.readouterr()
    assert "tune: generation 1/2" in captured.err and "tune: generation 2/2" in captured.err
    assert "best member: valid_metric" in captured.out

    with open(out / "population.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["generation"]), int(r["member"])) for r in rows] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    names = list(search_space(LFADSConfig.from_yaml(config)))
    assert set(names) <= set(rows[0])
    first = {int(r["member"]): r for r in rows[:2]}
    second = {int(r["member"]): r for r in rows[2:]}
    worse = max(first, key=lambda k: float(first[k]["valid_metric"]))
    better = 1 - worse
    # after generation 1 the worse member (the bottom quarter, rounded up) exploits the better one
    assert int(second[worse]["parent"]) == better and int(second[better]["parent"]) == better
    assert all(float(second[better][name]) == float(first[better][name]) for name in names)
    for name in names:
        old, new, r = float(first[better][name]), float(second[worse][name]), SEARCH_SPACE[name]
        perturbed = any(math.isclose(new, r.clip(old * f), rel_tol=1e-9) for f in PERTURBATION_FACTORS)
        assert perturbed or r.low <= new <= r.high, name  # or resampled
    # the weights came along: the exploited member's run directory continues the donor's
    ids = sorted({saved for saved, _ in _checkpoints(out)})
    checkpoints = _checkpoints(out)
    copied = [json.loads(line) for line in (checkpoints[ids[worse], 2] / CURVE_FILE).read_text().splitlines()]
    assert len(copied) == 2  # the donor's generation-1 epoch, then its own
    assert copied[0]["valid_sv_recon"] == float(first[better]["valid_metric"])  # the default objective: sv
    assert copied[0]["valid_sv_recon"] != float(first[worse]["valid_metric"])
    assert LFADSConfig.from_yaml(out / "best" / CONFIG_FILE).sv_rate == DEFAULT_SV_RATE

    # OUT/best: the member with the lowest best validation metric, a normal run directory
    best_metric = min(float(r["best_valid_metric"]) for r in rows[2:])
    best = next(r for r in rows[2:] if float(r["best_valid_metric"]) == best_metric)
    best_config = LFADSConfig.from_yaml(out / "best" / CONFIG_FILE)
    assert all(math.isclose(getattr(best_config, name), float(best[name])) for name in names)
    assert (out / "best" / BEST).exists() and not (out / "best" / MEMBER_FILE).exists()
    assert (out / "hyperparameters.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["posterior", str(out / "best"), "--samples", "3", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "best"), "--json", "--baselines", "none"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert np.isfinite(result["lfads"]["rate_r2"])
