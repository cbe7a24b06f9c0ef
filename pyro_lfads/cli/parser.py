"""The ``pyro-lfads`` command line's arguments: every subcommand, its flags, their types and help.

:func:`build_parser` is the whole grammar; :mod:`pyro_lfads.cli` runs the commands it parses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pyro_lfads.config import LFADSConfig
from pyro_lfads.diagnostics.summary import DEFAULT_DRAWS, DEFAULT_IMPORTANCE_SAMPLES
from pyro_lfads.fitting.schedule import MIN_STEPS_PER_EPOCH
from pyro_lfads.synthetic.observations import OBSERVATIONS

def _int_at_least(minimum: int):
    """An argparse type: an integer >= minimum, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


_positive_int, _nonnegative_int = _int_at_least(1), _int_at_least(0)


def _float_above(minimum: float, inclusive: bool):
    """An argparse type: a number > minimum (>= when ``inclusive``), with a one-line message otherwise."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {minimum:g}, got {text}")
        return value
    return parse


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="where to compute: auto (default: cuda when torch sees a CUDA device, else cpu), cpu, "
                             "cuda or cuda:N")


def _add_scoring(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lag-bins", type=_nonnegative_int, default=0,
                        help="velocity decoding: behaviour at bin t is decoded from rates at t - LAG (default 0)")
    parser.add_argument("--psth-sigma-bins", type=float, default=5.0,
                        help="PSTH R2: std of the Gaussian that smooths the reference spikes, bins (default 5)")


def _add_bin_ms(parser: argparse.ArgumentParser, unrecorded: str) -> None:
    parser.add_argument("--bin-ms", type=_float_above(0, inclusive=False), default=None,
                        help="the data's bin width in ms, for time axes and spikes/s (default: the width run.json "
                             "records from the data file, as 'synth', 'from-nwb' and 'from-continuous' write it; "
                             f"one that contradicts it is refused; {unrecorded} for data that records none)")


def _baseline_list(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated baseline names, or 'none'."""
    from pyro_lfads.evaluation.nlb_figures import BASELINES

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if names == ("none",):
        return ()
    unknown = [name for name in names if name not in BASELINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(BASELINES)} or none, "
                                         f"got {text!r}")
    return names


