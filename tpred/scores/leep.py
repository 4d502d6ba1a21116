"""LEEP: log expected empirical prediction (metrics.md §2; thuml / TLlib's definition).

Nguyen, Hassner, Seeger, Archambeau, "LEEP: A New Measure to Evaluate Transferability of Learned
Representations", ICML 2020, https://arxiv.org/abs/2002.12462.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tpred.scores._gram import block_size, check_labels, check_matrix

ROW_SUM_TOL = 1e-3  # |Σ_z θ_z(x_i) − 1| allowed: float32/float16 softmax rounding, not logits


def _blocks(n: int, width: int):
    step = block_size(n, width)
    return (slice(i, min(i + step, n)) for i in range(0, n, step))


def _check_block(p: np.ndarray, start: int, *, name: str) -> None:
    """Raise if a float64 block of probs has NaN/inf, negatives, or rows not summing to 1."""
    if not np.isfinite(p).all():
        i = start + int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise ValueError(f"{name}: probs contain NaN or inf (row {i})")
    if (p < 0).any():
        i = start + int(np.flatnonzero((p < 0).any(axis=1))[0])
        raise ValueError(f"{name}: probs must be non-negative probabilities (softmax outputs); "
                         f"row {i} has a negative entry")
    sums = p.sum(axis=1)
    if (off := np.abs(sums - 1.0) > ROW_SUM_TOL).any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"{name}: every row of probs must sum to 1 (±{ROW_SUM_TOL}); row "
                         f"{start + i} sums to {sums[i]!r}; pass softmax probabilities, "
                         f"not logits")


def leep(probs, labels) -> float:
    r"""LEEP (Nguyen et al., ICML 2020): mean log expected empirical prediction, ≤ 0, higher better.

    With θ(x_i) the source head's probabilities, P(y, z) = (1/N) Σ_{i: y_i = y} θ_z(x_i),
    P(y | z) = P(y, z) / P(z) and p_i = Σ_z P(y_i | z) θ_z(x_i), LEEP = (1/N) Σ_i log p_i.
    A source class with θ_z = 0 for every sample (softmax underflow) contributes 0 to every p_i
    and is skipped (the references return NaN there). Cost O(N·Cs) in two passes over blocks of
    rows (float64 per block, so float32 probs are never copied whole): the joint table is a
    sparse one-hot product, p_i a row-wise dot product.

    Shapes: probs [N, Cs], non-negative, each row summing to 1 within 1e-3 (softmax outputs, not
    logits; never modified); labels [N], any hashable values. Returns a Python float.

    Raises:
        ValueError: probs not 2-D / empty / NaN / inf / negative / rows not summing to 1; labels
            of the wrong length, fewer than 2 classes, or a one-sample class.
    """
    name = "leep"
    p = check_matrix(probs, name=name, arg="probs")
    y, num_classes = check_labels(labels, len(p), name=name)
    n = len(p)
    joint = np.zeros((num_classes, p.shape[1]))                            # [C, Cs] N·P(y, z)
    for part in _blocks(*p.shape):
        block = np.asarray(p[part], dtype=np.float64)                      # [b, Cs]
        _check_block(block, part.start, name=name)
        onehot = sp.csr_matrix((np.ones(len(block)), (y[part], np.arange(len(block)))),
                               shape=(num_classes, len(block)))
        joint += onehot @ block
    joint /= n
    marginal = joint.sum(axis=0)                                           # [Cs] P(z)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint),
                            where=marginal > 0)                            # [C, Cs] P(y | z)
    log_expected = np.empty(n)                                             # [N] log p_i
    for part in _blocks(*p.shape):
        block = np.asarray(p[part], dtype=np.float64)
        log_expected[part] = np.log(np.einsum("ij,ij->i", conditional[y[part]], block))
    return float(log_expected.mean())
