"""Milliseconds per SVI step and peak memory for the default (and demo) configuration at batch 128.

Prints one JSON line per configuration:
    {"config": "default", "device": ..., "batch": 128, "pyro_ms": ..., "peak_mb": ...}
Run: python benchmarks/train_step.py [--device cpu|cuda] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import pyro
import torch

from pyro_lfads.batch import Batch
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.demo import DEMO_CONFIG
from pyro_lfads.run import RunInfo, build_model_and_guide
from pyro_lfads.train import Trainer

CONFIGS = {  # config, neurons, bins
    "default": (LFADSConfig(), 30, 100),
    "demo": (DEMO_CONFIG, 30, 100),  # the default without inferred inputs, as `pyro-lfads demo` fits Lorenz
}


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, device: str, steps: int, batch_size: int) -> dict:
    config, n_neurons, n_time = CONFIGS[name]
    config = config.replace(batch_size=batch_size)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    counts = torch.poisson(torch.full((batch_size, n_time, n_neurons), 0.1)).numpy()
    split = Split(counts, counts)
    dataset = LFADSDataset(split, split)
    model, guide = build_model_and_guide(config, RunInfo.describe(dataset, config))
    trainer = Trainer(model, guide, dataset, config, run_dir=".", device=device, progress=False)
    x = torch.as_tensor(counts, device=device)
    batch = Batch(x, x, None, n_time)
    times = []
    for step in range(steps + 3):  # 3 warm-up steps
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.svi.step(batch, 1.0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= 3:
            times.append(time.perf_counter() - start)
    return {"config": name, "device": device, "batch": batch_size, "neurons": n_neurons, "bins": n_time,
            "pyro_ms": 1000 * statistics.median(times), "peak_mb": peak_mb(device),
            "threads": torch.get_num_threads(), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    for name in CONFIGS:
        print(json.dumps(measure(name, args.device, args.steps, args.batch)), flush=True)


if __name__ == "__main__":
    main()
