"""SFDA: self-challenging Fisher discriminant analysis."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.special import softmax

from tpred.scores._checks import check_features_labels

_POWER_ROUNDS = 3        # rounds of power iteration for the top eigenvalue of S_w (reference: 3)
_MIN_SHRINKAGE = 1e-10   # floor of the shrinkage exp(-5 lambda_hat) (reference value)


def _class_stats(x: np.ndarray, onehot: np.ndarray):
    """Class means [C, D] and the pooled biased within-class scatter S_w = sum_c pi_c S_c."""
    counts = onehot.sum(axis=0)                                              # [C]
    means = (onehot.T @ x) / counts[:, None]                                 # [C, D]
    centred = x - onehot @ means                                             # [N, D]
    within = centred.T @ centred / len(x)                                    # [D, D]
    return means, within


def _top_eigenvalue(within: np.ndarray) -> float:
    """Three rounds of power iteration from the row sums S_w 1, as the reference does.

    If an iterate vanishes (S_w = 0, or the row sums lie in S_w's null space) the exact largest
    eigenvalue is used instead of the reference's 0/0 = NaN.
    """
    v = within.sum(axis=1)                                                   # [D]
    for _ in range(_POWER_ROUNDS):
        w = within @ v
        if not np.linalg.norm(w) > 0:
            return float(scipy.linalg.eigvalsh(within)[-1])
        u = w / np.linalg.norm(w)
        w = within @ u
        if not np.linalg.norm(w) > 0:
            return float(scipy.linalg.eigvalsh(within)[-1])
        v = w / np.linalg.norm(w)
    return float(v @ within @ u)


def _posteriors(x, means, within, priors, shrinkage):
    """LDA posteriors P(c | x) with the shrunk scatter (1 - l) S_w + l (tr S_w / D) I.

    Shapes: x [N, D], means [C, D], within [D, D], priors [C]. Returns [N, C].
    """
    d = within.shape[0]
    scale = np.trace(within) / d
    if scale == 0:
        # S_w = 0: every sample sits on its class mean. The posterior is the limit of S -> 0:
        # the nearest class mean wins (ties shared in proportion to the priors).
        dist = (means**2).sum(axis=1) - 2 * x @ means.T                     # [N, C] minus |x|^2
        nearest = dist <= dist.min(axis=1, keepdims=True)
        weight = nearest * priors                                            # [N, C]
        return weight / weight.sum(axis=1, keepdims=True)
    shrunk = (1 - shrinkage) * within + shrinkage * scale * np.eye(d)        # [D, D]
    try:
        coef = scipy.linalg.cho_solve(scipy.linalg.cho_factor(shrunk), means.T)  # [D, C]
    except np.linalg.LinAlgError:  # round-off made the (barely) regularised S_w indefinite
        coef = scipy.linalg.solve(shrunk, means.T, assume_a="sym")
    intercept = -0.5 * np.einsum("cd,dc->c", means, coef) + np.log(priors)   # [C]
    return softmax(x @ coef + intercept, axis=1)                             # [N, C]


def sfda(features, labels) -> float:
    r"""SFDA (Shao et al., "Not All Models Are Equal: Predicting Model Transferability in a
    Self-challenging Fisher Space", ECCV 2022), higher is better, in (0, 1].

    `arXiv:2207.03036 <https://arxiv.org/abs/2207.03036>`_. Matches the authors' code:

    1. pooled biased within-class scatter :math:`S_w = \sum_c \pi_c S_c`; its largest
       eigenvalue :math:`\hat\lambda` by 3 rounds of power iteration from :math:`S_w\mathbf 1`;
       shrinkage :math:`\lambda = \max(e^{-5\hat\lambda}, 10^{-10})`;
    2. LDA posteriors :math:`P_1` with :math:`\hat S_w = (1-\lambda)S_w +
       \lambda\,\mathrm{tr}(S_w)/D\,I` (the reference's generalised eigenproblem keeps all D
       eigenvectors, so it equals this Cholesky solve);
    3. self-challenge: :math:`q = \mathrm{softmax}(P_1)` (a softmax of probabilities), and each
       sample of class c becomes :math:`q_{ic} x_i + (1-q_{ic})\bar\mu_{-c}`, the unweighted
       mean of the other classes' original means;
    4. LDA posteriors :math:`P_2` on the mixed features with the same :math:`\lambda`;
       SFDA :math:`= \frac1N\sum_i P_2[i, y_i]` (no log, as in the reference).

    For unnormalised CNN features :math:`\lambda = 10^{-10}` (practically unregularised), and
    with D >= N the posteriors saturate at 1. If every sample equals its class mean
    (:math:`S_w = 0`, e.g. constant features) the posterior is the limit
    :math:`\hat S_w \to 0`: the nearest class mean, ties shared by prior; constant features
    thus give :math:`\sum_c \pi_c^2`. Inputs are not modified (the reference writes the mixed
    features into the caller's array).

    Args:
        features: [N, D] target features (any float dtype; computed in float64).
        labels: [N] target labels, any hashable values (re-encoded to 0..C-1).

    Shapes:
        features [N, D]; labels [N]. Returns a Python float.

    Raises:
        ValueError: invalid inputs (see ``check_features_labels``).
    """
    f, y, num_classes = check_features_labels(features, labels, name="sfda")
    onehot = np.eye(num_classes)[y]                                          # [N, C]
    priors = onehot.mean(axis=0)                                             # [C]
    means, within = _class_stats(f, onehot)                                  # [C, D], [D, D]
    shrinkage = max(np.exp(-5 * _top_eigenvalue(within)), _MIN_SHRINKAGE)
    p1 = _posteriors(f, means, within, priors, shrinkage)                    # [N, C]

    q = softmax(p1, axis=1)[np.arange(len(y)), y][:, None]                   # [N, 1]
    others = (means.sum(axis=0) - means) / (num_classes - 1)                 # [C, D]
    mixed = q * f + (1 - q) * others[y]                                      # [N, D]
    means2, within2 = _class_stats(mixed, onehot)
    p2 = _posteriors(mixed, means2, within2, priors, shrinkage)              # [N, C]
    return float(p2[np.arange(len(y)), y].mean())
