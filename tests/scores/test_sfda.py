"""SFDA: range, closed forms, agreement with a two-stage scikit-learn LDA, invariances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from tpred.scores.sfda import _top_eigenvalue, sfda


def _blobs(seed=0, n=90, d=4, classes=3, scale=1.0, sep=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return scale * (rng.normal(size=(n, d)) + sep * y[:, None]), y


def test_power_iteration_by_hand():
    # S = diag(2, 1), start v = S 1 = (2, 1): after 3 rounds u ~ (64, 1), v ~ (128, 1), so
    # v^T S u = (2 * 128 * 64 + 1) / (|v| |u|) = sqrt(16385 / 4097)
    assert _top_eigenvalue(np.diag([2.0, 1.0])) == pytest.approx(np.sqrt(16385 / 4097), rel=1e-14)
    # row sums in the null space: the exact largest eigenvalue instead of 0/0
    assert _top_eigenvalue(np.array([[1.0, -1.0], [-1.0, 1.0]])) == pytest.approx(2.0)
    assert _top_eigenvalue(np.zeros((3, 3))) == 0.0


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])  # shrinkage ~0.94, ~5e-3, 1e-10
def test_matches_two_stage_shrunk_lda(scale):
    """The spec's steps, with scikit-learn's LDA (lsqr, fixed shrinkage) as the classifier."""
    f, y = _blobs(scale=scale)
    onehot = np.eye(3)[y]
    means = onehot.T @ f / onehot.sum(0)[:, None]
    centred = f - means[y]
    shrinkage = max(np.exp(-5 * _top_eigenvalue(centred.T @ centred / len(f))), 1e-10)

    def posterior(x):
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage).fit(x, y)
        return lda.predict_proba(x)

    q = softmax(posterior(f), axis=1)[np.arange(len(y)), y][:, None]
    mixed = q * f + (1 - q) * ((means.sum(0) - means) / 2)[y]
    expected = posterior(mixed)[np.arange(len(y)), y].mean()
    assert sfda(f, y) == pytest.approx(expected, rel=1e-10)


def test_range_and_separable_classes_near_one():
    f, y = _blobs(sep=0.3)
    assert 0.0 < sfda(f, y) <= 1.0
    far, y = _blobs(sep=50.0)
    assert sfda(far, y) == pytest.approx(1.0, abs=1e-6)
    wide = np.random.default_rng(0).normal(size=(20, 50))  # D > N: posteriors saturate
    assert sfda(wide, np.arange(20) % 2) == pytest.approx(1.0, abs=1e-6)


def test_constant_features_give_sum_of_squared_priors():
    assert sfda(np.ones((10, 3)), np.arange(10) % 2) == pytest.approx(0.5, rel=1e-12)
    labels = [0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert sfda(np.ones((9, 3)), labels) == pytest.approx(1 / 9 + 4 / 9, rel=1e-12)


def test_relabel_order_dtype_and_no_mutation():
    f, y = _blobs()
    value = sfda(f, y)
    perm = np.random.default_rng(2).permutation(len(y))
    assert sfda(f[perm], y[perm]) == pytest.approx(value, rel=1e-10)
    assert sfda(f, np.array(["a", "b", "c"])[y]) == pytest.approx(value, rel=1e-12)
    assert sfda(f, 2 * y) == pytest.approx(value, rel=1e-12)
    f32 = f.astype(np.float32)
    copy = f32.copy()
    assert sfda(f32, y) == pytest.approx(sfda(f32.astype(np.float64), y), rel=1e-12)
    np.testing.assert_array_equal(f32, copy)  # the reference writes the mixed features back
    assert isinstance(value, float)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sfda: needs at least 2 classes"):
        sfda(np.ones((4, 2)), [0, 0, 0, 0])
