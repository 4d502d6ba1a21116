"""PARC: the rank-correlation shortcut against the definition, closed forms, edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from tpred.errors import UndefinedMetricWarning
from tpred.scores.parc import _stratified_subsample, parc


def _blobs(seed=0, n=60, d=40, classes=3, sep=0.5):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return rng.normal(size=(n, d)) + sep * y[:, None], y


def _feature_rdm(f, iu):
    """metrics.md's R_f over the pairs `iu`: PCA to 32 (the references' settings), standardised
    columns, 1 - correlation between samples."""
    reduced = StandardScaler().fit_transform(
        PCA(n_components=32, svd_solver="randomized", random_state=1919,
            iterated_power=1).fit_transform(f))
    return (1 - np.corrcoef(reduced))[iu]


def _perfect_bound(labels):
    """100 * Spearman of untied dissimilarities that put every within-class pair first."""
    labels = np.asarray(labels)
    n = len(labels) * (len(labels) - 1) // 2
    within = sum(k * (k - 1) // 2 for k in np.bincount(labels))
    return 100 * np.sqrt(3 * within * (n - within) / (n * n - 1))


@pytest.mark.parametrize("classes", [3, 4, 7])
def test_matches_the_definition_with_full_matrices(classes):
    """metrics.md's steps with N x N matrices; 'reference' keeps np.corrcoef's round-off in
    R_y (C = 3 and 7 give more than two distinct values), 'exact' the two values."""
    f, y = _blobs(n=70, classes=classes)
    iu = np.triu_indices(len(y), k=1)
    r_f = _feature_rdm(f, iu)
    table = 1 - np.corrcoef(np.eye(classes))                  # the C x C round-off, [C, C]
    r_y = table[y[:, None], y[None, :]][iu]
    assert parc(f, y) == pytest.approx(100 * spearmanr(r_f, r_y).statistic, rel=1e-12)
    exact = spearmanr(r_f, y[iu[0]] != y[iu[1]]).statistic
    assert parc(f, y, label_rdm="exact") == pytest.approx(100 * exact, rel=1e-12)


@pytest.mark.parametrize("classes", [3, 4, 7])
def test_reference_rdm_matches_the_n_by_n_corrcoef_where_the_build_is_position_free(classes):
    """The references' R_y is the N x N 1 - np.corrcoef(one_hot). Where the BLAS gives every
    pair of a class pair the same floats, the C x C table reproduces it exactly; some builds
    (numpy 2.4's OpenBLAS 0.3.31) round by position in the N x N product, which no table can
    reproduce (parc's docstring)."""
    f, y = _blobs(n=70, classes=classes)
    full = 1 - np.corrcoef(np.eye(classes)[y])                 # [N, N]
    table = (1 - np.corrcoef(np.eye(classes)))[y[:, None], y[None, :]]
    if not np.array_equal(full, table):
        pytest.skip(f"this numpy build's N x N corrcoef rounds by position "
                    f"({int((full != table).sum())} of {full.size} entries differ by an ulp)")
    iu = np.triu_indices(len(y), k=1)
    expected = spearmanr(_feature_rdm(f, iu), full[iu]).statistic
    assert parc(f, y) == pytest.approx(100 * expected, rel=1e-12)


def test_perfectly_separated_untied_pairs_give_the_closed_form():
    # tight clusters on the 5 axes, C - 1 = 4 components: every within-class pair is more
    # correlated than every across-class pair, and no two dissimilarities tie
    y = np.repeat(np.arange(5), 8)
    f = 3 * np.eye(5)[y] + 1e-3 * np.random.default_rng(0).normal(size=(40, 5))
    assert parc(f, y, n_dims=4, label_rdm="exact") == pytest.approx(_perfect_bound(y), rel=1e-12)


def test_class_indicators_do_not_score_100():
    # every within pair is ranked below every across pair, but the within pairs differ by
    # round-off and the across pairs differ by class pair: at least the untied bound, not 100
    y = np.repeat(np.arange(10), 10)
    value = parc(np.eye(10)[y], y, label_rdm="exact")
    assert _perfect_bound(y) - 1e-9 <= value < 99.0


@pytest.mark.parametrize("label_rdm", ["reference", "exact"])
def test_invariant_to_sample_order_and_label_names(label_rdm):
    f, y = _blobs()
    value = parc(f, y, label_rdm=label_rdm)
    assert -100.0 <= value <= 100.0 and isinstance(value, float)
    perm = np.random.default_rng(1).permutation(len(y))
    assert parc(f[perm], y[perm], label_rdm=label_rdm) == pytest.approx(value, rel=1e-9)
    assert parc(f, np.array(["u", "v", "w"])[y], label_rdm=label_rdm) == value
    assert parc(f, 2 * y, label_rdm=label_rdm) == value  # re-encoded in sorted order


def test_exact_label_rdm_ignores_class_numbering():
    f, y = _blobs(classes=7, n=70)
    value = parc(f, y, label_rdm="exact")
    assert parc(f, (y + 3) % 7, label_rdm="exact") == pytest.approx(value, rel=1e-12)


def test_dtype_and_no_mutation():
    f, y = _blobs()
    f32 = f.astype(np.float32)
    copy = f32.copy()
    assert parc(f32, y) == parc(f32.astype(np.float64), y)
    np.testing.assert_array_equal(f32, copy)


def test_n_dims_capped_at_d_and_n():
    f, y = _blobs(d=5)
    assert parc(f, y) == parc(f, y, n_dims=5)  # D < 32: as the reference with n_dims = D
    f, y = _blobs(n=20, d=50)
    assert np.isfinite(parc(f, y))  # N < 32: n_dims = N, the round-off component dropped


def test_stratified_subsample_by_hand():
    y = np.repeat([0, 1], [10, 30])
    keep = _stratified_subsample(y, 8, random_state=0)
    np.testing.assert_array_equal(np.bincount(y[keep]), [2, 6])
    y = np.repeat([0, 1, 2], [2, 2, 96])  # quotas .2, .2, 9.6: every class keeps two
    keep = _stratified_subsample(y, 10, random_state=0)
    np.testing.assert_array_equal(np.bincount(y[keep]), [2, 2, 6])
    assert len(np.unique(keep)) == 10


def test_max_samples():
    f, y = _blobs(n=90)
    assert parc(f, y, max_samples=90) == parc(f, y)
    small = parc(f, y, max_samples=45, random_state=0)
    assert small == parc(f, y, max_samples=45, random_state=0)
    keep = _stratified_subsample(y, 45, random_state=0)
    assert small == parc(f[keep], y[keep])


@pytest.mark.parametrize("features, labels, reason", [
    (np.ones((8, 3)), np.arange(8) % 2, "the features are constant"),
    (np.eye(2)[np.arange(8) % 2], np.arange(8) % 2, "span 1 dimension"),
])
def test_undefined_cases_warn_and_return_nan(features, labels, reason):
    with pytest.warns(UndefinedMetricWarning, match=reason):
        assert np.isnan(parc(features, labels))


def test_bad_arguments_raise():
    f, y = _blobs()
    with pytest.raises(ValueError, match="'n_dims' parameter of parc must be an int >= 2"):
        parc(f, y, n_dims=1)
    with pytest.raises(ValueError, match="parc: features need at least 2 dimensions"):
        parc(f[:, :1], y)
    with pytest.raises(ValueError, match=r"'max_samples' parameter of parc .* \(6\)"):
        parc(f, y, max_samples=5)
    with pytest.raises(ValueError, match="'label_rdm' parameter of parc must be one of"):
        parc(f, y, label_rdm="approximate")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the valid call above warns about nothing
        parc(f, y, max_samples=6, random_state=0)
