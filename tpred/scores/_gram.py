"""Gram matrices and class sums in float64, in one pass over blocks of a (float32) feature matrix.

LogME, H-score, shrinkage H-score and TransRate all start from FᵀF (or FFᵀ) and the per-class
sums of F. Casting a float32 [N, D] matrix to float64 whole costs 2× its size; these helpers cast
one block of rows (or columns) at a time, so the extra memory is one block (≈ 8 MiB) plus the
D × D (or N × N) result. Products are accumulated in float64: a float32 Gram matrix loses the
small eigenvalues that LogME depends on (measured: 36 % error on nearly low-rank features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from tpred.scores._checks import check_features_labels

BLOCK_ELEMS = 1 << 20  # float64 elements per block: at most 8 MiB ...
MIN_BLOCK = 256        # ... and at most 1/8 of the matrix, but never fewer rows than this


def block_size(length: int, width: int) -> int:
    """Rows per float64 block of a [length, width] matrix: ≤ 8 MiB and ≈ ≤ 1/8 of the matrix."""
    return max(1, min(BLOCK_ELEMS // width, max(MIN_BLOCK, -(-length // 8))))


def symmetrize_upper(a: np.ndarray) -> np.ndarray:
    """Copy the upper triangle onto the lower one in place, by blocks (no n × n temporary)."""
    n, step = len(a), 128
    below = np.tril_indices(step, -1)
    for j in range(0, n, step):
        a[j + step:, j:j + step] = a[j:j + step, j + step:].T
        diag = a[j:j + step, j:j + step]
        if len(diag) < step:
            below = np.tril_indices(len(diag), -1)
        diag[below] = diag.T[below]
    return a


def eigh_inplace(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of a symmetric float64 matrix, reading only its
    upper triangle and overwriting it (LAPACK syevd without a copy when `a` is Fortran-ordered).
    """
    from scipy.linalg import eigh

    return eigh(a, lower=False, overwrite_a=True, check_finite=False, driver="evd")


@dataclass(frozen=True)
class GramPass:
    """What `gram_pass` accumulated; fields it was not asked for are None.

    Shapes: gram [D, D] float64; class_sums [C, D]; cross [D, K]; sum_norm4 scalar.
    """

    gram: np.ndarray
    class_sums: np.ndarray | None
    cross: np.ndarray | None
    sum_norm4: float | None


def check_matrix(features, *, name: str, arg: str = "features") -> np.ndarray:
    """Validate a 2-D, non-empty, numeric array without copying it (finiteness is checked later).

    Raises:
        ValueError: not 2-D, empty, or not numeric.
    """
    f = np.asarray(features)
    if f.ndim != 2:
        raise ValueError(f"{name}: {arg} must be 2-D [N, D], got shape {f.shape}")
    if f.shape[0] == 0 or f.shape[1] == 0:
        raise ValueError(f"{name}: {arg} must be non-empty, got shape {f.shape}")
    if f.dtype.kind not in "fiub":
        raise ValueError(f"{name}: {arg} must be numeric, got dtype {f.dtype}")
    return f


def check_labels(labels, n: int, *, name: str) -> tuple[np.ndarray, int]:
    """Labels through the shared validator (`check_features_labels`): 0..C−1 [N] and C.

    The features are validated here without the float64 copy that validator makes, so it gets
    an [N, 1] placeholder and only its label checks apply (length N, ≥ 2 classes, ≥ 2 samples
    per class).
    """
    _, y, num_classes = check_features_labels(np.zeros((n, 1)), labels, name=name)
    return y, num_classes


def raise_if_not_finite(features: np.ndarray, *, name: str, arg: str = "features") -> None:
    """Raise the shared NaN/inf message, counting bad rows block by block (no N × D copy).

    Raises:
        ValueError: some entry is NaN or inf.
    """
    rows = block_size(*features.shape)
    bad = sum(int((~np.isfinite(features[i:i + rows])).any(axis=1).sum())
              for i in range(0, len(features), rows))
    if bad:
        raise ValueError(f"{name}: {arg} contain NaN or inf ({bad} row(s))")


