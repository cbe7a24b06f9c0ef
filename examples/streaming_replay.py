"""Replay a recorded session bin by bin through a causal LFADS; compare the online rates with the offline ones.

    python examples/streaming_replay.py --out replay_example --epochs 150
    python examples/streaming_replay.py --out replay_example --runs BENCH_OUT/lorenz   # benchmarks/streaming.py --out

Without ``--runs`` it makes the Lorenz set and fits the default configuration
twice, acausally (the offline model: bidirectional encoders, the whole trial)
and causally (``causal: true``, the online model); with ``--runs`` it takes the
``acausal`` and ``causal`` fits that ``benchmarks/streaming.py --out`` kept.
Then a :class:`pyro_lfads.extensions.streaming.StreamingLFADS` replays the validation
trials one bin at a time, as a recording system would deliver them, and it
writes ``replay.png`` (one trial: online, offline and true rates of three
neurons; the histogram of per-bin latencies) and prints one JSON line: rate
R2 online and offline on the replayed trials, median and 99th-percentile
latency per bin.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import pyro_lfads
from pyro_lfads.evaluation.metrics import rate_r2
from pyro_lfads.diagnostics.check_figures import plot_streaming_replay
from pyro_lfads.extensions.streaming import StreamingLFADS, split_mean_path
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset


def fitted_runs(args) -> tuple[Path, Path, pyro_lfads.LFADSDataset]:
    """(offline run, online run, data set): the benchmark's fits, or two new ones."""
    if args.runs is not None:
        return args.runs / "acausal", args.runs / "causal", pyro_lfads.Run.open(args.runs / "causal").dataset()
    dataset = make_lorenz_dataset(seed=0, n_conditions=args.conditions)
    for causal in (False, True):
        config = pyro_lfads.LFADSConfig(causal=causal, max_epochs=args.epochs, kl_ramp_steps=args.kl_ramp_steps)
        pyro_lfads.fit(dataset, config, args.out / ("causal" if causal else "acausal"), overwrite=True)
    return args.out / "acausal", args.out / "causal", dataset


def replay(streamer: StreamingLFADS, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trials (trials, T, N_in) one bin at a time, ``streamer.streams`` trials at once ->
    online rates (trials, T, N) and the wall time of every step (ms)."""
    n_trials, n_time, _ = counts.shape
    rates = np.zeros((n_trials, n_time, streamer.n_neurons))
    latencies = []
    for first in range(0, n_trials - streamer.streams + 1, streamer.streams):
        trials = slice(first, first + streamer.streams)
        streamer.reset()
        for t in range(n_time):
            bin_counts = counts[trials, t]  # what arrives from the recording system
            start = time.perf_counter()
            out = streamer.step(bin_counts)
            latencies.append((time.perf_counter() - start) * 1e3)
            rates[trials, t] = out.rates.numpy()
    return rates, np.array(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("replay_example"))
    parser.add_argument("--runs", type=Path, help="a benchmarks/streaming.py --out experiment folder: fit nothing")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--kl-ramp-steps", type=int, default=600)
    parser.add_argument("--conditions", type=int, default=65, help="conditions of the Lorenz set")
    parser.add_argument("--trials", type=int, default=20, help="validation trials to replay")
    parser.add_argument("--bin-ms", type=float, default=10.0, help="the data's bin width (the Lorenz set's: 10 ms)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    offline_run, online_run, dataset = fitted_runs(args)
    valid = dataset.valid
    n_trials = min(args.trials, valid.n_trials)
    counts = valid.encod_data[:n_trials].astype(np.float32)
    online, latencies = replay(StreamingLFADS.from_run(online_run, streams=1), counts)
    model, guide = pyro_lfads.Run.open(offline_run).fitted()
    offline = split_mean_path(model, guide, valid)["rates"][:n_trials]
    truth = dataset.truth_counts("valid")
    truth = None if truth is None else truth[:n_trials]
    plot_streaming_replay(online[0], offline[0], args.out / "replay.png",
                          truth=None if truth is None else truth[0], latencies_ms=latencies,
                          bin_ms=args.bin_ms)
    figures = {"trials": n_trials, "median_ms": float(np.median(latencies)),
               "p99_ms": float(np.percentile(latencies, 99))}
    if truth is not None:
        figures.update(online_rate_r2=rate_r2(truth, online), offline_rate_r2=rate_r2(truth, offline))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
