"""GBC: Gaussian Bhattacharyya coefficient between the target classes."""

from __future__ import annotations

import numpy as np

from tpred.scores._checks import check_features_labels

_VAR_FLOOR = 1e-4            # per-dimension variance floor of the authors' code
_CHUNK_ELEMENTS = 1 << 22    # bound on the [rows, C, D] pairwise blocks (32 MiB of float64)
GAUSSIAN_TYPES = ("spherical", "diagonal")


def gbc(features, labels, gaussian_type: str = "spherical") -> float:
    r"""GBC (Pándy et al., "Transferability Estimation using Bhattacharyya Class Separability",
    CVPR 2022), higher is better, in :math:`[-C(C-1), 0]`.

    `arXiv:2111.12780 <https://arxiv.org/abs/2111.12780>`_. Each class c is a Gaussian with
    mean :math:`\mu_c` and per-dimension **biased** variance :math:`v_c` floored at
    :math:`10^{-4}` (the authors' TensorFlow code; the SA port's unbiased variance differs by
    0.2-2 %). ``'spherical'`` replaces :math:`v_c` by its mean over dimensions. For every
    ordered pair :math:`a \ne b`, with :math:`\bar s = (v_a + v_b)/2`,

    .. math::
        D_B(a,b) = \tfrac18 \sum_d \frac{(\mu_a-\mu_b)_d^2}{\bar s_d}
                 + \tfrac12\Big[\sum_d \log\bar s_d - \tfrac12\sum_d\log v_{a,d}
                 - \tfrac12\sum_d\log v_{b,d}\Big],
        \qquad GBC = -\sum_a\sum_{b\ne a} e^{-D_B(a,b)}.

    In the spherical case the bracket is the single scalar
    :math:`\log\bar s - \frac12\log s_a - \frac12\log s_b` (not D times it, as in both
    reference codes). Identical classes (e.g. constant features) give :math:`-C(C-1)`.

    Args:
        features: [N, D] target features (any float dtype; computed in float64).
        labels: [N] target labels, any hashable values (re-encoded to 0..C-1).
        gaussian_type: ``'spherical'`` (default) or ``'diagonal'``.

    Shapes:
        features [N, D]; labels [N]. Returns a Python float.

    Raises:
        ValueError: invalid inputs (see ``check_features_labels``) or an unknown
            ``gaussian_type``.
    """
    if gaussian_type not in GAUSSIAN_TYPES:
        raise ValueError(f"The 'gaussian_type' parameter of gbc must be one of {GAUSSIAN_TYPES}. "
                         f"Got {gaussian_type!r} instead.")
    f, y, num_classes = check_features_labels(features, labels, name="gbc")
    onehot = np.eye(num_classes)[y]                                          # [N, C]
    counts = onehot.sum(axis=0)[:, None]                                     # [C, 1]
    means = onehot.T @ f / counts                                            # [C, D]
    var = onehot.T @ (f - means[y]) ** 2 / counts                            # [C, D] biased
    var = np.maximum(var, _VAR_FLOOR)
    if gaussian_type == "spherical":
        var = var.mean(axis=1, keepdims=True)                                # [C, 1]
    log_var = np.log(var).sum(axis=1)                                        # [C]

    dist = np.empty((num_classes, num_classes))                              # D_B(a, b)
    rows = max(1, _CHUNK_ELEMENTS // (num_classes * f.shape[1]))
    for start in range(0, num_classes, rows):  # blocks of rows bound memory, not a class loop
        a = slice(start, start + rows)
        sq = (means[a, None, :] - means[None, :, :]) ** 2                    # [r, C, D]
        avg = (var[a, None, :] + var[None, :, :]) / 2                        # [r, C, D or 1]
        if gaussian_type == "spherical":
            mahalanobis = sq.sum(axis=2) / avg[..., 0]                       # [r, C]
        else:
            mahalanobis = (sq / avg).sum(axis=2)
        log_term = np.log(avg).sum(axis=2) - 0.5 * log_var[a, None] - 0.5 * log_var[None, :]
        dist[a] = mahalanobis / 8 + log_term / 2
    coeff = np.exp(-dist)                                                    # [C, C]
    np.fill_diagonal(coeff, 0.0)
    return float(-coeff.sum())
