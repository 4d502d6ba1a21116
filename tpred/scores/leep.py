"""LEEP: log expected empirical prediction (metrics.md §2; thuml / TLlib's definition).

Nguyen, Hassner, Seeger, Archambeau, "LEEP: A New Measure to Evaluate Transferability of Learned
Representations", ICML 2020, https://arxiv.org/abs/2002.12462.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tpred.scores._checks import check_features_labels
from tpred.scores._gram import check_matrix, raise_if_not_finite

ROW_SUM_TOL = 1e-3  # |Σ_z θ_z(x_i) − 1| allowed: float32/float16 softmax rounding, not logits


def check_probs(probs, labels, *, name: str):
    """Validate source-class probabilities and labels.

    Returns:
        (probs float64 [N, Cs] copy, labels 0..C−1 [N], C)

    Raises:
        ValueError: not 2-D / empty / NaN / inf / length mismatch (as every score), a negative
            entry, or a row whose sum differs from 1 by more than ROW_SUM_TOL.
    """
    p = check_matrix(probs, name=name, arg="probs")
    raise_if_not_finite(p, name=name, arg="probs")
    _, y, num_classes = check_features_labels(np.zeros((len(p), 1)), labels, name=name)
    p = p.astype(np.float64)                                               # [N, Cs] copy
    if (neg := p < 0).any():
        rows = int(neg.any(axis=1).sum())
        raise ValueError(f"{name}: probs must be non-negative probabilities (softmax outputs), "
                         f"got negative entries in {rows} row(s), e.g. {p[neg][0]!r}")
    sums = p.sum(axis=1)
    if (off := np.abs(sums - 1.0) > ROW_SUM_TOL).any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"{name}: every row of probs must sum to 1 (±{ROW_SUM_TOL}); row {i} "
                         f"sums to {sums[i]!r} ({int(off.sum())} such row(s)); pass softmax "
                         f"probabilities, not logits")
    return p, y, num_classes


def leep(probs, labels) -> float:
    r"""LEEP (Nguyen et al., ICML 2020): mean log expected empirical prediction, ≤ 0, higher better.

    With θ(x_i) the source head's probabilities, P(y, z) = (1/N) Σ_{i: y_i = y} θ_z(x_i),
    P(y | z) = P(y, z) / P(z) and p_i = Σ_z P(y_i | z) θ_z(x_i), LEEP = (1/N) Σ_i log p_i.
    A source class with θ_z = 0 for every sample (softmax underflow) contributes 0 to every p_i
    and is skipped (the references return NaN there). Cost O(N·Cs): the joint table is a sparse
    one-hot product and p_i a row-wise dot product.

    Shapes: probs [N, Cs] rows summing to 1 (not logits); labels [N], any hashable values.
    Returns a Python float.

    Raises:
        ValueError: see `check_probs`; fewer than 2 target classes, a one-sample class.
    """
    p, y, num_classes = check_probs(probs, labels, name="leep")
    n = len(p)
    onehot = sp.csr_matrix((np.full(n, 1.0 / n), (y, np.arange(n))), shape=(num_classes, n))
    joint = np.asarray(onehot @ p)                                         # [C, Cs] P(y, z)
    marginal = joint.sum(axis=0)                                           # [Cs] P(z)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint),
                            where=marginal > 0)                            # [C, Cs] P(y | z)
    expected = np.einsum("ij,ij->i", conditional[y], p)                    # [N] p_i
    return float(np.log(expected).mean())
