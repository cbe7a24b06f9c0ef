"""NLB's GPFA baseline, done as a reviewer expects: GPFA latents of the held-in spikes read out by Poisson
GLMs, the latent dimension chosen by cross-validation, the held-in rates out of sample.

- Latent dimension: of :data:`LATENT_CANDIDATES` (those no larger than the held-in neurons), the one whose
  GPFA, fitted on the other folds of the training trials, predicts the held-out fold's neurons best from
  the other neurons (Yu et al.'s leave-neuron-out error), averaged over :data:`SELECTION_FOLDS` folds. Timescales are at least one bin
  (:data:`pyro_lfads.evaluation.gpfa.LOG_TAU_BOUNDS`).
- Held-in rates: neuron j's rate is read out of the latents inferred without neuron j
  (:meth:`~pyro_lfads.evaluation.gpfa.GPFA.leave_neuron_out`) by a GLM fitted on such latents of the
  training trials, so no held-in rate has seen its own spikes and GPFA's ``heldin_bps`` is out of sample.
  A latent inferred from all neurons can copy a neuron's spikes into its rate, which scored above the true
  rates on sparse Lorenz data.
- Held-out neurons and forward bins: GLMs of the latents of all held-in neurons, as in NLB.

Spikes are (trials, time, neurons) counts per bin.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold

from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.baselines import DEFAULT_GLM_ALPHAS, NLBBaseline
from pyro_lfads.evaluation.gpfa import GPFA

#: Candidate latent dimensions of the cross-validation.
LATENT_CANDIDATES = (2, 4, 8, 12)
#: Folds of training trials that score each candidate.
SELECTION_FOLDS = 3


#: How :func:`select_n_latents` scores a candidate on held-out trials: name -> (GPFA method, better is higher).
CRITERIA = {"leave_neuron_out": ("leave_neuron_out_error", False), "likelihood": ("score", True)}


def select_n_latents(spikes: np.ndarray, candidates: tuple[int, ...] = LATENT_CANDIDATES, *,
                     folds: int = SELECTION_FOLDS, max_iter: int = 100, seed: int = 0,
                     preprocess: str = "sqrt", criterion: str = "leave_neuron_out") -> tuple[int, dict]:
    """The latent dimension of GPFA for spikes (N, T, q), cross-validated over folds of trials.

    ``criterion``: "leave_neuron_out" (Yu et al. 2009's: each neuron of a held-out trial predicted from the
    latents of the others, :meth:`~pyro_lfads.evaluation.gpfa.GPFA.leave_neuron_out_error`; lower is
    better) or "likelihood" (the held-out data log-likelihood per trial, higher is better; it rewards latents
    that copy each neuron's noise when neurons are few, and picked 4 latents of 5 neurons, with
    timescales of one bin, on sparse Lorenz data). Both are of the observations GPFA models (see
    ``preprocess``, :class:`~pyro_lfads.evaluation.gpfa.GPFA`).

    Returns ``(best, scores)``: scores maps each candidate (<= q) to the criterion averaged over ``folds``.
    """
    if criterion not in CRITERIA:
        raise InputError(f"criterion: {criterion!r} is not one of {', '.join(CRITERIA)}")
    n_trials, _, n_neurons = spikes.shape
    usable = [int(p) for p in candidates if p <= n_neurons]
    if not usable:
        raise InputError(f"spikes: GPFA's smallest latent dimension, {min(candidates)}, needs at least as many "
                         f"neurons; the data have {n_neurons}")
    if n_trials < 2 * folds:
        raise InputError(f"spikes: choosing GPFA's latent dimension needs at least {2 * folds} training trials, "
                         f"got {n_trials}")
    method, higher_is_better = CRITERIA[criterion]
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(np.arange(n_trials)))
    scores = {p: float(np.mean([getattr(GPFA(n_latents=p, max_iter=max_iter, seed=seed, preprocess=preprocess)
                                        .fit(spikes[fit]), method)(spikes[held]) for fit, held in splits]))
              for p in usable}
    return (max if higher_is_better else min)(scores, key=scores.get), scores


class GPFABaseline(NLBBaseline):
    """NLB's GPFA baseline with a cross-validated latent dimension and out-of-sample held-in rates (see the
    module docstring).

    Args:
        n_latents: GPFA latent dimensions (<= N_in), or None to choose among ``candidates`` by
            :func:`select_n_latents`.
        max_iter: the most EM iterations of the final fit (each candidate's gets half).
        candidates: the latent dimensions the cross-validation compares.
        glm_alphas, max_selection_samples, seed: see :class:`NLBBaseline`; ``seed`` also seeds GPFA's
            initialisation and the folds.

    Attributes (after ``fit``): gpfa_: the fitted GPFA model; n_latents_: its latent dimension;
        selection_scores_: the cross-validation's {candidate: leave-neuron-out error per held-out trial}, empty
        when ``n_latents`` was given; heldin_glms_: one single-output GLM per held-in neuron.
    """

    glm_heldin = False  # each held-in neuron has its own GLM, of the latents inferred without it

    def __init__(self, n_latents: int | None = None, max_iter: int = 200,
                 candidates: tuple[int, ...] = LATENT_CANDIDATES, glm_alphas: tuple[float, ...] = DEFAULT_GLM_ALPHAS,
                 max_selection_samples: int = 20_000, seed: int = 0):
        super().__init__(glm_alphas, max_selection_samples, seed)
        self.n_latents = n_latents
        self.max_iter = max_iter
        self.candidates = tuple(candidates)

    def _fit_features(self, heldin: np.ndarray) -> None:
        if self.n_latents is None:
            self.n_latents_, self.selection_scores_ = select_n_latents(
                heldin, self.candidates, max_iter=max(1, self.max_iter // 2), seed=self.seed)
        else:
            self.n_latents_, self.selection_scores_ = self.n_latents, {}
        self.gpfa_ = GPFA(n_latents=self.n_latents_, max_iter=self.max_iter, seed=self.seed).fit(heldin)
        n_trials, n_time, n_heldin = heldin.shape
        groups = np.repeat(np.arange(n_trials), n_time)
        self.heldin_glms_ = [self._glm().fit(self._left_out(heldin, j), heldin[:, :, j].reshape(-1, 1), groups)
                             for j in range(n_heldin)]

    def _left_out(self, heldin: np.ndarray, neuron: int) -> np.ndarray:
        """Latents (trials * T, p) of held-in spikes (trials, T, N_in), inferred without ``neuron``."""
        return self.gpfa_.leave_neuron_out(heldin, neuron).reshape(heldin.shape[0] * heldin.shape[1], -1)

    def _features(self, heldin: np.ndarray) -> np.ndarray:
        return self.gpfa_.transform(heldin)

    def _heldin_rates(self, heldin: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Neuron j's rates (trials, T) from the latents inferred without neuron j, for every held-in j."""
        n_trials, n_time, n_heldin = heldin.shape
        rates = np.empty((n_trials, n_time, n_heldin))
        for j, glm in enumerate(self.heldin_glms_):
            rates[:, :, j] = glm.predict(self._left_out(heldin, j)).reshape(n_trials, n_time)
        return rates
