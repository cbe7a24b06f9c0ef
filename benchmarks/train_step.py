"""Milliseconds per training step, Pyro SVI against the plain-PyTorch reference, with FLOPs and efficiency.

For each configuration, the same model and guide (``build_model_and_guide``)
take steps two ways on the same batch of Poisson counts: Pyro's
``SVI.step`` as :class:`pyro_lfads.fitting.train.Trainer` runs it, and the plain-PyTorch
step of ``benchmarks/reference_lfads.py`` (the same objective and draws, no
Pyro). A third copy takes Pyro steps with the fused recurrences switched off.
Blocks of steps of the three alternate, and each figure is the median over
all steps after warm-up. One JSON line per configuration:

    {"config", "device", "threads", "batch", "neurons", "bins", "co_dim",
     "pyro_ms", "reference_ms", "ratio" (pyro / reference),
     "plain_ms"         the Pyro step with the fused recurrences off (``fused_recurrence: false``: autograd
                        through the readable loops, torch's GRU for the encoders),
     "speedup"          plain_ms / pyro_ms,
     "gflop_per_step"   FLOPs of one step's forward and backward (torch.utils.flop_counter, counted on the
                        plain step: the fused recurrences' products run inside one autograd node it does not see),
     "matmul_peak_gflops"  the best float32 matrix-multiply rate measured on this machine,
     "efficiency"       gflop_per_step / (pyro_ms / 1000) / matmul_peak_gflops,
     "peak_mb"}         peak resident memory of the process (CUDA: peak allocated)

Configurations: ``default`` (LFADSConfig(), 30 neurons, 100 bins), ``demo`` (50 bins)
(the demo's, without inferred inputs) and ``large`` (generator 200, factors
100, encoders 128, controller 128, 4 inferred inputs, 150 neurons, 100 bins);
batch 128.

Run: python benchmarks/train_step.py [--device cpu|cuda] [--steps 20] [--configs default,demo,large]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch
from torch.utils.flop_counter import FlopCounterMode

from pyro_lfads.fitting.batch import Batch
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.cli.demo import DEMO_BINS, DEMO_CONFIG
from pyro_lfads.fitting.run import RunInfo, build_model_and_guide
from pyro_lfads.fitting.train import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from reference_lfads import ReferenceLFADS  # noqa: E402

LARGE = LFADSConfig(gen_dim=200, fac_dim=100, ic_enc_dim=128, ci_enc_dim=128, con_dim=128, co_dim=4)
CONFIGS = {  # config, neurons, bins
    "default": (LFADSConfig(), 30, 100),
    "demo": (DEMO_CONFIG, 30, DEMO_BINS["n_time"]),
    "large": (LARGE, 150, 100),
}


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak_gflops(device: str, size: int = 1024, repeats: int = 20) -> float:
    """The best float32 matrix-multiply rate of ``repeats`` products of two size x size matrices."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def step_flops(reference: ReferenceLFADS, batch: Batch) -> float:
    """FLOPs of one forward and backward of the reference loss (the Pyro step computes the same)."""
    with FlopCounterMode(display=False) as counter:
        reference.loss(batch, 1.0).backward()
    reference.optimizer.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def build(config: LFADSConfig, dataset: LFADSDataset, device: str):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model, guide = build_model_and_guide(config, RunInfo.describe(dataset, config))
    return model.to(device), guide.to(device)


def timed(step, device: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def measure(name: str, device: str, steps: int, batch_size: int, peak_gflops: float) -> dict:
    config, n_neurons, n_time = CONFIGS[name]
    config = config.replace(batch_size=batch_size)
    counts = torch.poisson(torch.full((batch_size, n_time, n_neurons), 0.1), generator=torch.Generator().manual_seed(0))
    split = Split(counts.numpy(), counts.numpy())
    dataset = LFADSDataset(split, split)
    x = counts.to(device)
    batch = Batch(x, x, None, n_time)
    trainer = Trainer(*build(config, dataset, device), dataset, config, run_dir=".", device=device, progress=False)
    plain_config = config.replace(fused_recurrence=False)
    plain = Trainer(*build(plain_config, dataset, device), dataset, plain_config, run_dir=".", device=device,
                    progress=False)
    reference = ReferenceLFADS(*build(config, dataset, device))
    flops = step_flops(ReferenceLFADS(*build(plain_config, dataset, device)), batch)  # the counter sees no fused op
    steppers = {"pyro": lambda: trainer.svi.step(batch, 1.0), "reference": lambda: reference.step(batch, 1.0),
                "plain": lambda: plain.svi.step(batch, 1.0)}
    times = {name: [] for name in steppers}
    blocks = 4
    for block in range(blocks):
        per_block = max(1, steps // blocks) + (1 if block == 0 else 0)  # one warm-up step in the first block
        for kind, step in steppers.items():
            times[kind] += timed(step, device, per_block)[1 if block == 0 else 0:]
    pyro_ms, reference_ms, plain_ms = (1000 * statistics.median(times[kind]) for kind in ("pyro", "reference", "plain"))
    return {"config": name, "device": device, "threads": torch.get_num_threads(), "batch": batch_size,
            "neurons": n_neurons, "bins": n_time, "co_dim": config.co_dim,
            "pyro_ms": round(pyro_ms, 2), "reference_ms": round(reference_ms, 2),
            "ratio": round(pyro_ms / reference_ms, 3), "plain_ms": round(plain_ms, 2),
            "speedup": round(plain_ms / pyro_ms, 3), "gflop_per_step": round(flops / 1e9, 3),
            "matmul_peak_gflops": round(peak_gflops, 1),
            "efficiency": round(flops / 1e9 / (pyro_ms / 1000) / peak_gflops, 4),
            "peak_mb": round(peak_mb(device), 1), "steps": len(times["pyro"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    peak = matmul_peak_gflops(args.device)
    for name in args.configs.split(","):
        print(json.dumps(measure(name, args.device, args.steps, args.batch, peak)), flush=True)


if __name__ == "__main__":
    main()
