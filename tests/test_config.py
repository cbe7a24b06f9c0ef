"""The config: paper defaults, YAML round trip, refusal of unknown keys and impossible values."""

from __future__ import annotations

import pytest

from pyro_lfads.config import LFADSConfig, field_names
from pyro_lfads.errors import InputError


def test_paper_defaults_and_the_measured_schedule():
    cfg = LFADSConfig()
    assert (cfg.ic_prior_var, cfg.ar_tau_init, cfg.ar_var_init) == (0.1, 10.0, 0.1)
    assert (cfg.learning_rate, cfg.adam_beta1, cfg.adam_beta2) == (0.01, 0.9, 0.999)
    assert (cfg.grad_clip_norm, cfg.posterior_samples) == (200.0, 50)
    # measured on data this project did not make (benchmarks/defaults.py), not the paper's 0.1 and 1
    assert (cfg.adam_eps, cfg.kl_ic_scale, cfg.kl_co_scale) == (1e-8, 0.1, 0.1)
    # the schedule, chosen by benchmarks/defaults.py: epochs, not the paper's steps
    assert (cfg.kl_ramp_epochs, cfg.kl_ramp_steps, cfg.patience, cfg.max_epochs) == (30, None, 15, 500)
    assert (cfg.lr_decay, cfg.lr_patience, cfg.lr_min, cfg.min_improvement) == (0.5, 5, 1e-5, 1e-4)


def test_yaml_round_trip(tmp_path):
    cfg = LFADSConfig(gen_dim=12, co_dim=0, time_bins=30, elbo="meanfield", dropout=0.2)
    cfg.to_yaml(tmp_path / "c.yaml")
    assert LFADSConfig.from_yaml(tmp_path / "c.yaml") == cfg


def test_partial_yaml_keeps_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("gen_dim: 20\n")
    assert LFADSConfig.from_yaml(tmp_path / "c.yaml") == LFADSConfig(gen_dim=20)


def test_unknown_keys_are_refused_with_the_valid_ones(tmp_path):
    (tmp_path / "c.yaml").write_text("gen_dim: 20\ngenerator_size: 3\n")
    with pytest.raises(InputError) as info:
        LFADSConfig.from_yaml(tmp_path / "c.yaml")
    message = str(info.value)
    assert "generator_size" in message and "c.yaml" in message
    assert all(name in message for name in field_names())
    with pytest.raises(InputError, match="unknown keys"):
        LFADSConfig().replace(nope=1)


@pytest.mark.parametrize("key,value", [
    ("gen_dim", 0), ("gen_dim", 2.5), ("gen_dim", True), ("co_dim", -1), ("dropout", 1.0),
    ("learning_rate", 0), ("lr_decay", 1.0), ("likelihood", "gamma-ish"), ("elbo", "renyi"), ("iwae_particles", 0), ("ic_posterior_rank", -1),
    ("time_bins", 0), ("kl_ramp_steps", "many"), ("kl_ramp_steps", 0), ("kl_ramp_epochs", 0), ("patience", -1),
    ("min_improvement", 1.0), ("checkpoint_metric", "bits"),
])
def test_impossible_values_are_refused(key, value):
    with pytest.raises(InputError, match=key):
        LFADSConfig(**{key: value})


def test_bad_yaml_files(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        LFADSConfig.from_yaml(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("gen_dim: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        LFADSConfig.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="mapping"):
        LFADSConfig.from_yaml(tmp_path / "list.yaml")


@pytest.mark.parametrize("line,words", [
    ("learning_rate: .inf", "learning_rate: must be a finite number"),
    ("learning_rate: .nan", "learning_rate: must be a finite number"),
    ("kl_ic_scale: -.inf", "kl_ic_scale: must be a finite number"),
    ("learning_rate: 1000", "learning_rate: must be at most 1.0"),
    ("learning_rate: 10", "learning_rate: must be at most 1.0"),
    ("learning_rate: 1.0e+300", "learning_rate: 1e+300 is outside the range of float32"),
    ("ic_prior_var: 1.0e-300", "ic_prior_var: 1e-300 is outside the range of float32"),
    ("ar_var_init: 1.0e+40", "ar_var_init: 1e+40 is outside the range of float32"),
    ("seed: 18446744073709551616", "seed: must be an integer from 0 to 4294967294"),
    ("seed: 4294967295", "seed: must be an integer from 0 to 4294967294"),
    ("lr_min: 0.01", "lr_min: must be below learning_rate (0.01)"),
    ("learning_rate: '1e-3'", "YAML read it as text"),
])
def test_absurd_and_non_finite_numbers_are_refused_naming_the_key(tmp_path, line, words):
    (tmp_path / "c.yaml").write_text(line + "\n")
    with pytest.raises(InputError) as info:
        LFADSConfig.from_yaml(tmp_path / "c.yaml")
    assert words in str(info.value) and "c.yaml" in str(info.value) and "\n" not in str(info.value)


def test_numbers_yaml_1_1_reads_as_text_are_read_as_numbers(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: 1e-3\nlr_min: 1E-6\nic_prior_var: 5e-2\nseed: 4294967294\n")
    config = LFADSConfig.from_yaml(tmp_path / "c.yaml")
    assert (config.learning_rate, config.lr_min, config.ic_prior_var) == (1e-3, 1e-6, 5e-2)
    assert config.seed == 4294967294 and LFADSConfig(learning_rate=1.0, ic_prior_var=1.2e-38).learning_rate == 1.0


def test_a_run_written_before_g0_map_existed_is_read_as_fitted(tmp_path):
    """config.yaml of a run that predates g0_map has no such key: the run is read without the map (as it was
    fitted), while a user's config without the key takes the default."""
    import yaml

    from pyro_lfads.config import BEFORE_THE_KEY

    path = tmp_path / "config.yaml"
    values = LFADSConfig().to_dict()
    del values["g0_map"]
    path.write_text(yaml.safe_dump(values))
    assert LFADSConfig.from_yaml(path, missing=BEFORE_THE_KEY).g0_map is False
    assert LFADSConfig.from_yaml(path).g0_map is True
