"""H-score and its shrinkage (Ledoit–Wolf) variant (metrics.md §4, §5; TLlib's definitions).

Both read one centred Gram matrix Σ_i (f_i − μ)(f_i − μ)ᵀ and the centred class sums, built in
float64 from blocks of the features (`_gram.py`), then one symmetric eigendecomposition: the
pseudo-inverse of a symmetric matrix is V diag(1/λ) Vᵀ over the eigenvalues with
|λ| > rcond·max|λ| (what `np.linalg.pinv` keeps from the singular values |λ|), so

    tr(pinv(Σ_f) Σ_g) = Σ_{kept i} ‖M v_i‖² / λ_i,   Σ_g ∝ MᵀM,  M_c = (Σ_{i∈c} (f_i − μ)) / √n_c.
"""

from __future__ import annotations

import warnings

import numpy as np

from tpred.errors import SaturatedScoreWarning
from tpred.scores._gram import (
    GramPass,
    check_labels,
    check_matrix,
    column_mean,
    eigh_inplace,
    gram_not_finite,
    gram_pass,
    raise_if_not_finite,
)

RCOND = 1e-15  # relative cutoff of TLlib's np.linalg.pinv(..., rcond=1e-15)


def _centred_pass(features, labels, *, name: str, norm4: bool = False):
    """Validate, then one pass: centred Gram [D, D], centred class sums [C, D], class sizes [C]."""
    f = check_matrix(features, name=name)
    y, num_classes = check_labels(labels, len(f), name=name)
    mean = column_mean(f)                                                  # [D]
    if not np.isfinite(mean).all():
        raise_if_not_finite(f, name=name)
    acc = gram_pass(f, center=mean, labels=y, num_classes=num_classes, norm4=norm4)
    if gram_not_finite(acc.gram):
        raise_if_not_finite(f, name=name)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)      # [C]
    return acc, counts, len(f)


def _trace_pinv(eigvals: np.ndarray, eigvecs: np.ndarray, between: np.ndarray) -> float:
    """tr(pinv(V diag(λ) Vᵀ, rcond) · BᵀB) for B = `between` [C, D]."""
    keep = np.abs(eigvals) > RCOND * np.abs(eigvals).max()
    energy = np.square(between @ eigvecs[:, keep]).sum(axis=0)             # [kept] ‖B v_i‖²
    return float((energy / eigvals[keep]).sum())


def _between(acc: GramPass, counts: np.ndarray) -> np.ndarray:
    """M [C, D] with MᵀM = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ."""
    return acc.class_sums / np.sqrt(counts)[:, None]


def hscore(features, labels) -> float:
    r"""H-score (Bao et al., ICIP 2019): tr(pinv(Σ_f) Σ_g), higher is better.

    "An Information-Theoretic Approach to Transferability in Task Transfer Learning",
    https://ieeexplore.ieee.org/document/8803726. Σ_f is the unbiased covariance of the features,
    Σ_g the unbiased covariance of the rows replaced by their class means; pinv with relative
    cutoff 1e-15, as TLlib's `h_score`. H lies in [0, C − 1].

    Saturation: when the centred features have rank N − 1 (which needs D ≥ N − 1: at least as
    many feature dimensions as samples, in general position), every class-mean direction lies
    in the span of the features and H = C − 1 exactly, whatever the features are. Such a value
    ranks nothing; a `SaturatedScoreWarning` says so. Use `hscore_shrinkage` (Ledoit–Wolf
    covariance, made for this case) or `logme` there.

    Shapes: features [N, D] (any real dtype; float64 arithmetic; never modified); labels [N],
    any hashable values. Returns a Python float.

    Raises:
        ValueError: bad shapes, empty input, NaN/inf, fewer than 2 classes, a one-sample class.

    Warns:
        SaturatedScoreWarning: the value is C − 1 because the features span every direction.
    """
    acc, counts, n = _centred_pass(features, labels, name="hscore")
    eigvals, eigvecs = eigh_inplace(acc.gram)  # the 1/(N−1) of both covariances cancels
    value = _trace_pinv(eigvals, eigvecs, _between(acc, counts))
    rank = int((np.abs(eigvals) > RCOND * np.abs(eigvals).max()).sum())
    if rank >= n - 1:
        warnings.warn(f"hscore saturated: the centred features have rank {rank} >= N - 1 = "
                      f"{n - 1} (D = {acc.gram.shape[0]} dimensions, N = {n} samples), so "
                      f"H = C - 1 = {len(counts) - 1} whatever the features; use "
                      f"hscore_shrinkage (or logme) instead", SaturatedScoreWarning,
                      stacklevel=2)
    return value


def ledoit_wolf_shrinkage(gram: np.ndarray, sum_norm4: float, n: int) -> float:
    """Ledoit–Wolf shrinkage α of centred data from its Gram matrix (= sklearn's value).

    S = gram / N (biased), μ = tr S / D, δ = ‖S − μI‖²_F / D,
    b = ((1/N) Σ_i ‖f_i‖⁴ − ‖S‖²_F) / (N·D), α = min(b, δ) / δ (0 if that min is 0 or D = 1).
    """
    d = gram.shape[0]
    if d == 1:  # sklearn returns 0 for a single feature
        return 0.0
    s = gram / n
    mu = np.trace(s) / d
    s_norm2 = float(np.square(s).sum())
    delta = (s_norm2 - 2 * mu * np.trace(s) + d * mu ** 2) / d
    b = min((sum_norm4 / n - s_norm2) / (n * d), delta)
    return 0.0 if b == 0 else float(b / delta)


def hscore_shrinkage(features, labels) -> float:
    r"""Shrinkage H-score (Ibrahim, Ponomareva, Mazumder, ECML-PKDD 2022), higher is better.

    "Newer is not always better: Rethinking transferability metrics, their peculiarities,
    stability and performance", https://arxiv.org/abs/2110.06893. As TLlib's
    `regularized_h_score`: Σ_α = (1 − α) S + α μ I is the Ledoit–Wolf estimate of the centred
    features' biased covariance S, Σ_g the unbiased covariance of the class-mean rows, and
    H_α = tr(pinv(Σ_α, rcond=1e-15) · (1 − α) Σ_g). Keeps TLlib's biased/unbiased mix.

    Shapes: features [N, D]; labels [N], any hashable values. Returns a Python float.

    Raises:
        ValueError: bad shapes, empty input, NaN/inf, fewer than 2 classes, a one-sample class.
    """
    acc, counts, n = _centred_pass(features, labels, name="hscore_shrinkage", norm4=True)
    alpha = ledoit_wolf_shrinkage(acc.gram, acc.sum_norm4, n)
    d = acc.gram.shape[0]
    mu = np.trace(acc.gram) / (n * d)                                     # tr S / D
    lam, vecs = eigh_inplace(acc.gram)                                     # S = V diag(λ/N) Vᵀ
    shrunk = (1 - alpha) * lam / n + alpha * mu                            # eigenvalues of Σ_α
    # (1 − α) Σ_g = (1 − α) MᵀM / (N − 1)
    between = _between(acc, counts) * np.sqrt((1 - alpha) / (n - 1))
    return _trace_pinv(shrunk, vecs, between)
