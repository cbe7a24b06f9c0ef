"""Multi-session stitching (Methods 1.8): the generator, per-session read-ins and read-outs,
their principal-components initialisation, session batches, and the run/posterior/CLI plumbing."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_lfads import evaluate_run, fit, read_posterior, write_posterior
from pyro_lfads.fitting.batch import iterate_batches, iterate_session_batches, split_batch
from pyro_lfads.cli import main
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.run import RunInfo, build_model_and_guide
from pyro_lfads.extensions.stitching import (
    condition_averages,
    initialise_sessions,
    pcr_read_ins,
    shared_conditions,
)
from pyro_lfads.synthetic.multisession import make_multisession_datasets

NEURONS = (6, 9, 12)
SMALL = {"neurons": NEURONS, "n_conditions": 8, "trials_per_condition": 5, "n_time": 20}
FAC_DIM = 4


def tiny_config(**changes) -> LFADSConfig:
    values = {"max_epochs": 2, "batch_size": 16, "co_dim": 0, "gen_dim": 16, "fac_dim": FAC_DIM, "ic_enc_dim": 8,
              "kl_ramp_steps": 10}
    return LFADSConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def sessions():
    return make_multisession_datasets(seed=0, **SMALL)


def build(sessions, config=None):
    config = config or tiny_config()
    return build_model_and_guide(config, RunInfo.describe(sessions, config))


def noise_free(dataset: LFADSDataset) -> LFADSDataset:
    """The data set with its training counts replaced by the true expected counts per bin."""
    rates = dataset.truth_counts("train").astype(np.float32)
    train = Split(rates, rates.copy(), truth=dataset.train.truth, inds=dataset.train.inds)
    return LFADSDataset(train, dataset.valid, dataset.conversion_factor, dataset.source, dict(dataset.extras))


def without_conditions(dataset: LFADSDataset) -> LFADSDataset:
    extras = {k: v for k, v in dataset.extras.items() if not k.endswith("_conditions")}
    return LFADSDataset(dataset.train, dataset.valid, dataset.conversion_factor, dataset.source, extras)


# --- the generator ---------------------------------------------------------------------------

def _arrays(datasets):
    out = {}
    for k, ds in enumerate(datasets):
        for split in ("train", "valid"):
            s = getattr(ds, split)
            out.update({f"{k}_{split}_spikes": s.recon_data, f"{k}_{split}_truth": s.truth,
                        f"{k}_{split}_inds": s.inds})
        out.update({f"{k}_{key}": value for key, value in ds.extras.items()})
    return out


def test_generator_is_deterministic_per_seed():
    a, b, c = (_arrays(make_multisession_datasets(seed=s, **SMALL)) for s in (3, 3, 4))
    assert a.keys() == b.keys() == c.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for k in range(len(NEURONS)):
        assert not np.array_equal(a[f"{k}_train_spikes"], c[f"{k}_train_spikes"])
        assert not np.array_equal(a[f"{k}_train_truth"], c[f"{k}_train_truth"])
    assert not np.array_equal(a["0_train_latents"], c["0_train_latents"])


def test_each_session_has_its_own_neurons_and_source(sessions):
    assert len(sessions) == len(NEURONS)
    for k, (ds, n) in enumerate(zip(sessions, NEURONS)):
        assert ds.source == f"multisession(seed=0, session={k})"
        for split in (ds.train, ds.valid):
            assert split.recon_data.shape[1:] == split.encod_data.shape[1:] == split.truth.shape[1:] == (20, n)
        assert ds.train.n_trials + ds.valid.n_trials == 8 * 5
        assert ds.train.n_trials == 8 * 4  # 80 % of each condition's 5 trials
    # different neurons: no two sessions record the same truth
    assert not np.allclose(sessions[0].train.truth[..., :6], sessions[1].train.truth[..., :6])


def test_sessions_share_the_latents_of_each_condition(sessions):
    for split in ("train", "valid"):
        reference = {}
        for ds in sessions:
            conditions, latents = ds.extras[f"{split}_conditions"], ds.extras[f"{split}_latents"]
            assert latents.shape == (len(conditions), 20, 3)
            assert set(conditions.tolist()) == set(range(8))
            for condition, latent in zip(conditions.tolist(), latents):
                reference.setdefault(condition, latent)
                np.testing.assert_array_equal(latent, reference[condition])
    # conditions differ from one another (the check above is not vacuous)
    assert not np.allclose(reference[0], reference[1])


@pytest.mark.parametrize("kwargs, name", [
    ({"neurons": []}, "neurons"),
    ({"neurons": (0,)}, "neurons"),
    ({"neurons": (5, -1)}, "neurons"),
    ({"n_conditions": 0}, "n_conditions"),
])
def test_generator_refuses_bad_arguments(kwargs, name):
    with pytest.raises(InputError) as info:
        make_multisession_datasets(**{**SMALL, **kwargs})
    message = str(info.value)
    assert message.startswith(f"{name}:") and "\n" not in message


# --- shapes of the stitched model and guide ----------------------------------------------------

def test_model_and_guide_have_one_read_in_and_read_out_per_session(sessions):
    model, guide = build(sessions)
    assert len(model.likelihoods) == len(guide.read_ins) == len(NEURONS)
    for k, n in enumerate(NEURONS):
        assert tuple(model.likelihoods[k].readout.weight.shape) == (n, FAC_DIM)
        assert tuple(guide.read_ins[k].weight.shape) == (FAC_DIM, n)
        assert any(p is guide.read_ins[k].weight for p in guide.parameters())
    assert model.likelihood is model.likelihoods[0]


def test_single_session_has_no_read_ins(sessions):
    for data in (sessions[1], [sessions[1]]):
        model, guide = build(data)
        assert guide.read_ins is None
        assert len(model.likelihoods) == 1
        assert tuple(model.likelihood.readout.weight.shape) == (NEURONS[1], FAC_DIM)
        assert guide.ic_encoder is not None


def test_fixed_read_in_is_a_buffer(sessions):
    _, guide = build(sessions, tiny_config(train_read_in=False))
    state = guide.state_dict()
    for k, n in enumerate(NEURONS):
        weight = guide.read_ins[k].weight
        assert not isinstance(weight, torch.nn.Parameter)
        assert not any(p is weight for p in guide.parameters())
        assert f"read_ins.{k}.weight" in state and tuple(state[f"read_ins.{k}.weight"].shape) == (FAC_DIM, n)


# --- principal-components regression ------------------------------------------------------------

@pytest.fixture(scope="module")
def noise_free_sessions():
    """Three sessions whose training data are the true rates of their conditions."""
    return [noise_free(d) for d in make_multisession_datasets(seed=1, **{**SMALL, "neurons": (20, 30, 40)})]


def test_pcr_read_ins_give_the_same_scores_in_every_session(noise_free_sessions):
    n_time = 20
    read_ins = pcr_read_ins(noise_free_sessions, FAC_DIM, n_time)
    assert [w.shape for w in read_ins] == [(FAC_DIM, d.train.n_neurons) for d in noise_free_sessions]
    conditions = shared_conditions(noise_free_sessions)
    np.testing.assert_array_equal(conditions, np.arange(8))
    scores = []
    for w, d in zip(read_ins, noise_free_sessions):
        averages = condition_averages(d, conditions, n_time)
        assert averages.shape == (8 * n_time, d.train.n_neurons)
        scores.append((averages - averages.mean(axis=0)) @ w.T)
    for s in scores:  # unit-variance, uncorrelated components
        np.testing.assert_allclose(np.corrcoef(s.T), np.eye(FAC_DIM), atol=0.05)
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            for component in range(FAC_DIM):
                r = np.corrcoef(scores[i][:, component], scores[j][:, component])[0, 1]
                assert r > 0.99, (i, j, component, r)
            np.testing.assert_allclose(scores[i], scores[j], atol=0.1)


def test_pcr_needs_enough_shared_conditions(noise_free_sessions):
    with pytest.raises(InputError, match="too few"):
        pcr_read_ins(noise_free_sessions, 8 * 20, 20)


@pytest.mark.parametrize("likelihood, log_link", [("poisson", True), ("gaussian", False)])
def test_initialise_sessions_sets_read_ins_and_read_outs(noise_free_sessions, likelihood, log_link):
    n_time = 20
    model, guide = build(noise_free_sessions, tiny_config(likelihood=likelihood))
    initialise_sessions(model, guide, noise_free_sessions, n_time)
    expected = pcr_read_ins(noise_free_sessions, FAC_DIM, n_time)
    for k, (w, d) in enumerate(zip(expected, noise_free_sessions)):
        np.testing.assert_allclose(guide.read_ins[k].weight.detach().numpy(), w, rtol=1e-4, atol=1e-6)
        read_out = np.linalg.pinv(w)
        if log_link:
            read_out = read_out / d.train.recon_data[:, :n_time].mean(axis=(0, 1))[:, None]
        assert model.likelihoods[k].readout.weight.shape == read_out.shape
        np.testing.assert_allclose(model.likelihoods[k].readout.weight.detach().numpy(), read_out,
                                   rtol=1e-4, atol=1e-6)


def test_without_condition_labels_pcr_refuses_and_initialisation_keeps_random_weights(sessions):
    unlabelled = [without_conditions(d) for d in sessions]
    assert shared_conditions(unlabelled) is None
    with pytest.raises(InputError, match="train_conditions"):
        pcr_read_ins(unlabelled, FAC_DIM, 20)
    model, guide = build(unlabelled)
    before_in = [m.weight.detach().clone() for m in guide.read_ins]
    before_out = [lik.readout.weight.detach().clone() for lik in model.likelihoods]
    with pytest.warns(UserWarning, match="random read-ins"):
        initialise_sessions(model, guide, unlabelled, 20)
    for k in range(len(NEURONS)):
        assert torch.equal(guide.read_ins[k].weight, before_in[k])
        assert torch.equal(model.likelihoods[k].readout.weight, before_out[k])


# --- session batches ------------------------------------------------------------------------------

def labelled_splits(n_trials=(13, 10, 7), neurons=(3, 5, 2)):
    """Splits whose entries hold their own row index (and session in encod_data), to trace batches back."""
    splits = []
    for session, (n, width) in enumerate(zip(n_trials, neurons)):
        rows = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, 4, width)).copy()
        splits.append(Split(rows + 100 * session, rows))
    return splits


def _collect(batches, splits):
    seen, order = [], []
    for batch in batches:
        split = splits[batch.session]
        rows = batch.recon_data[:, 0, 0].long().numpy()
        assert batch.recon_data.shape[2] == split.n_neurons
        np.testing.assert_array_equal(batch.recon_data.numpy(), split.recon_data[rows])
        np.testing.assert_array_equal(batch.encod_data.numpy(), split.encod_data[rows])
        seen.extend((batch.session, int(r)) for r in rows)
        order.append((batch.session, rows))
    return seen, order


def test_session_batches_cover_every_trial_once_and_interleave():
    splits = labelled_splits()
    batches = list(iterate_session_batches(splits, 3, torch.Generator().manual_seed(0)))
    assert all(b.n_trials <= 3 for b in batches)
    seen, order = _collect(batches, splits)
    expected = [(s, r) for s, split in enumerate(splits) for r in range(split.n_trials)]
    assert sorted(seen) == expected and len(seen) == len(expected)
    sessions = [s for s, _ in order]
    assert len(sessions) == 5 + 4 + 3
    assert sessions != sorted(sessions)  # shuffled across sessions, not session by session
    # another seed, another order
    other = [b.session for b in iterate_session_batches(splits, 3, torch.Generator().manual_seed(1))]
    again = [b.session for b in iterate_session_batches(splits, 3, torch.Generator().manual_seed(0))]
    assert again == sessions and other != sessions


def test_session_batches_without_generator_go_session_by_session():
    splits = labelled_splits()
    batches = list(iterate_session_batches(splits, 4, None))
    seen, _ = _collect(batches, splits)
    assert seen == [(s, r) for s, split in enumerate(splits) for r in range(split.n_trials)]
    assert [b.session for b in batches] == [0] * 4 + [1] * 3 + [2] * 2


def test_one_session_batches_equal_iterate_batches():
    split = labelled_splits()[0]
    ours = list(iterate_session_batches([split], 4, torch.Generator().manual_seed(7)))
    theirs = list(iterate_batches(split, 4, torch.Generator().manual_seed(7)))
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        assert a.session == b.session == 0
        assert torch.equal(a.recon_data, b.recon_data) and torch.equal(a.encod_data, b.encod_data)


@pytest.mark.parametrize("session", [0, 1, 2])
def test_model_scores_a_batch_with_its_sessions_read_out(sessions, session):
    model, guide = build(sessions)
    batch = split_batch(sessions[session].train, slice(0, 4), session=session)
    guide_trace = poutine.trace(guide).get_trace(batch)
    trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch)
    trace.compute_log_prob()
    assert trace.nodes["rates"]["value"].shape == (4, 20, NEURONS[session])
    assert trace.nodes["obs"]["log_prob"].shape == (4,)


def test_batch_labelled_with_another_session_fails(sessions):
    model, guide = build(sessions)
    batch = split_batch(sessions[0].train, slice(0, 4), session=1)  # 6 neurons, session 1 has 9
    with pytest.raises((RuntimeError, ValueError)):  # the guide's read-in cannot read 6 neurons
        Trace_ELBO().differentiable_loss(model, guide, batch, 1.0)
    trace = poutine.trace(model).get_trace(batch)  # the model alone: scoring it fails too
    with pytest.raises(ValueError, match="broadcastable"):
        trace.compute_log_prob()


def test_a_step_moves_shared_weights_and_only_its_sessions_read_in_and_read_out(sessions):
    model, guide = build(sessions)
    batch = split_batch(sessions[1].train, slice(0, 8), session=1)
    Trace_ELBO().differentiable_loss(model, guide, batch, 1.0).backward()

    def moved(grad):
        return grad is not None and bool(grad.abs().sum() > 0)

    assert moved(guide.read_ins[1].weight.grad)
    assert moved(model.likelihoods[1].readout.weight.grad)
    for other in (0, 2):
        assert guide.read_ins[other].weight.grad is None
        assert not moved(model.likelihoods[other].readout.weight.grad)
    assert moved(model.generator.cell.weight_hh.grad)
    assert moved(model.generator.readout.weight.grad)
    assert moved(next(iter(guide.ic_encoder.parameters())).grad)


# --- end to end -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stitched_run(sessions, tmp_path_factory):
    """(run directory, sessions, posterior paths) of a 2-epoch stitched fit, with a posterior."""
    run_dir = tmp_path_factory.mktemp("stitched") / "run"
    pyro.clear_param_store()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(sessions, tiny_config(), run_dir, progress=False)
    assert not [w for w in caught if "read-ins" in str(w.message)], "PCR initialisation was skipped"
    paths = write_posterior(run_dir, sessions, samples=2, progress=False)
    return run_dir, sessions, paths


@pytest.mark.slow
def test_run_json_lists_every_session(stitched_run):
    run_dir, sessions, _ = stitched_run
    info = json.loads((run_dir / "run.json").read_text())
    assert [s["n_neurons"] for s in info["sessions"]] == list(NEURONS)
    assert [s["data_source"] for s in info["sessions"]] == [d.source for d in sessions]
    assert all(s["n_time"] == 20 for s in info["sessions"])
    assert len((run_dir / "training_curve.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_posterior_per_session(stitched_run):
    run_dir, sessions, paths = stitched_run
    assert paths == [run_dir / f"posterior_session{k}.h5" for k in range(len(NEURONS))]
    assert not (run_dir / "posterior.h5").exists()
    for k, (ds, n) in enumerate(zip(sessions, NEURONS)):
        assert paths[k].is_file()
        for split in ("train", "valid"):
            post = read_posterior(run_dir, split, session=k)
            n_trials = getattr(ds, split).n_trials
            assert post["output_params"].shape == (n_trials, 20, n)
            assert post["factors"].shape == (n_trials, 20, FAC_DIM)
            assert np.all(post["output_params"] > 0)
    with pytest.raises(InputError, match="^session: "):
        read_posterior(run_dir, "valid", session=len(NEURONS))


@pytest.mark.slow
def test_evaluate_a_session(stitched_run):
    run_dir, sessions, _ = stitched_run
    for k in (0, 2):
        result = evaluate_run(run_dir, sessions[k], baselines=(), session=k)
        assert set(result) == {"lfads"}
        assert np.isfinite(result["lfads"]["rate_r2"])
        assert result["lfads"]["n_valid_trials"] == sessions[k].valid.n_trials


@pytest.mark.slow
def test_write_posterior_refuses_the_wrong_number_of_sessions(stitched_run):
    run_dir, sessions, _ = stitched_run
    for data in (sessions[:2], sessions[0], sessions + sessions[:1]):
        with pytest.raises(InputError, match="sessions"):
            write_posterior(run_dir, data, samples=1, progress=False)


def test_fit_refuses_sessions_with_different_bins(tmp_path):
    short = make_multisession_datasets(seed=0, **SMALL)
    long = make_multisession_datasets(seed=0, **{**SMALL, "n_time": 21})
    with pytest.raises(InputError, match="bins") as info:
        fit([short[0], long[1]], tiny_config(), tmp_path / "run", progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.mark.slow
def test_fixed_read_ins_stay_at_their_initialisation(sessions, tmp_path):
    config = tiny_config(train_read_in=False, max_epochs=1)
    _, guide = fit(sessions, config, tmp_path / "run", progress=False).fitted("last")
    expected = pcr_read_ins(sessions, FAC_DIM, 20)
    for k, w in enumerate(expected):
        np.testing.assert_allclose(guide.read_ins[k].weight.numpy(), w, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_cli_synth_and_fit_multisession(tmp_path, capsys):
    out = tmp_path / "ms.h5"
    assert main(["synth", "multisession", "--out", str(out)]) == 0
    files = sorted(p.name for p in tmp_path.glob("ms*.h5"))
    assert files == [f"ms_session{k}.h5" for k in range(5)]

    config = tmp_path / "tiny.yaml"
    config.write_text("gen_dim: 16\nfac_dim: 4\nic_enc_dim: 8\nco_dim: 0\nbatch_size: 40\nmax_epochs: 1\n"
                      "kl_ramp_steps: 10\n")
    run = tmp_path / "run"
    assert main(["fit", str(tmp_path / "ms_session*.h5"), "--out", str(run), "--config", str(config),
                 "--quiet"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert len(info["sessions"]) == 5
    assert [s["data_source"] for s in info["sessions"]] == [str(tmp_path / f"ms_session{k}.h5") for k in range(5)]
    assert [s["n_neurons"] for s in info["sessions"]] == [20, 24, 28, 32, 36]

    capsys.readouterr()
    assert main(["fit", str(tmp_path / "nothing_*.h5"), "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyro-lfads: error:") and "no file matches" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run2").exists()

    assert main(["evaluate", str(run), "--session", "9"]) == 2
    err = capsys.readouterr().err
    assert "--session" in err and len(err.strip().splitlines()) == 1

    assert main(["posterior", str(run), "--samples", "1", "--quiet"]) == 0
    assert sorted(p.name for p in run.glob("posterior*.h5")) == [f"posterior_session{k}.h5" for k in range(5)]
    capsys.readouterr()
    assert main(["diagnose", str(run), "--samples", "2", "--importance-samples", "4", "--quiet"]) == 0
    summaries = json.loads(capsys.readouterr().out)
    assert list(summaries) == [f"session{k}" for k in range(5)]
    assert [s["n_trials"] for s in summaries.values()] == [len(json.loads((run / f"diagnostics_session{k}.json")
                                                                           .read_text())["per_trial"]["khat"])
                                                           for k in range(5)]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--session", "3", "--json", "--baselines", "none"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"session3"} and np.isfinite(result["session3"]["lfads"]["rate_r2"])


def test_held_out_neurons_get_a_least_squares_read_out():
    """Sessions whose encoders read fewer neurons than the model reconstructs (held-out neurons)."""
    def held_in(dataset, n_enc):
        def cut(split):
            return Split(split.encod_data[:, :, :n_enc].copy(), split.recon_data, truth=split.truth, inds=split.inds)
        return LFADSDataset(cut(dataset.train), cut(dataset.valid), dataset.conversion_factor, dataset.source,
                            dataset.extras)

    sessions = [held_in(d, d.train.n_neurons - 2)
                for d in make_multisession_datasets(neurons=(6, 9, 12), n_conditions=8, trials_per_condition=5,
                                                    n_time=20)]
    config = LFADSConfig(max_epochs=1, batch_size=16, co_dim=0, gen_dim=16, fac_dim=4, ic_enc_dim=8)
    model, guide = build_model_and_guide(config, RunInfo.describe(sessions, config))
    initialise_sessions(model, guide, sessions, 20)
    for session, dataset in enumerate(sessions):
        assert guide.read_ins[session].weight.shape == (4, dataset.train.n_neurons - 2)
        read_out = model.likelihoods[session].readout.weight.detach().numpy()
        assert read_out.shape == (dataset.train.n_neurons, 4) and np.abs(read_out).sum() > 0


@pytest.mark.slow
def test_a_stitched_runs_report_has_one_section_per_session(stitched_run):
    from pyro_lfads.diagnostics.report import write_report

    run_dir, sessions, _ = stitched_run
    index = write_report(run_dir, sessions, progress=False)
    page = index.read_text()
    titles = re.findall(r"<section><h2>([^<]*)</h2>", page)
    assert titles == [f"Session {k}: {dataset.source}" for k, dataset in enumerate(sessions)]
    for k, (section, dataset) in enumerate(zip(page.split("<section>")[1:], sessions)):
        assert section.count('<table class="evaluation">') == 1
        assert f'data-figure="n_valid_trials">{dataset.valid.n_trials}<' in section
        assert 'data-method="smoothing" data-figure="heldin_bps" class=in-sample' in section
        figures = set(re.findall(r'<img src="([^"]+)"', section))
        assert figures == {f"session{k}_{name}.png" for name in ("raster", "rates", "rate_scatter", "rate_r2_by_bin",
                                                                  "factors", "ppc", "khat")}
        assert all((index.parent / name).read_bytes()[:4] == b"\x89PNG" for name in figures)
        for name in (f"diagnostics_session{k}.json", f"inference_data_session{k}.nc"):
            assert (run_dir / name).is_file(), name
    assert page.count('<meta name="pyro-lfads-source"') == len(sessions)
    assert {'<img src="training.png"', '<img src="sessions.png"'} <= set(re.findall(r'<img src="[^"]+"', page))