def _fit_length_text() -> str:
    """What sets a fit's length by default, from the config's defaults."""
    c = LFADSConfig
    return (f"Fit LFADS, writing a run directory. A run's length by default: a KL ramp of {c.kl_ramp_epochs} epochs; "
            f"then the learning rate ({c.learning_rate}) falls x{c.lr_decay} after {c.lr_patience} epochs without "
            f"progress of the validation objective (the one that picks best.pt; progress is a relative fall of "
            f"{c.min_improvement:g}), and the fit stops after {c.patience} such epochs, or at {c.max_epochs} epochs "
            f"at most (config keys kl_ramp_epochs, learning_rate, lr_decay, lr_patience, min_improvement, patience, "
            f"max_epochs). Batches hold {c.batch_size} trials, fewer when the data set has under "
            f"{MIN_STEPS_PER_EPOCH} batches. The last line says why the fit stopped.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-lfads",
        description="LFADS (Latent Factor Analysis via Dynamical Systems) as a Pyro program: "
                    "denoised single-trial rates, latent factors and inferred inputs from spike counts.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = sub.add_parser("synth", help="write a synthetic data set with known ground truth")
    synth.add_argument("system", choices=["lorenz", "calcium", "nlb-lorenz", "chaotic-rnn", "pulses",
                                          "integrate-to-bound", "multisession", "behavior-lorenz"],
                       help="lorenz: the paper's Lorenz benchmark (Methods 2.1); calcium: dF/F imaging of it; "
                            "nlb-lorenz: Lorenz with held-out neurons, forward bins, conditions and behaviour; "
                            "chaotic-rnn: a chaotic RNN's units (Methods 2.2); pulses: the same RNN kicked by one "
                            "input pulse per trial (Methods 2.3); integrate-to-bound: an RNN trained to integrate "
                            "white noise to a bound, about 20 s of training (Methods 2.4); the last two keep their "
                            "true inputs as *_inputs; multisession: 5 sessions of different neurons recording "
                            "the same Lorenz conditions, one file per session (for stitching); behavior-lorenz: "
                            "two independent Lorenz systems, one driving *_behavior and half the neurons, the "
                            "other the rest (for model: behavior; *_latents and *_irrelevant_latents)")
    synth.add_argument("--out", required=True, type=Path,
                       help="output file, .h5 or .npz (LFADS format); multisession writes OUT's stem + "
                            "_session0, _session1, ...")
    synth.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default 0)")
    synth.add_argument("--likelihood", default="poisson", choices=OBSERVATIONS,
                       help="lorenz only: how the rates are observed (default poisson)")
    synth.add_argument("--gamma", type=float, default=1.5,
                       help="chaotic-rnn and pulses only: gain of the recurrent weights (default 1.5; the paper "
                            "also uses 2.5)")
    synth.add_argument("--pulse-fraction", type=float, default=1.0,
                       help="pulses only: the chance that a trial gets its pulse, 0 to 1 (default 1: every trial); "
                            "*_pulsed marks the trials that do, the labels 'analyze --labels pulsed' separates")
    synth.add_argument("--format", default="lfads", choices=["lfads", "nlb"],
                       help="nlb-lorenz only: LFADS HDF5 keys (default) or NLB tensor keys "
                            "(train_spikes_heldin, ...); both load with 'fit'")

    nwb = sub.add_parser("from-nwb", help="bin an NWB file's spikes into trials: an LFADS data file")
    nwb.add_argument("nwb_file", type=Path, help="NWB file with a units table and a trials table")
    nwb.add_argument("--out", required=True, type=Path, help="LFADS data file to write (.h5 or .npz)")
    nwb.add_argument("--bin-ms", type=float, default=5.0,
                     help="bin width in ms (default 5); the file records it (bin_width_s), and later commands read it")
    nwb.add_argument("--align-to", default="start_time", help="trials-table column of alignment times "
                                                               "(default start_time; e.g. move_onset_time)")
    nwb.add_argument("--window-ms", type=float, nargs=2, default=(0.0, 700.0), metavar=("START", "END"),
                     help="observed window around the alignment time, ms (default 0 700)")
    nwb.add_argument("--forward-ms", type=float, default=0.0, help="forward-prediction ms after the window")
    nwb.add_argument("--behavior", help="TimeSeries to bin as behaviour (e.g. hand_vel)")
    nwb.add_argument("--condition", help="trials-table column of condition labels")
    nwb.add_argument("--heldout", help="boolean units-table column marking held-out neurons (e.g. heldout)")
    nwb.add_argument("--valid-fraction", type=float, default=0.2,
                     help="fraction of trials for validation when the trials table has no 'split' column")
    nwb.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of that random split")

    cont = sub.add_parser("from-continuous", help="cut a continuous recording (spikes and behaviour of consecutive "
                                                  "bins in a .mat, .npz or .h5 file) into overlapping windows: an "
                                                  "LFADS data file whose posterior and decoding merge them back")
    cont.add_argument("file", type=Path, help="MATLAB .mat (v5 or v7.3), .npz or HDF5 file of binned arrays")
    cont.add_argument("--out", required=True, type=Path, help="LFADS data file to write (.h5 or .npz)")
    cont.add_argument("--window-bins", required=True, type=_positive_int, help="bins per window")
    cont.add_argument("--overlap-bins", required=True, type=_nonnegative_int,
                      help="bins consecutive windows share (< --window-bins; the last window is aligned to the end)")
    cont.add_argument("--spikes", default="spikes", metavar="KEY", help="key of the spike counts (default spikes)")
    cont.add_argument("--behavior", metavar="KEY", help="key of the behaviour of the same bins (e.g. handVel)")
    cont.add_argument("--behavior-dims", type=_nonnegative_int, nargs="+", metavar="I",
                      help="the behaviour's columns to keep (e.g. 0 1 for x and y; default all)")
    cont.add_argument("--transpose", action="store_true",
                      help="the arrays are stored (neurons, bins) and (dims, bins) (default (bins, neurons))")
    cont.add_argument("--valid-every", type=_int_at_least(2), default=5, metavar="K",
                      help="every K-th block of windows is for validation (default 5)")
    cont.add_argument("--block-windows", type=_positive_int, default=1, metavar="B",
                      help="consecutive windows per block (default 1; more holds out whole stretches)")
    cont.add_argument("--bin-ms", type=_float_above(0, inclusive=False), metavar="MS",
                      help="the recording's bin width in ms, recorded in the data file (report and diagnose use it)")

    fit = sub.add_parser("fit", help="fit LFADS to a data file (or stitch several sessions' files), "
                                     "writing a run directory",
                         description=_fit_length_text())
    fit.add_argument("data", nargs="*", help="LFADS-format data file (.h5/.hdf5 or .npz); several files or a "
                                             "quoted glob ('sessions_*.h5') stitch one model across sessions")
    fit.add_argument("--out", type=Path, help="run directory to write (created if needed)")
    fit.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue RUN_DIR from its last complete checkpoint, on the data and config it records "
                          "(--max-epochs may extend it); no DATA, --out or --config then")
    fit.add_argument("--config", type=Path, help="YAML file of config keys (see LFADSConfig); others keep defaults")
    fit.add_argument("--max-epochs", type=_positive_int,
                     help=f"override the config's max_epochs, the ceiling (default {LFADSConfig.max_epochs}; the "
                          "fit usually stops earlier, on a plateau)")
    fit.add_argument("--seed", type=_nonnegative_int, help="override the config's seed")
    fit.add_argument("--likelihood", metavar="NAME|MODULE:CLASS",
                     help="override the config's observation model: poisson, gaussian, negbinom, gamma, zig or "
                          "calcium, or a class of your own as package.module:ClassName (importable: installed, on "
                          "PYTHONPATH or in the working directory); config.yaml records it, and later commands "
                          "on the run import it again")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace a different run already in --out (default: refuse)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(fit)

    tun = sub.add_parser("tune", help="AutoLFADS: population-based training of the hyperparameters on Ray Tune; "
                                      "writes the best member's run directory to OUT/best")
    tun.add_argument("data", type=Path, help="LFADS-format data file (.h5/.hdf5 or .npz)")
    tun.add_argument("--out", required=True, type=Path, metavar="DIR",
                     help="new or empty directory for the results")
    tun.add_argument("--population", required=True, type=_int_at_least(2), metavar="N",
                     help="members trained side by side")
    tun.add_argument("--generations", required=True, type=_positive_int, metavar="G",
                     help="generations; after each but the last the worst quarter copies the best quarter")
    tun.add_argument("--epochs-per-generation", type=_positive_int, default=5, metavar="E",
                     help="epochs each member trains per generation (default 5)")
    tun.add_argument("--config", type=Path, metavar="YAML",
                     help="YAML file of config keys fixing everything that is not tuned")
    tun.add_argument("--objective", choices=("sv", "recon", "elbo"), default="sv",
                     help="validation metric PBT minimises: sample validation's reconstruction cost of entries no "
                          "encoder sees (default; sv_rate 0.1 unless the config sets one), the validation trials' "
                          "reconstruction cost, or their -ELBO")
    tun.add_argument("--seed", type=_nonnegative_int, metavar="S",
                     help="override the config's seed (initial draws and weights)")
    tun.add_argument("--address", metavar="A",
                     help="Ray cluster to run on (e.g. auto, or HOST:6379; default: RAY_ADDRESS if set, else Ray "
                          "started in this process on this machine's CPUs)")
    tun.add_argument("--cpus-per-trial", type=_float_above(0, inclusive=False), default=1.0, metavar="C",
                     help="CPUs per member (default 1)")
    tun.add_argument("--gpus-per-trial", type=_float_above(0, inclusive=True), default=0.0, metavar="F",
                     help="GPUs per member, fractions share a GPU (default 0; > 0 trains on cuda)")
    tun.add_argument("--quiet", action="store_true", help="no line per generation")

    post = sub.add_parser("posterior", help="posterior averages of a fitted run into RUN_DIR/posterior.h5 "
                                            "(posterior_session{k}.h5 per session of a stitched run), or of new "
                                            "trials (--data) into a file of their own (--out)")
    post.add_argument("run_dir", type=Path, help="run directory written by 'fit'")
    post.add_argument("--data", type=Path, metavar="NEW",
                      help="an LFADS data file of new trials (both splits, or train_* or valid_* only) with the "
                           "run's neurons, bins and bin width; needs --out")
    post.add_argument("--out", type=Path, metavar="FILE",
                      help="with --data: the HDF5 file to write (never the run's own posterior.h5)")
    post.add_argument("--session", type=_nonnegative_int, default=0,
                      help="with --data, a stitched run: the session the new trials were recorded in (default 0)")
    post.add_argument("--samples", type=_positive_int, help="samples of (g0, u) per trial (default: config, 50)")
    post.add_argument("--means", choices=("average", "psis"), default="average",
                      help="average the draws equally (default) or, where a trial's k-hat is below 0.7, weighed by "
                           "PSIS importance weights (records {split}_khat and {split}_importance_weighted)")
    post.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(post)

    ev = sub.add_parser("evaluate", help="score a run's validation trials, LFADS next to smoothing and GPFA")
    ev.add_argument("run_dir", type=Path, help="run directory with a posterior")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ev.add_argument("--session", type=_nonnegative_int, default=None,
                    help="stitched runs: score this session only (default: every session)")
    _add_scoring(ev)
    ev.add_argument("--baselines", type=_baseline_list, default=("smoothing", "gpfa"),
                    help="comma-separated baselines to fit and score: smoothing, gpfa, or none "
                         "(default smoothing,gpfa)")

    nlb = sub.add_parser("nlb-submission", help="a run's rates for an NLB file's train and eval (or test) trials, "
                                                "as a Neural Latents Benchmark submission file")
    nlb.add_argument("run_dir", type=Path, help="run directory written by 'fit' on NLB data")
    nlb.add_argument("--name", required=True,
                     help="NLB data set name, the file's group: mc_maze, mc_rtt, area2_bump, dmfc_rsg, mc_maze_large, "
                          "mc_maze_medium, mc_maze_small (add _20 for 20 ms bins)")
    nlb.add_argument("--out", required=True, type=Path,
                     help="submission file (.h5); the other data sets' groups of an existing one are kept")
    nlb.add_argument("--data", type=Path,
                     help="NLB tensor file whose trials to predict (default: the file the run was fitted on)")
    nlb.add_argument("--samples", type=_positive_int, help="posterior samples per trial (default: config, 50)")
    nlb.add_argument("--session", type=_nonnegative_int, default=0, help="stitched runs: the session (default 0)")
    nlb.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(nlb)

    dec = sub.add_parser("decode", help="fit a decoder of behaviour (ridge, OLE or Kalman filter) from a run's "
                                        "rates or factors")
    dec.add_argument("run_dir", type=Path, help="run directory with a posterior, on data with *_behavior")
    dec.add_argument("--method", default="ridge", metavar="ridge|ole|kalman",
                     help="ridge: ridge regression, penalty by cross-validation over training trials (default); "
                          "ole: optimal linear estimation, least squares with no penalty, the paper's decoder; "
                          "kalman: a Kalman filter whose state is the behaviour, with linear dynamics and features "
                          "linear in it (Wu et al. 2006), fitted by least squares. ole and kalman also report "
                          "cv_r2, the R2 of 5-fold cross-validation over the training trials")
    dec.add_argument("--from", dest="source", choices=["rates", "factors"], default="rates",
                     help="decode from posterior mean rates (default) or factors")
    dec.add_argument("--lag-bins", type=_nonnegative_int, default=0,
                     help="behaviour at bin t is decoded from bin t - LAG (default 0)")
    dec.add_argument("--session", type=_nonnegative_int, default=0,
                     help="stitched runs: the session to decode (default 0)")

    ana = sub.add_parser("analyze", help="the paper's analyses of a run's posterior means: jPCA of condition-averaged "
                                         "factors (Fig. 3) and a t-SNE of single-trial inferred inputs (Fig. 6); "
                                         "figures and analysis.json in RUN_DIR/analysis")
    ana.add_argument("run_dir", type=Path, help="run directory with a posterior ('pyro-lfads posterior' first)")
    ana.add_argument("--jpca", action="store_true", help="jPCA (with neither flag: both analyses)")
    ana.add_argument("--inputs-embedding", action="store_true",
                     help="t-SNE of the inferred inputs, coloured by label, with silhouette and nearest-neighbour "
                          "scores of how well the labels separate (needs co_dim > 0)")
    ana.add_argument("--split", choices=["valid", "train"], default="valid", help="trials analysed (default valid)")
    ana.add_argument("--labels", default="conditions",
                     help="the data file's {split}_LABELS key, one label per trial: jPCA's conditions and the "
                          "embedding's classes (default conditions; pulses data also has pulsed)")
    ana.add_argument("--from", dest="source", choices=["factors", "rates"], default="factors",
                     help="what jPCA averages: factors (default) or rates (spikes/s, soft-normalised by 5 spikes/s)")
    ana.add_argument("--k", type=_int_at_least(2), default=6,
                     help="jPCA's principal components, even (default 6, or fewer when there are fewer dims)")
    ana.add_argument("--window", type=_nonnegative_int, nargs=2, metavar=("START", "STOP"),
                     help="bins [START, STOP) of the inputs the embedding reads (default all)")
    ana.add_argument("--out", type=Path, help="folder of the outputs (default RUN_DIR/analysis)")
    ana.add_argument("--session", type=_nonnegative_int, default=0, help="stitched runs: the session (default 0)")

    diag = sub.add_parser("diagnose", help="PSIS k-hat, IWAE and posterior predictive checks of a run; "
                                           "writes RUN_DIR/inference_data.nc and diagnostics.json (a stitched "
                                           "run's per session, *_session{k})")
    diag.add_argument("run_dir", type=Path, help="run directory written by 'fit'")
    diag.add_argument("--split", choices=["valid", "train"], default="valid", help="trials to diagnose (default valid)")
    diag.add_argument("--samples", type=_int_at_least(2), default=DEFAULT_DRAWS,
                      help=f"posterior draws per trial kept in inference_data.nc and used by the predictive checks "
                           f"(default {DEFAULT_DRAWS}; the file grows with draws x trials x bins x neurons)")
    diag.add_argument("--importance-samples", type=_int_at_least(2), default=DEFAULT_IMPORTANCE_SAMPLES,
                      help=f"draws per trial for k-hat and IWAE (default {DEFAULT_IMPORTANCE_SAMPLES})")
    _add_bin_ms(diag, "time in bins and rates in counts per bin")
    diag.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(diag)

    rep = sub.add_parser("report", help="figures, evaluation and diagnostics of a run as PNG files and an "
                                        "index.html that shows them, one section per session (runs 'posterior' "
                                        "and 'diagnose' first when needed)")
    rep.add_argument("run_dir", type=Path, help="run directory written by 'fit'")
    rep.add_argument("--out", type=Path, help="directory for the PNGs and index.html (default RUN_DIR/report)")
    _add_bin_ms(rep, "10 with a warning")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(rep)

    demo = sub.add_parser("demo", help="synthesise Lorenz data, fit, average, evaluate and plot")
    demo.add_argument("--out", type=Path, default=Path("lfads_demo"), help="output directory (default ./lfads_demo)")
    demo.add_argument("--max-epochs", type=_positive_int, default=None,
                      help="training epochs (default: the demo config's)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_device(demo)
    return parser
