"""TransRate: coding-rate transferability (metrics.md §10, TLlib's form).

Huang, Huang, Rong, Yang, Wei, "Frustratingly Easy Transferability Estimation", ICML 2022,
https://proceedings.mlr.press/v162/huang22d.html.
"""

from __future__ import annotations

import numpy as np

from tpred.scores._gram import (
    check_labels,
    check_matrix,
    column_mean,
    gram_not_finite,
    gram_pass,
    raise_if_not_finite,
    row_gram,
)


def _half_logdet_identity_plus(gram: np.ndarray, scale: float) -> float:
    """½ log det(I + gram·scale) for a PSD Gram matrix (slogdet; the sign is +1)."""
    mat = gram * scale
    mat[np.diag_indices_from(mat)] += 1.0
    sign, logdet = np.linalg.slogdet(mat)
    assert sign > 0, "I + PSD matrix must have a positive determinant"
    return 0.5 * float(logdet)


def _coding_rate(f: np.ndarray, mean: np.ndarray, rows: np.ndarray | None, eps: float) -> float:
    """R(Z_S) = ½ log det(I_D + Z_Sᵀ Z_S / (n_S ε)), Z = F − mean, over rows S (None: all).

    When n_S < D the same value comes from the n_S × n_S Gram Z_S Z_Sᵀ (Sylvester's identity
    det(I + AB) = det(I + BA)), which is cheaper.
    """
    n, d = f.shape if rows is None else (len(rows), f.shape[1])
    if n >= d:
        gram = gram_pass(f, center=mean, rows=rows).gram                   # [D, D]
    elif rows is None:
        gram = row_gram(f, center=mean)                                    # [N, N]
    else:
        z = np.asarray(f[rows], dtype=np.float64) - mean                   # [n_S, D]
        gram = z @ z.T                                                     # [n_S, n_S]
    if gram_not_finite(gram):
        raise_if_not_finite(f, name="transrate")
    return _half_logdet_identity_plus(gram, 1.0 / (n * eps))


def transrate(features, labels, eps: float = 1e-4) -> float:
    r"""TransRate (Huang et al., ICML 2022) in TLlib's form, higher is better.

    With Z = F − mean(F) (column means over all samples; class subsets are not re-centred) and
    the coding rate R(Z_S) = ½ log det(I_D + Z_Sᵀ Z_S / (n_S ε)):

        TransRate = R(Z) − (1/C) Σ_c R(Z_c),

    Z_c the rows of class c. ε is used as given (TLlib's `eps`, not squared).

    Args:
        features: [N, D], any real dtype (float64 arithmetic; never modified).
        labels: [N], any hashable values.
        eps: distortion ε > 0.

    Returns:
        A Python float.

    Raises:
        ValueError: bad shapes, empty input, NaN/inf, fewer than 2 classes, a one-sample class,
            or eps ≤ 0.
    """
    if not (isinstance(eps, (int, float, np.floating)) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"transrate: eps must be a finite number > 0, got {eps!r}")
    f = check_matrix(features, name="transrate")
    y, num_classes = check_labels(labels, len(f), name="transrate")
    mean = column_mean(f)                                                  # [D]
    if not np.isfinite(mean).all():
        raise_if_not_finite(f, name="transrate")
    whole = _coding_rate(f, mean, None, eps)
    order = np.argsort(y, kind="stable")                                   # rows grouped by class
    bounds = np.cumsum(np.bincount(y, minlength=num_classes))[:-1]
    per_class = [_coding_rate(f, mean, rows, eps) for rows in np.split(order, bounds)]
    return whole - float(np.mean(per_class))
