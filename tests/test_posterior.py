"""Posterior averaging: chunking, what each output holds, and the output file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from pyro_lfads.fitting.posterior import posterior_chunks, read_posterior, write_posterior
from pyro_lfads.fitting.run import load_fitted
from pyro_lfads.fitting.train import fit


@pytest.mark.slow
def test_chunks_cover_every_trial_within_the_row_bound(tiny_lorenz, tiny_config, tmp_path):
    fit(tiny_lorenz, tiny_config.replace(max_epochs=1), tmp_path, progress=False)
    _, _, model, guide = load_fitted(tmp_path)
    split = tiny_lorenz.valid
    chunks = list(posterior_chunks(model, guide, split, samples=4, max_rows=20))
    covered = [t for trials, _ in chunks for t in range(trials.start, trials.stop)]
    assert covered == list(range(split.n_trials))
    assert all((trials.stop - trials.start) * 4 <= 20 for trials, _ in chunks)
    trials, out = chunks[1]
    n = trials.stop - trials.start
    assert out["output_params"].shape == (n, split.n_time, split.n_neurons)
    assert out["co_means"].shape == out["co_stds"].shape == (n, split.n_time, tiny_config.co_dim)
    # ic_mean / ic_std are q(g0)'s parameters for those very trials (dropout off)
    encod = torch.as_tensor(split.encod_data[trials], dtype=torch.float32)
    with torch.no_grad():
        loc, scale = guide.initial_condition(encod)
    np.testing.assert_allclose(out["ic_mean"], loc.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["ic_std"], scale.numpy(), rtol=1e-5, atol=1e-6)
    assert (out["output_params_std"] > 0).any() and (out["co_stds"] > 0).all()


@pytest.mark.slow
def test_one_sample_has_zero_spread_and_the_file_has_every_key(tiny_lorenz, tiny_config, tmp_path):
    fit(tiny_lorenz, tiny_config.replace(max_epochs=1), tmp_path, progress=False)
    write_posterior(tmp_path, tiny_lorenz, samples=1, progress=False, max_rows=7)
    with h5py.File(tmp_path / "posterior.h5") as h5:
        assert h5.attrs["samples"] == 1
        for split in ("train", "valid"):
            for key in ("output_params", "output_params_std", "factors", "factors_std", "gen_states", "gen_init",
                        "gen_inputs", "con_states", "co_means", "co_stds", "ic_mean", "ic_std"):
                assert f"{split}_{key}" in h5, (split, key)
    valid = read_posterior(tmp_path, "valid")
    assert np.all(valid["output_params_std"] == 0) and np.all(valid["factors_std"] == 0)
    assert np.all(valid["co_stds"] > 0)  # q(u_t)'s own spread, which one draw does not remove
    assert np.all(np.isfinite(valid["output_params"])) and np.all(valid["output_params"] > 0)
