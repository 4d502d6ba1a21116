"""NCTI: neural-collapse transferability index (per-model components + per-dataset combine)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from tpred.errors import UndefinedMetricWarning
from tpred.scores._checks import check_features_labels

_PCA_DIMS = 64             # the reference's PCA size
_TOP_VARIANCES = 32        # explained variances summed for the shrinkage
_MIN_SHRINKAGE = 1e-10     # at this floor the reference switches to the unshrunk SVD solver
COMPONENTS = ("seli", "ncc", "vc")


def ncti_components(features, labels, random_state=None) -> tuple[float, float, float]:
    r"""Per-model terms of NCTI (Wang et al., "How Far Pre-trained Models Are from Neural
    Collapse on the Target Dataset Informs their Transferability", ICCV 2023).

    `arXiv:2308.03245 <https://arxiv.org/abs/2308.03245>`_. As the authors' code:

    1. :math:`X_{64}` = ``PCA(n_components=64)`` (sklearn defaults) of the features;
    2. :math:`s` = sum of the 32 largest explained (unbiased) variances,
       :math:`\tau = \max(e^{-s}, 10^{-10})`;
    3. ``LinearDiscriminantAnalysis(solver='svd')`` if :math:`\tau = 10^{-10}`, otherwise
       ``solver='eigen', shrinkage=tau``, fitted on :math:`(X_{64}, y)`;
    4. **seli** = nuclear norm of the column-centred LDA projection of :math:`X_{64}`
       (within-class variability collapse);
    5. **ncc** = mean LDA posterior of the true class (nearest-centre classifier);
    6. **vc** = :math:`\log\sum_c \|P_c\|_*`, :math:`P_c` the posterior rows of class c
       (simplex-ETF geometry).

    The score needs the pool of candidate models: see :func:`ncti_combine`.

    Randomness: sklearn's ``auto`` PCA solver is randomized for large inputs (e.g. N = 5000,
    D = 2048); ``random_state`` seeds it (int, ``RandomState`` or None = numpy's global RNG,
    as in the reference).

    Deviation: the reference requires N >= 64 and D >= 64 (sklearn raises otherwise); tpred
    uses ``min(N, D, 64)`` PCA components instead, and sums at most that many variances, so
    small inputs get a score rather than an error. Inputs with N, D >= 64 are unaffected.

    Args:
        features: [N, D] target features (any float dtype; computed in float64).
        labels: [N] target labels, any hashable values (re-encoded to 0..C-1).
        random_state: seed of the PCA.

    Shapes:
        features [N, D]; labels [N]. Returns (seli, ncc, vc) as Python floats.

    Raises:
        ValueError: invalid inputs (see ``check_features_labels``) or constant features
            (the LDA is undefined without variance).
    """
    f, y, num_classes = check_features_labels(features, labels, name="ncti_components")
    if np.ptp(f, axis=0).max() == 0:
        raise ValueError("ncti_components: the features are constant; the LDA needs variance")
    k = min(_PCA_DIMS, *f.shape)
    pca = PCA(n_components=k, random_state=random_state)
    reduced = pca.fit_transform(f)                                           # [N, k]
    top = np.sort(pca.explained_variance_)[::-1][:_TOP_VARIANCES].sum()      # unbiased (N - 1)
    shrinkage = max(np.exp(-top), _MIN_SHRINKAGE)
    if shrinkage == _MIN_SHRINKAGE:
        lda = LinearDiscriminantAnalysis(solver="svd")
    else:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage)
    projected = lda.fit_transform(reduced, y)                                # [N, <= C-1]
    projected = projected - projected.mean(axis=0)
    seli = np.linalg.norm(projected, ord="nuc")
    proba = lda.predict_proba(reduced)                                       # [N, C]
    ncc = proba[np.arange(len(y)), y].mean()
    vc = np.log(sum(np.linalg.norm(proba[y == c], ord="nuc") for c in range(num_classes)))
    return float(seli), float(ncc), float(vc)


def ncti_combine(components: Sequence[Sequence[float]]) -> list[float]:
    r"""NCTI of every candidate model of one dataset: min-max normalise each term over the pool,
    then :math:`\widehat{ncc} + \widehat{seli} - \widehat{vc}` (higher is better).

    A term equal for every model carries no information about the ranking; the reference
    divides 0 by 0 there (NaN for every model). tpred gives that term 0 for every model and
    warns with :class:`~tpred.errors.UndefinedMetricWarning`, so the ranking is decided by
    the other terms.

    Args:
        components: one ``(seli, ncc, vc)`` triple per model, from :func:`ncti_components`,
            all computed on the same dataset.

    Shapes:
        components [M, 3] with M >= 2. Returns M Python floats, in the input order.

    Raises:
        ValueError: fewer than 2 models, not triples, or a non-finite term.
    """
    table = np.asarray(components, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != len(COMPONENTS):
        raise ValueError(f"ncti_combine: expected one (seli, ncc, vc) triple per model, shape "
                         f"[M, 3]; got shape {table.shape}")
    if len(table) < 2:
        raise ValueError(f"ncti_combine: NCTI normalises over a pool of candidate models and "
                         f"needs at least 2; got {len(table)}")
    if not np.isfinite(table).all():
        row = int(np.flatnonzero(~np.isfinite(table).all(axis=1))[0])
        raise ValueError(f"ncti_combine: model {row} has a non-finite term {table[row].tolist()}")
    low, span = table.min(axis=0), np.ptp(table, axis=0)                     # [3]
    for name in (name for name, flat in zip(COMPONENTS, span == 0, strict=True) if flat):
        warnings.warn(f"ncti_combine: term {name!r} is equal for all {len(table)} models, so "
                      f"its min-max normalisation is undefined; it contributes 0",
                      UndefinedMetricWarning, stacklevel=2)
    scaled = np.divide(table - low, span, out=np.zeros_like(table), where=span > 0)  # [M, 3]
    seli, ncc, vc = scaled.T
    return (ncc + seli - vc).tolist()
