"""The plain-PyTorch reference of benchmarks/ computes exactly the Pyro objective and step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyro
import pytest
import torch

from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.fitting.run import RunInfo, build_model_and_guide
from pyro_lfads.fitting.train import Trainer

_PATH = Path(__file__).parent.parent / "benchmarks" / "reference_lfads.py"
_SPEC = importlib.util.spec_from_file_location("reference_lfads", _PATH)
reference_lfads = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(reference_lfads)


def _pair(config, batch):
    counts = batch.recon_data.numpy()
    ext = None if batch.ext_input is None else batch.ext_input.numpy()
    split = Split(counts, counts, ext_input=ext)
    dataset = LFADSDataset(split, split)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model, guide = build_model_and_guide(config, RunInfo.describe(dataset, config))
    return dataset, model, guide


@pytest.mark.parametrize("co_dim, n_ext, weighted", [(0, 0, False), (2, 0, False), (2, 3, True)])
def test_reference_loss_and_step_equal_pyros(tiny_config, counts_batch, co_dim, n_ext, weighted):
    config = tiny_config.replace(co_dim=co_dim, dropout=0.0, cd_rate=0.0)
    batch = counts_batch(n_ext=n_ext)
    if weighted:
        batch = batch.replace(recon_weight=(torch.rand(batch.recon_data.shape) < 0.7).float() / 0.7)
    dataset, model, guide = _pair(config, batch)
    trainer = Trainer(model, guide, dataset, config, run_dir=".", progress=False)
    _, ref_model, ref_guide = _pair(config, batch)
    reference = reference_lfads.ReferenceLFADS(ref_model, ref_guide)

    pyro.set_rng_seed(7)
    pyro_loss = trainer._loss(trainer.traced.model, trainer.traced.guide, batch, 0.4)  # as SVI calls it
    pyro.set_rng_seed(7)
    torch.testing.assert_close(reference.loss(batch, 0.4), pyro_loss)

    pyro.set_rng_seed(8)
    trainer.svi.step(batch, 0.4)
    pyro.set_rng_seed(8)
    reference.step(batch, 0.4)
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)
    for (name, p), q in zip(guide.named_parameters(), ref_guide.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)
