"""PARC: pairwise annotation representation comparison."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy.stats import rankdata
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from tpred.errors import UndefinedMetricWarning
from tpred.scores._checks import check_features_labels

_PCA_SEED = 1919  # the authors' fixed seed; with iterated_power=1 the PCA is cheap and approximate
# A component whose singular value is below this fraction of the largest is float64 round-off of
# a rank-deficient matrix (relative round-off is ~1e-15; float32 data is resolved to ~1e-7).
_NOISE_RATIO = 1e-10


def _stratified_subsample(y: np.ndarray, size: int, random_state) -> np.ndarray:
    """Sorted indices of `size` samples: each class its share (largest remainder), at least 2."""
    rng = np.random.default_rng(random_state)
    counts = np.bincount(y)                                                  # [C]
    quota = size * counts / len(y)
    take = np.minimum(np.maximum(np.floor(quota).astype(int), 2), counts)
    while (short := size - take.sum()) != 0:  # at most C rounds: settle the rounding
        if short > 0:  # one more place for the class furthest below its quota, if it has room
            c = int(np.argmax(np.where(take < counts, quota - take, -np.inf)))
            take[c] += 1
        else:  # the at-least-two rule overshot: trim the class furthest above its quota
            c = int(np.argmax(np.where(take > 2, take - quota, -np.inf)))
            take[c] -= 1
    picked = [rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in enumerate(take)]
    return np.sort(np.concatenate(picked))


def _undefined(reason: str) -> float:
    warnings.warn(f"parc: {reason}, so the rank correlation is undefined; returning NaN",
                  UndefinedMetricWarning, stacklevel=3)
    return float("nan")


def parc(features, labels, n_dims: int = 32, max_samples: int | None = None,
         random_state=None) -> float:
    r"""PARC (Bolya et al., "Scalable Diverse Model Selection for Accessible Transfer
    Learning", NeurIPS 2021), higher is better, in [-100, 100].

    `arXiv:2111.06977 <https://arxiv.org/abs/2111.06977>`_. As the authors' code (and SFDA's
    copy, for N <= 15000):

    1. ``PCA(n_dims, svd_solver='randomized', random_state=1919, iterated_power=1)`` — a cheap,
       approximate PCA (an exact one changes the value by ~1e-3), deterministic for a given
       scikit-learn version;
    2. ``StandardScaler`` on the reduced columns;
    3. :math:`R_f = 1 - \mathrm{corr}` between samples (rows), :math:`R_y` likewise for one-hot
       labels (0 within a class, :math:`C/(C-1)` across);
    4. PARC = 100 x Spearman rank correlation of the strict upper triangles (ties averaged).

    Because :math:`R_y` takes only two values its ranks are an increasing affine function of
    the indicator "different class", so step 4 is the Pearson correlation of the ranks of
    :math:`R_f` with that indicator (the same number, one sort instead of two).

    ``n_dims`` is capped at ``min(N, D)``: the references cap at N only, and scikit-learn raises
    when D < n_dims, so for D < 32 tpred computes what the reference would with
    ``n_dims = D`` rather than failing. Time O(N·D·n_dims + N²·n_dims), memory O(N²): for
    large N pass ``max_samples``.

    Deviation for rank-deficient features: components whose singular value is below 1e-10 of
    the largest are float64 round-off (e.g. the N-th component when n_dims is capped at N, or
    every component beyond C - 1 for class-indicator features); the references standardise them
    to unit variance, so the score is then driven by round-off noise. tpred drops them before
    standardising. Full-rank features (the usual case, N and D above n_dims) are unaffected.

    Undefined cases return NaN with an :class:`~tpred.errors.UndefinedMetricWarning`: constant
    features, fewer than 2 non-noise components (e.g. two classes of constant rows), a constant
    reduced row, or all pairs equally dissimilar.

    PARC reaches 100 only if the dissimilarities are tied like :math:`R_y` (all within-class
    pairs equal, all across-class pairs equal). Features that separate the classes perfectly
    but rank pairs without ties give :math:`100\sqrt{3 n_0 n_1 / (n^2 - 1)}` (n = N(N-1)/2
    pairs, :math:`n_0` of them within a class, :math:`n_1` across), about 50 for 10 balanced
    classes. Class indicators do not give 100 either: after the PCA rotation and the row
    centring of the correlation their across-class dissimilarities differ between class pairs.

    Args:
        features: [N, D] target features (any float dtype; computed in float64).
        labels: [N] target labels, any hashable values (re-encoded to 0..C-1).
        n_dims: PCA dimensions (the reference's 32), at least 2.
        max_samples: if set and N is larger, score a stratified random subsample of this many
            samples (each class keeps its share, at least two samples). Off by default, as in
            the authors' code; not part of any reference.
        random_state: seed of that subsample (int, ``np.random.Generator`` or None); the PCA
            seed is always 1919.

    Shapes:
        features [N, D]; labels [N]. Returns a Python float.

    Raises:
        ValueError: invalid inputs (see ``check_features_labels``), ``n_dims < 2``, D < 2
            (a correlation between rows needs two columns), or ``max_samples`` smaller than
            twice the number of classes.
    """
    f, y, num_classes = check_features_labels(features, labels, name="parc")
    if not isinstance(n_dims, numbers.Integral) or isinstance(n_dims, bool) or n_dims < 2:
        raise ValueError(f"The 'n_dims' parameter of parc must be an int >= 2. "
                         f"Got {n_dims!r} instead.")
    if f.shape[1] < 2:
        raise ValueError(f"parc: features need at least 2 dimensions to correlate samples, "
                         f"got shape {f.shape}")
    if max_samples is not None:
        if (not isinstance(max_samples, numbers.Integral) or isinstance(max_samples, bool)
                or max_samples < 2 * num_classes):
            raise ValueError(f"The 'max_samples' parameter of parc must be None or an int >= "
                             f"2 * the number of classes ({2 * num_classes}). Got "
                             f"{max_samples!r} instead.")
        if len(f) > max_samples:
            keep = _stratified_subsample(y, int(max_samples), random_state)
            f, y = f[keep], y[keep]
    n = len(f)
    k = min(int(n_dims), n, f.shape[1])
    if np.ptp(f, axis=0).max() == 0:
        return _undefined("the features are constant")
    pca = PCA(n_components=k, svd_solver="randomized", random_state=_PCA_SEED, iterated_power=1)
    reduced = pca.fit_transform(f)                                           # [N, k]
    signal = pca.singular_values_ > _NOISE_RATIO * pca.singular_values_[0]
    if signal.sum() < 2:
        return _undefined(f"the features span {signal.sum()} dimension(s) after centring")
    reduced = StandardScaler().fit_transform(reduced[:, signal])             # [N, k']
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(reduced)                                          # [N, N]
    iu = np.triu_indices(n, k=1)
    dissim = 1.0 - corr[iu]                                                  # [N(N-1)/2]
    del corr
    if not np.isfinite(dissim).all():
        return _undefined("a sample's reduced features are constant")
    if np.ptp(dissim) == 0:
        return _undefined("all pairs of samples are equally correlated")
    across = (y[iu[0]] != y[iu[1]]).astype(np.float64)                       # ranks of R_y
    ranks = rankdata(dissim)                                                 # average ties
    return float(100.0 * np.corrcoef(ranks, across)[0, 1])
