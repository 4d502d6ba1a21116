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
LABEL_RDMS = ("reference", "exact")


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


def _label_ranks(y: np.ndarray, num_classes: int, upper: np.ndarray, label_rdm: str):
    """R_y over the pairs selected by `upper` as (value index per pair, average rank per value).

    R_y[i, j] depends only on (y_i, y_j), so it is looked up in its C x C table, and the ranks
    come from counting pairs per distinct value: no sort of the N(N-1)/2 pairs.

    Shapes: y [N]; upper [N, N] bool. Returns pair [N(N-1)/2] (small ints), average [V].
    """
    if label_rdm == "reference":
        # what the references compute: np.corrcoef of one-hot rows. Row i of class c gives the
        # same floats as row c of the identity, so the C x C table reproduces the N x N one.
        with np.errstate(invalid="ignore", divide="ignore"):
            table = 1.0 - np.corrcoef(np.eye(num_classes))                 # [C, C]
    else:
        table = np.full((num_classes, num_classes), num_classes / (num_classes - 1))
        np.fill_diagonal(table, 0.0)
    values, index = np.unique(table, return_inverse=True)
    index = index.reshape(table.shape).astype(np.min_scalar_type(len(values)))
    pair = index[y[:, None], y[None, :]][upper]                              # [N(N-1)/2]
    counts = np.bincount(pair, minlength=len(values))                        # [V]
    return pair, np.cumsum(counts) - (counts - 1) / 2.0                      # 1-based, ties avg


def parc(features, labels, n_dims: int = 32, max_samples: int | None = None,
         random_state=None, *, label_rdm: str = "reference") -> float:
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

    Round-off in the references' :math:`R_y` (``label_rdm``): mathematically :math:`R_y` has
    two values, but the references compute it as ``1 - np.corrcoef(one_hot)``, which gives
    within-class values 0 or 2.2e-16 and across-class values C/(C-1) up to an ulp, depending on
    the class (e.g. C = 3: three distinct values; C = 4: two; C = 7: the matrix is not even
    exactly symmetric; which entries carry the extra ulp is up to the numpy build, for the
    references as for tpred; some builds, e.g. numpy 2.4 with OpenBLAS 0.3.31, even round the N
    x N product by position, so that two pairs of the same two classes differ by an ulp: tpred
    uses the C x C table of ``1 - np.corrcoef(np.eye(C))``, the references' values wherever the
    build rounds each class pair alike). Spearman ranks those round-off differences, which
    splits the tied groups and moves the score a lot: on random features with 37 classes, 2.14
    (reference) against 8.75 (exact); with 3 classes 6.95 against 7.56; with 4 classes they
    agree. The default ``'reference'`` reproduces the references' numbers (the published ones
    and what metrics.md asks to match); ``'exact'`` uses the two-valued :math:`R_y` — invariant
    to how the classes are numbered and to sample order, which the reference form is not when
    the table is asymmetric. Either way the ranks of :math:`R_y` come from its C x C table, so
    only :math:`R_f`'s N(N-1)/2 values are sorted.

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

    With the exact :math:`R_y`, PARC reaches 100 only if the dissimilarities are tied like it
    (all within-class pairs equal, all across-class pairs equal). Features that separate the
    classes perfectly but rank pairs without ties give
    :math:`100\sqrt{3 n_0 n_1 / (n^2 - 1)}` (n = N(N-1)/2 pairs, :math:`n_0` of them within a
    class, :math:`n_1` across), about 50 for 10 balanced classes. Class indicators do not give
    100 either: their within-class dissimilarities are round-off (untied), and after the PCA
    rotation and the row centring of the correlation their across-class ones differ between
    class pairs; they score a little above that bound (49.8 for 10 classes of 10).

    Args:
        features: [N, D] target features (any float dtype; computed in float64).
        labels: [N] target labels, any hashable values (re-encoded to 0..C-1).
        n_dims: PCA dimensions (the reference's 32), at least 2.
        max_samples: if set and N is larger, score a stratified random subsample of this many
            samples (each class keeps its share, at least two samples). Off by default, as in
            the authors' code; not part of any reference.
        random_state: seed of that subsample (int, ``np.random.Generator`` or None); the PCA
            seed is always 1919.
        label_rdm: ``'reference'`` (default) or ``'exact'``, see above.

    Shapes:
        features [N, D]; labels [N]. Returns a Python float.

    Raises:
        ValueError: invalid inputs (see ``check_features_labels``), ``n_dims < 2``, D < 2
            (a correlation between rows needs two columns), ``max_samples`` smaller than
            twice the number of classes, or an unknown ``label_rdm``.
    """
    if label_rdm not in LABEL_RDMS:
        raise ValueError(f"The 'label_rdm' parameter of parc must be one of {LABEL_RDMS}. "
                         f"Got {label_rdm!r} instead.")
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
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)                        # strict upper
    dissim = 1.0 - corr[upper]                                               # [N(N-1)/2]
    del corr
    if not np.isfinite(dissim).all():
        return _undefined("a sample's reduced features are constant")
    if np.ptp(dissim) == 0:
        return _undefined("all pairs of samples are equally correlated")
    pair, label_rank = _label_ranks(y, num_classes, upper, label_rdm)        # [P], [V]
    del upper
    rank = rankdata(dissim)                                                  # [P] average ties
    del dissim
    # Spearman = Pearson of the ranks; the label ranks take V values, so sum per value
    rank -= rank.mean()
    counts = np.bincount(pair, minlength=len(label_rank))                    # [V]
    label_rank = label_rank - counts @ label_rank / len(pair)                # centred
    cov = np.bincount(pair, weights=rank, minlength=len(label_rank)) @ label_rank
    return float(100.0 * cov / np.sqrt((rank @ rank) * (counts @ label_rank**2)))