def _onehot_rows(labels: np.ndarray, num_classes: int) -> sp.csr_matrix:
    """Sparse [C, n] indicator, so that `onehot @ block` sums rows per class in O(n·D)."""
    n = len(labels)
    return sp.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(num_classes, n))


def gram_pass(features: np.ndarray, *, center: np.ndarray | None = None,
              rows: np.ndarray | None = None, labels: np.ndarray | None = None,
              num_classes: int = 0, targets: np.ndarray | None = None,
              norm4: bool = False) -> GramPass:
    """Accumulate Σ_i g_i g_iᵀ (and optionally class sums, Gᵀ·targets, Σ_i ‖g_i‖⁴) in float64.

    g_i = f_i − center (or f_i), over all rows or over the index array `rows`. Inputs are never
    modified; each block is cast to float64 (a copy only when needed).

    Args:
        features: [N, D] array of any real dtype.
        center: [D] vector subtracted from every row, or None.
        rows: indices of the rows to use, or None for all.
        labels: [len(rows) or N] ints in 0..num_classes-1 to sum the rows per class.
        num_classes: C, with `labels`.
        targets: [len(rows) or N, K] float64 matrix for the cross product Gᵀ·targets.
        norm4: also return Σ_i ‖g_i‖⁴ (Ledoit–Wolf).

    Shapes: gram [D, D], class_sums [C, D], cross [D, K].
    """
    d = features.shape[1]
    n = len(features) if rows is None else len(rows)
    step = block_size(n, d)
    gram = np.zeros((d, d), order="F")                                     # [D, D]
    sums = np.zeros((num_classes, d)) if labels is not None else None      # [C, D]
    cross = np.zeros((d, targets.shape[1])) if targets is not None else None  # [D, K]
    total4 = 0.0
    for start in range(0, n, step):
        part = slice(start, min(start + step, n))
        block = features[part] if rows is None else features[rows[part]]
        block = np.asarray(block, dtype=np.float64)                        # [b, D]
        if center is not None:
            block = block - center
        block = np.ascontiguousarray(block)
        # dsyrk on blockᵀ (Fortran-ordered view of a C-ordered block: no copy) adds block ᵀ block
        # into the upper triangle of `gram` in place: half the flops, no D × D temporary.
        gram = blas.dsyrk(1.0, block.T, beta=1.0, c=gram, trans=0, lower=0, overwrite_c=1)
        if sums is not None:
            sums += _onehot_rows(labels[part], num_classes) @ block
        if cross is not None:
            cross += block.T @ targets[part]
        if norm4:
            total4 += float(np.square(np.einsum("ij,ij->i", block, block)).sum())
    return GramPass(symmetrize_upper(gram), sums, cross, total4 if norm4 else None)


def row_gram(features: np.ndarray, *, center: np.ndarray | None = None) -> np.ndarray:
    """Σ over column blocks of g gᵀ = G Gᵀ [N, N] in float64, G = features − center.

    Used when D > N (and for LogME's FFᵀ); memory is one [N, b] float64 column block.
    """
    n, d = features.shape
    step = block_size(d, n)
    gram = np.zeros((n, n), order="F")                                     # [N, N]
    for start in range(0, d, step):
        block = np.asarray(features[:, start:start + step], dtype=np.float64)  # [N, b]
        if center is not None:
            block = block - center[start:start + step]
        block = np.asfortranarray(block)
        gram = blas.dsyrk(1.0, block, beta=1.0, c=gram, trans=0, lower=0, overwrite_c=1)
    return symmetrize_upper(gram)


def column_mean(features: np.ndarray) -> np.ndarray:
    """Column means [D] accumulated in float64 (numpy's pairwise float64 reduction)."""
    return features.mean(axis=0, dtype=np.float64)


def gram_not_finite(gram: np.ndarray) -> bool:
    """True if the Gram diagonal (sums of squares) is NaN or inf: some input entry was."""
    return not np.isfinite(np.diagonal(gram)).all()
