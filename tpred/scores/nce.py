"""NCE: negative conditional entropy of target labels given source labels (metrics.md §3).

Tran, Nguyen, Hassner, "Transferability and Hardness of Supervised Classification Tasks",
ICCV 2019, https://arxiv.org/abs/1908.08142. Matches thuml / TLlib.
"""

from __future__ import annotations

import numpy as np

from tpred.scores._gram import check_labels


def nce(source_labels, labels) -> float:
    r"""NCE = −H(Y | Z) from empirical counts; in [−log C, 0], higher is better.

    P(y, z) = #{i: y_i = y, z_i = z} / N, P(y | z) = P(y, z) / P(z) over the source labels z
    that occur, and NCE = Σ_{y,z} P(y, z) log P(y | z) (natural log, 0·log 0 = 0). It is 0
    exactly when the target label is a function of the source label.

    Args:
        source_labels: [N] hard predictions of the source head (argmax of θ); any hashable
            values, not every source class needs to occur.
        labels: [N] target labels, any hashable values.

    Returns:
        A Python float.

    Raises:
        ValueError: source_labels not 1-D or empty, NaN source labels, length mismatch,
            fewer than 2 target classes, a one-sample target class.
    """
    z = np.asarray(source_labels)
    if z.ndim != 1 or len(z) == 0:
        raise ValueError(f"nce: source_labels must be 1-D [N] and non-empty, got shape {z.shape}")
    if z.dtype.kind == "f" and not np.isfinite(z).all():
        raise ValueError("nce: source_labels contain NaN or inf")
    y, _ = check_labels(labels, len(z), name="nce")
    _, z_idx = np.unique(z, return_inverse=True)
    num_source = int(z_idx.max()) + 1
    pairs, joint = np.unique(y * num_source + z_idx.ravel(), return_counts=True)  # nonzero cells
    per_source = np.bincount(z_idx.ravel(), minlength=num_source)          # [Cs] n_z
    n = len(z)
    joint = joint.astype(np.float64)
    return float((joint / n * np.log(joint / per_source[pairs % num_source])).sum())
