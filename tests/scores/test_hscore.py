"""H-score and shrinkage H-score: closed forms, the straightforward definitions, Ledoit–Wolf
equality with scikit-learn, invariances, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage

from tpred.errors import SaturatedScoreWarning
from tpred.scores.hscore import hscore, hscore_shrinkage
from tpred.scores.hscore import ledoit_wolf_shrinkage as lw_ours


def blobs(n=150, d=8, classes=3, seed=0, shift=5.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    f = rng.normal(size=(n, d)) + rng.normal(size=(classes, d))[y] + shift  # off-centre
    return f, y


def class_mean_rows(f, y):
    g = np.empty_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    return g


def hscore_direct(f, y):
    """TLlib's definition written out: unbiased covariances, pinv with rcond 1e-15."""
    cov_f = np.cov(f, rowvar=False)
    cov_g = np.cov(class_mean_rows(f, y), rowvar=False)
    return np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g)


def hscore_shrinkage_direct(f, y):
    f = f - f.mean(axis=0)
    lw = LedoitWolf(assume_centered=False).fit(f)
    cov_g = np.cov(class_mean_rows(f, y), rowvar=False)
    return np.trace(np.linalg.pinv(lw.covariance_, rcond=1e-15)
                    @ ((1 - lw.shrinkage_) * cov_g))


@pytest.mark.parametrize("classes", [2, 3, 6])
def test_class_indicator_features_give_c_minus_one(classes):
    y = np.repeat(np.arange(classes), [3 + c for c in range(classes)])
    assert hscore(np.eye(classes)[y], y) == pytest.approx(classes - 1, rel=1e-12)


def test_features_independent_of_labels_give_nearly_zero():
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(4000, 3)), np.arange(4000) % 2
    assert 0 <= hscore(f, y) < 0.01


def test_constant_features_give_zero():
    y = np.arange(12) % 3
    assert hscore(np.full((12, 4), 2.5), y) == 0.0
    assert hscore_shrinkage(np.full((12, 4), 2.5), y) == 0.0


@pytest.mark.parametrize(("n", "d", "classes"), [(150, 8, 3), (300, 30, 5), (60, 80, 4)])
def test_matches_direct_definitions(n, d, classes):
    f, y = blobs(n, d, classes, seed=d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturatedScoreWarning)  # d = 80 >= n: saturated
        value = hscore(f, y)
    assert value == pytest.approx(hscore_direct(f, y), rel=1e-9)
    assert hscore_shrinkage(f, y) == pytest.approx(hscore_shrinkage_direct(f, y), rel=1e-9)


def test_wide_features_saturate_at_c_minus_one_with_a_warning():
    f, y = blobs(40, 100, 4, seed=1)
    with pytest.warns(SaturatedScoreWarning, match=r"hscore saturated: the centred features "
                                                   r"have rank 39 >= N - 1 = 39 \(D = 100 "
                                                   r"dimensions, N = 40 samples\), so H = C - 1 "
                                                   r"= 3 whatever the features; use "
                                                   r"hscore_shrinkage"):
        assert hscore(f, y) == pytest.approx(3.0, rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shrinkage variant is made for this case
        assert hscore_shrinkage(f, y) < 3.0 * 40 / 39


@pytest.mark.parametrize(("n", "d", "saturated"), [(12, 11, True), (12, 10, False),
                                                   (12, 40, True), (300, 8, False)])
def test_saturation_is_flagged_exactly_when_the_features_span_the_samples(n, d, saturated):
    rng = np.random.default_rng(n + d)
    y = np.arange(n) % 3
    f = rng.normal(size=(n, d))  # no label signal at all: only saturation gives C - 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = hscore(f, y)
    flagged = [w for w in caught if issubclass(w.category, SaturatedScoreWarning)]
    assert bool(flagged) == saturated
    if saturated:
        assert value == pytest.approx(2.0, rel=1e-8)
    else:
        assert value < 2.0 - 1e-3


@pytest.mark.parametrize(("n", "d"), [(200, 10), (50, 120), (500, 1)])
def test_shrinkage_equals_sklearn(n, d):
    f, _ = blobs(n, d, 2, seed=n)
    centred = f - f.mean(axis=0)
    gram = centred.T @ centred
    norm4 = float((np.square(centred).sum(axis=1) ** 2).sum())
    assert lw_ours(gram, norm4, n) == pytest.approx(ledoit_wolf_shrinkage(f), rel=1e-10,
                                                    abs=1e-15)


def test_invariances_float32_and_inputs_untouched():
    f, y = blobs(120, 6, 3, seed=2)
    perm = np.random.default_rng(0).permutation(120)
    for fn in (hscore, hscore_shrinkage):
        base = fn(f, y)
        assert fn(f[perm], y[perm]) == pytest.approx(base, rel=1e-10)
        assert fn(f, np.array(["p", "q", "r"])[y]) == pytest.approx(base, rel=1e-13)
        f32 = f.astype(np.float32)
        copy = f32.copy()
        assert fn(f32, y) == pytest.approx(fn(f32.astype(np.float64), y), rel=1e-12)
        np.testing.assert_array_equal(f32, copy)


@pytest.mark.parametrize("fn", [hscore, hscore_shrinkage])
def test_errors(fn):
    f, y = blobs(30, 4, 2)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fn(f, np.r_[y[:-1], 9])
    bad = f.copy()
    bad[2, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(1 row"):
        fn(bad, y)
    with pytest.raises(ValueError, match=r"labels must have shape \(30,\)"):
        fn(f, y[:5])
    with pytest.raises(ValueError, match="2-D"):
        fn(f.ravel(), y)
    with pytest.raises(ValueError, match="non-empty"):
        fn(np.empty((30, 0)), y)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(6, 40), d=st.integers(1, 8),
       classes=st.integers(2, 3))
def test_bounded_finite_and_permutation_invariant(seed, n, d, classes):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    f = rng.normal(size=(n, d)) + y[:, None]
    perm = rng.permutation(n)
    for fn in (hscore, hscore_shrinkage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SaturatedScoreWarning)  # d >= n - 1 may draw it
            value = fn(f, y)
            permuted = fn(f[perm], y[perm])
        assert math.isfinite(value) and -1e-9 <= value <= (classes - 1) * n / (n - 1) + 1e-9
        assert permuted == pytest.approx(value, rel=1e-7, abs=1e-9)
