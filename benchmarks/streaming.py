"""Causal, real-time LFADS: per-bin latency of streaming inference, and what causality costs in accuracy.

Latency: :class:`pyro_lfads.extensions.streaming.StreamingLFADS` with the default
configuration made causal (``causal: true``), on the Lorenz set's neurons,
replays validation trials bin by bin for 1 and for 64 concurrent streams
(one torch thread); one JSON line per stream count:

    {"streams": S, "median_ms": ..., "p99_ms": ..., "bins": ..., "threads": 1, "device": "cpu"}

Accuracy: the default configuration (with --epochs and --kl-ramp-steps) fitted acausally and causally, the same
epochs, on the Lorenz set (rate R2 against the true rates) and on the
synthetic NLB-shaped Lorenz set (velocity-decoding R2, ridge decoder fitted on
the training trials, and co-bps). Rates of the posterior-mean path for both: the
acausal model's from whole trials (:func:`pyro_lfads.extensions.streaming.split_mean_path`),
the causal model's as a streamer returns them bin by bin, inside the
initial-condition window too (:func:`pyro_lfads.extensions.streaming.replay_split`).

    {"experiment": "lorenz" | "nlb-lorenz", "model": "causal" | "acausal", "epochs": ...,
     "rate_r2": ..., "vel_r2": ..., "co_bps": ..., "fit_seconds": ...}

Run: python benchmarks/streaming.py [--epochs 150] [--kl-ramp-steps 600] [--experiments lorenz,nlb-lorenz]
                                    [--models acausal,causal] [--causal-ic-bins K] [--latency-only]
                                    [--bins 2000] [--out DIR [--reuse]] [--device cpu]

``--causal-ic-bins`` sets the causal model's initial-condition window (``ic_enc_seq_len``; default
5 bins, ``CAUSAL_IC_BINS``). ``--out DIR`` keeps the data files and runs (DIR/EXPERIMENT/data.h5,
DIR/EXPERIMENT/causal, DIR/EXPERIMENT/acausal), which ``examples/streaming_replay.py --runs`` reads.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import pyro_lfads
from pyro_lfads.data import save_dataset
from pyro_lfads.models.lfads import LFADSModel
from pyro_lfads.guides.lfads import LFADSGuide
from pyro_lfads.fitting.run import load_fitted
from pyro_lfads.evaluation.nlb_figures import score_rates
from pyro_lfads.extensions.streaming import StreamingLFADS, replay_split, split_mean_path
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset
from pyro_lfads.synthetic.lorenz_nlb import make_nlb_lorenz_dataset


def latency(model, guide, counts: np.ndarray, streams: int, n_bins: int, device: str) -> dict:
    """Per-bin wall time of ``step`` for ``streams`` streams replaying ``counts`` (trials, T, N)."""
    streamer = StreamingLFADS(model, guide, streams)
    n_trials, n_time, _ = counts.shape
    rows = np.arange(streams) % n_trials
    trials = torch.as_tensor(counts[rows], dtype=torch.float32, device=device)  # (S, T, N)
    times = []
    for b in range(n_bins + 50):
        t = b % n_time
        if t == 0:
            streamer.reset()
        bin_counts = trials[:, t]
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = streamer.step(bin_counts)
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        assert torch.isfinite(out.rates).all()
    ms = np.array(times[50:]) * 1e3
    return {"streams": streams, "median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
            "bins": n_bins, "threads": torch.get_num_threads(), "device": device}


def accuracy(name: str, dataset, config, root: Path, device: str, reuse: bool) -> tuple[dict, Path]:
    """Fit (or with ``reuse``, take the fit already in ``root``) and score one model."""
    causal, epochs = config.causal, config.max_epochs
    run_dir = root / name / ("causal" if causal else "acausal")
    if causal and config.ic_enc_seq_len is not None:
        run_dir = run_dir.with_name(f"causal_ic{config.ic_enc_seq_len}")
    start = time.perf_counter()
    if not reuse:
        pyro_lfads.fit(dataset, config, run_dir, device=device, progress=False, overwrite=True)
    seconds = time.perf_counter() - start
    _, _, model, guide = load_fitted(run_dir, "best", device)
    outputs = replay_split if causal else split_mean_path  # the causal model as it runs online, bin by bin
    rates = {split: outputs(model, guide, getattr(dataset, split))["rates"] for split in ("train", "valid")}
    figures = score_rates(dataset, rates["train"], rates["valid"])
    keep = {key: figures[key] for key in ("rate_r2", "vel_r2", "co_bps") if key in figures}
    return {"experiment": name, "model": "causal" if causal else "acausal", "epochs": epochs,
            "ic_window": config.ic_window, **keep, **({} if reuse else {"fit_seconds": round(seconds, 1)})}, run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--kl-ramp-steps", type=int, default=600)
    parser.add_argument("--experiments", default="lorenz,nlb-lorenz")
    parser.add_argument("--models", default="acausal,causal")
    parser.add_argument("--causal-ic-bins", type=int, default=None,
                        help="the causal model's initial-condition window in bins (default: CAUSAL_IC_BINS)")
    parser.add_argument("--bins", type=int, default=2000, help="timed bins per stream count")
    parser.add_argument("--latency-only", action="store_true",
                        help="time an untrained causal model (the cost does not depend on the weights)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="score the fits already in --out, fit nothing")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    lorenz = make_lorenz_dataset(seed=0)
    makers = {"lorenz": lambda: lorenz, "nlb-lorenz": lambda: make_nlb_lorenz_dataset(seed=0)}
    torch.manual_seed(0)
    model = LFADSModel(pyro_lfads.LFADSConfig(causal=True), lorenz.valid.n_neurons).to(args.device)
    guide = LFADSGuide(model, lorenz.valid.n_neurons).to(args.device)  # timed unless a fitted one replaces it
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for name in ([] if args.latency_only else args.experiments.split(",")):
            dataset = makers[name]()
            dataset.source = str(root / name / "data.h5")
            (root / name).mkdir(parents=True, exist_ok=True)
            save_dataset(dataset, dataset.source)
            for causal in [model == "causal" for model in args.models.split(",")]:
                config = pyro_lfads.LFADSConfig(causal=causal, max_epochs=args.epochs,
                                                kl_ramp_steps=args.kl_ramp_steps,
                                                ic_enc_seq_len=args.causal_ic_bins if causal else None)
                figures, run_dir = accuracy(name, dataset, config, root, args.device, args.reuse)
                print(json.dumps(figures), flush=True)
                if name == "lorenz" and causal:
                    _, _, model, guide = load_fitted(run_dir, "best", args.device)
        torch.set_num_threads(1)
        for streams in (1, 64):
            print(json.dumps(latency(model, guide, lorenz.valid.encod_data, streams, args.bins, args.device)),
                  flush=True)


if __name__ == "__main__":
    main()
