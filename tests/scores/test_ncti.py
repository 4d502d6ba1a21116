"""NCTI: per-model terms (closed forms, the spec's pipeline), the pool normalisation by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from tpred.errors import UndefinedMetricWarning
from tpred.scores.ncti import ncti_combine, ncti_components


def _blobs(seed=0, n=120, d=70, classes=3, scale=1.0, sep=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return scale * (rng.normal(size=(n, d)) + sep * np.eye(classes, d)[y] * 3), y


def test_shrunk_branch_follows_the_spec():
    """Small features: the 32 largest variances sum below 23, so LDA(eigen, shrinkage=e^-s)."""
    f, y = _blobs(scale=0.05)
    pca = PCA(n_components=64, random_state=0)
    x64 = pca.fit_transform(f)
    tau = np.exp(-pca.explained_variance_[:32].sum())
    assert tau > 1e-10
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=tau).fit(x64, y)
    z = lda.transform(x64)
    proba = lda.predict_proba(x64)
    expected = (np.linalg.svd(z - z.mean(0), compute_uv=False).sum(),
                proba[np.arange(len(y)), y].mean(),
                np.log(sum(np.linalg.svd(proba[y == c], compute_uv=False).sum() for c in range(3))))
    np.testing.assert_allclose(ncti_components(f, y, random_state=0), expected, rtol=1e-10)


def test_separated_classes_collapse():
    # posteriors are one-hot, so ncc = 1 and P_c = n_c copies of e_c: ||P_c||_* = sqrt(n_c)
    f, y = _blobs(sep=30.0)
    seli, ncc, vc = ncti_components(f, y, random_state=0)
    assert ncc == pytest.approx(1.0, abs=1e-9)
    assert vc == pytest.approx(np.log(3 * np.sqrt(40)), abs=1e-9)
    assert seli > 0


def test_deterministic_relabel_dtype_and_no_mutation():
    f, y = _blobs()
    value = ncti_components(f, y, random_state=1)
    assert all(isinstance(v, float) for v in value) and 0 < value[1] <= 1
    assert ncti_components(f, y, random_state=1) == value
    assert ncti_components(f, 2 * y, random_state=1) == value
    assert ncti_components(f, np.array(["a", "b", "c"])[y], random_state=1) == value
    f32 = f.astype(np.float32)
    copy = f32.copy()
    expected = ncti_components(f32.astype(np.float64), y, random_state=1)
    assert ncti_components(f32, y, random_state=1) == expected
    np.testing.assert_array_equal(f32, copy)


@pytest.mark.parametrize("n, d", [(30, 10), (20, 100)])
def test_fewer_than_64_samples_or_dimensions_still_score(n, d):
    f, y = _blobs(n=n, d=d, classes=2)
    assert np.isfinite(ncti_components(f, y, random_state=0)).all()


def test_combine_by_hand():
    triples = [(1.0, 0.5, 2.0), (3.0, 0.7, 1.0), (2.0, 0.9, 3.0)]  # (seli, ncc, vc)
    # seli^ = [0, 1, .5], ncc^ = [0, .5, 1], vc^ = [.5, 0, 1]
    np.testing.assert_allclose(ncti_combine(triples), [-0.5, 1.5, 0.5])
    assert isinstance(ncti_combine(triples)[0], float)


def test_combine_constant_term_contributes_zero_with_a_warning():
    with pytest.warns(UndefinedMetricWarning, match="term 'ncc' is equal for all 2 models"):
        scores = ncti_combine([(1.0, 0.5, 2.0), (3.0, 0.5, 1.0)])
    np.testing.assert_allclose(scores, [0.0 + 0.0 - 1.0, 1.0 + 0.0 - 0.0])


def test_errors():
    with pytest.raises(ValueError, match="needs at least 2; got 1"):
        ncti_combine([(1.0, 0.5, 2.0)])
    with pytest.raises(ValueError, match=r"shape \[M, 3\]; got shape \(2, 2\)"):
        ncti_combine([(1.0, 0.5), (2.0, 0.5)])
    with pytest.raises(ValueError, match="model 1 has a non-finite term"):
        ncti_combine([(1.0, 0.5, 2.0), (np.nan, 0.5, 2.0)])
    with pytest.raises(ValueError, match="ncti_components: the features are constant"):
        ncti_components(np.ones((10, 3)), np.arange(10) % 2)
